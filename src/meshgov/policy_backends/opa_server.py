"""The OPA-server policy engine: policies and data uploaded to an OPA server, evaluated there.

For teams that already run OPA (``--policy-engine opa+http://opa:8181``). ``prepare`` uploads every
module (policy id ``meshgov/<path>``; other modules of meshgov's packages are removed, including
copies OPA loaded from disk at start) and the base data
(``PUT /v1/data/<key>`` per top-level key), through opa-python-client. ``evaluate`` posts
``{"input": …}`` to the Data API. An undefined result is ``None``, which callers treat as deny.
OPA holds one set of packages at a time, so a server serves one meshgov revision: the latest
prepared. ``MESHGOV_OPA_TOKEN`` is sent as a bearer token when set (never logged).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlparse

from meshgov.core.policy import PolicyBundle
from meshgov.errors import (
    BackendUnavailable,
    InputError,
    Location,
    PolicyCompileError,
    PolicyEvaluationError,
)
from meshgov.policy_backends._input_checks import plain_input

POLICY_ID_PREFIX = "meshgov/"


def _client(url: str, token: str | None, timeout: float) -> Any:
    from opa_client.opa import OpaClient

    parsed = urlparse(url)
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        raise InputError(f"OPA server URL must be http(s)://host:port, got {url!r}")
    port = parsed.port or (443 if parsed.scheme == "https" else 8181)
    return OpaClient(
        host=parsed.hostname,
        port=port,
        ssl=parsed.scheme == "https",
        token=token,
        timeout=timeout,
    )


def _unavailable(url: str, exc: Exception) -> BackendUnavailable:
    return BackendUnavailable(f"OPA server {url} unavailable ({type(exc).__name__})")


class OpaServerPrepared:
    """A bundle loaded into one OPA server."""

    def __init__(self, engine: OpaServerEngine, bundle: PolicyBundle) -> None:
        self._engine = engine
        self._bundle = bundle

    @property
    def revision(self) -> str:
        return self._bundle.revision

    def evaluate(self, query: str, input_document: Any) -> Any:
        import requests

        if not query.startswith("data."):
            raise PolicyEvaluationError(f"only data references can be evaluated, got {query!r}")
        path = query.removeprefix("data.").replace(".", "/")
        try:
            checked = plain_input(input_document)  # the checks the embedded engine makes
        except ValueError as exc:
            raise PolicyEvaluationError(f"evaluating {query}: input refused ({exc})") from None
        try:
            answer = self._engine.client.query_rule(checked, path)
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else "?"
            raise PolicyEvaluationError(f"evaluating {query}: OPA answered HTTP {status}") from None
        except (requests.RequestException, OSError) as exc:
            raise _unavailable(self._engine.url, exc) from None
        except ValueError:
            raise PolicyEvaluationError(f"evaluating {query}: unreadable OPA answer") from None
        if not isinstance(answer, dict):
            raise PolicyEvaluationError(f"evaluating {query}: unreadable OPA answer")
        return answer.get("result")  # absent = undefined = None (deny)


class OpaServerEngine:
    """``PolicyEngine`` backed by an OPA server (opa-python-client)."""

    name = "opa"

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        upload: bool = True,
        timeout: float = 5.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.upload = upload
        self._token = token if token is not None else os.environ.get("MESHGOV_OPA_TOKEN")
        self._timeout = timeout
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = _client(self.url, self._token, self._timeout)
        return self._client

    def prepare(
        self,
        bundle: PolicyBundle,
        extra_data: Mapping[str, Any] | None = None,
        *,
        include_tests: bool = False,
        entrypoints: Sequence[str] = (),
    ) -> OpaServerPrepared:
        _ = entrypoints  # OPA compiles every module; entrypoints need no preparation
        if self.upload:
            modules = dict(bundle.modules) if include_tests else bundle.policy_modules()
            data = {**bundle.data, **(extra_data or {})}
            with self._lock:
                self._upload(modules, data)
        return OpaServerPrepared(self, bundle)

    def _upload(self, modules: Mapping[str, str], data: Mapping[str, Any]) -> None:
        import requests
        from opa_client.errors import ConnectionsError, DeletePolicyError, RegoParseError

        client = self.client
        try:
            wanted = {POLICY_ID_PREFIX + path for path in modules}
            for stale in client.get_policies_list():
                # Ours from an earlier revision, or the same files loaded from disk at OPA's
                # start (`opa run -s /policies`): the uploaded revision replaces them.
                if "meshgov/" in str(stale) and stale not in wanted:
                    # Another worker may have removed it first.
                    with contextlib.suppress(DeletePolicyError):
                        client.delete_policy(stale)
            for path, text in sorted(modules.items()):
                try:
                    client.update_policy_from_string(
                        text, POLICY_ID_PREFIX + path, rego_compat=False
                    )
                except RegoParseError as exc:
                    raise PolicyCompileError(
                        f"OPA rejected the module: {_first_error(exc)}", Location(file=path)
                    ) from None
            for key, value in sorted(data.items()):
                if not isinstance(value, dict):
                    raise InputError(f"policy data '{key}' must be an object to upload to OPA")
                try:
                    client.update_or_create_data(value, key)
                except RegoParseError as exc:
                    raise PolicyCompileError(
                        f"OPA rejected data '{key}': {_first_error(exc)}"
                    ) from None
        except (requests.RequestException, ConnectionsError, OSError) as exc:
            raise _unavailable(self.url, exc) from None


def _first_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        where = first.get("location") or {}
        line = where.get("row") if isinstance(where, dict) else None
        return f"{first.get('message', 'error')}" + (f" (line {line})" if line else "")
    return str(getattr(exc, "message", None) or exc)
