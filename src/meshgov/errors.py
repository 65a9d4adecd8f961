"""The exception tree of meshgov.

Every failure meshgov reports on purpose is a ``MeshgovError`` with a stable snake_case ``code``
(OPA's ErrorV1 style) and, where known, a ``Location``. Adapters map codes to exit codes (CLI) or
HTTP statuses (API); nothing else does.

    MeshgovError
    ├── InputError                  invalid_input        exit 2 / HTTP 400
    │   ├── ManifestError           invalid_manifest
    │   │   └── ManifestErrors      invalid_manifest (several errors of one file)
    │   ├── PrincipalError          invalid_principal
    │   ├── SqlParseError           invalid_sql
    │   └── SqlDialectError         invalid_dialect
    ├── AccessDenied                access_denied        exit 3 / HTTP 403
    │   └── SqlUnsupportedError     unsupported_sql
    ├── PolicyError                 policy_error         exit 4 / HTTP 500
    │   ├── PolicyCompileError      policy_compile_error
    │   └── PolicyEvaluationError   evaluation_error
    ├── BackendUnavailable          backend_unavailable  exit 4 / HTTP 503
    │   └── SnapshotUnavailable     snapshot_unavailable
    ├── NotFound                    resource_not_found   exit 2 / HTTP 404
    └── Conflict                    resource_conflict    exit 2 / HTTP 409
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """Where a finding or an error points: a file position and/or a product, port and column."""

    file: str | None = None
    line: int | None = None
    column_number: int | None = None
    product: str | None = None
    port: str | None = None
    column: str | None = None

    def describe(self) -> str:
        parts: list[str] = []
        if self.file:
            pos = self.file
            if self.line is not None:
                pos += f":{self.line}"
                if self.column_number is not None:
                    pos += f":{self.column_number}"
            parts.append(pos)
        anchor = "/".join(p for p in (self.product, self.port, self.column) if p)
        if self.product:
            anchor = self.product + "".join(f":{p}" for p in (self.port, self.column) if p)
        if anchor:
            parts.append(anchor)
        return " ".join(parts)

    def as_dict(self) -> dict[str, str | int | None]:
        return {
            "file": self.file,
            "line": self.line,
            "product": self.product,
            "port": self.port,
            "column": self.column,
        }


class MeshgovError(Exception):
    """Root of every error meshgov raises on purpose."""

    code = "internal_error"
    exit_code = 4
    http_status = 500

    def __init__(self, message: str, location: Location | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.location = location

    def __str__(self) -> str:
        where = self.location.describe() if self.location else ""
        return f"{where}: {self.message}" if where else self.message


class InputError(MeshgovError):
    code = "invalid_input"
    exit_code = 2
    http_status = 400


class ManifestError(InputError):
    code = "invalid_manifest"


class ManifestErrors(ManifestError):
    """Every error found in one manifest at once (an ODCS contract's JSON Schema errors).

    Behaves as its first error (message, location) for callers that show one; ``errors`` holds
    them all, in file order, for the reports that list each.
    """

    def __init__(self, errors: Sequence[ManifestError]) -> None:
        if not errors:
            raise ValueError("ManifestErrors needs at least one error")
        first = errors[0]
        more = len(errors) - 1
        message = first.message
        if more:
            message += f" (and {more} more error{'s' if more > 1 else ''})"
        super().__init__(message, first.location)
        self.errors = tuple(errors)


class PrincipalError(InputError):
    code = "invalid_principal"


class SqlParseError(InputError):
    code = "invalid_sql"


class SqlDialectError(InputError):
    """An SQL dialect meshgov does not read or write (a usage error, not a denial)."""

    code = "invalid_dialect"


class AccessDenied(MeshgovError):
    code = "access_denied"
    exit_code = 3
    http_status = 403


class SqlUnsupportedError(AccessDenied):
    code = "unsupported_sql"


class UnknownNameError(SqlUnsupportedError):
    """A table or column the query names does not exist (``name``: as written), so that the
    caller can suggest the nearest name the principal may see."""

    def __init__(self, message: str, name: str, what: str) -> None:
        super().__init__(message)
        self.name = name
        self.what = what  # "table" | "column"


class PolicyError(MeshgovError):
    code = "policy_error"
    exit_code = 4
    http_status = 500


class PolicyCompileError(PolicyError):
    code = "policy_compile_error"


class PolicyEvaluationError(PolicyError):
    code = "evaluation_error"


class BackendUnavailable(MeshgovError):
    code = "backend_unavailable"
    exit_code = 4
    http_status = 503


class SnapshotUnavailable(BackendUnavailable):
    """A product's data cannot be served (its snapshot is missing, unreadable or refused); only
    queries that touch that product fail, and the message names it without a server path."""

    code = "snapshot_unavailable"


class NotFound(MeshgovError):
    code = "resource_not_found"
    exit_code = 2
    http_status = 404


class Conflict(MeshgovError):
    code = "resource_conflict"
    exit_code = 2
    http_status = 409
