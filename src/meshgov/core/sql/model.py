"""The values the rewriter passes around: ports, access decisions and the rewritten query."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from meshgov.core.manifest import LogicalType, Manifest, MaskKind

MASK_KINDS = frozenset(k.value for k in MaskKind)


@dataclass(frozen=True)
class PortColumn:
    name: str
    type: LogicalType
    mask_expr: str | None = None


@dataclass(frozen=True)
class PortRef:
    """One output port as the rewriter needs it: where it lives and which columns it has."""

    product: str
    port: str
    version: str
    table: tuple[str, ...]  # physical name parts, normalised (lower case)
    columns: tuple[PortColumn, ...]

    @property
    def table_name(self) -> str:
        return ".".join(self.table)

    def column(self, name: str) -> PortColumn | None:
        lowered = name.lower()
        return next((c for c in self.columns if c.name.lower() == lowered), None)


def ports_of(manifests: Mapping[str, Manifest]) -> list[PortRef]:
    """Every table port of the catalogue that declares a physical ``table`` name."""
    ports: list[PortRef] = []
    for manifest in manifests.values():
        for port in manifest.spec.output_ports:
            if not port.table:
                continue
            ports.append(
                PortRef(
                    product=manifest.id,
                    port=port.name,
                    version=manifest.metadata.version,
                    table=tuple(part.strip().lower() for part in port.table.split(".")),
                    columns=tuple(PortColumn(c.name, c.type, c.mask_expr) for c in port.columns),
                )
            )
    return ports


@dataclass(frozen=True)
class Mask:
    kind: str
    expr: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "expr": self.expr}


@dataclass(frozen=True)
class AccessDecision:
    """The output of ``data.meshgov.access.decision`` for one (principal, purpose, port).

    ``row_filters`` are alternatives: a row is visible if ANY of them holds (one per matching
    grant); an empty list means no filter.
    """

    allow: bool
    reasons: tuple[str, ...] = ()
    row_filters: tuple[str, ...] = ()
    masks: Mapping[str, Mask] = field(default_factory=dict)
    hidden_columns: frozenset[str] = frozenset()
    revision: str = ""

    @property
    def fingerprint(self) -> tuple[Any, ...]:
        """Everything a secure view depends on, hashable (masks is a mapping)."""
        return (
            self.allow,
            self.row_filters,
            tuple(sorted((c, m.kind, m.expr) for c, m in self.masks.items())),
            tuple(sorted(self.hidden_columns)),
        )

    @classmethod
    def deny(cls, reason: str, revision: str = "") -> AccessDecision:
        return cls(allow=False, reasons=(reason,), revision=revision)

    @classmethod
    def from_policy_output(cls, value: Any, revision: str = "") -> AccessDecision:
        """Validate the policy's answer strictly; anything malformed or undefined denies."""
        if not isinstance(value, dict):
            return cls.deny("the access policy gave no decision (deny by default)", revision)
        expected = {"allow", "reasons", "row_filters", "masks", "hidden_columns"}
        if set(value) != expected:
            return cls.deny(f"malformed access decision keys {sorted(value)}", revision)
        allow, reasons = value["allow"], value["reasons"]
        filters, masks, hidden = value["row_filters"], value["masks"], value["hidden_columns"]
        if (
            not isinstance(allow, bool)
            or not _str_list(reasons)
            or not _str_list(filters)
            or not _str_list(hidden)
            or not isinstance(masks, dict)
        ):
            return cls.deny("malformed access decision values", revision)
        parsed_masks: dict[str, Mask] = {}
        for column, spec in masks.items():
            kind = spec.get("kind") if isinstance(spec, dict) else spec
            expr = spec.get("expr") if isinstance(spec, dict) else None
            if kind not in MASK_KINDS or not (expr is None or isinstance(expr, str)):
                return cls.deny(f"malformed mask for column {column}", revision)
            parsed_masks[str(column).lower()] = Mask(str(kind), expr)
        return cls(
            allow=allow,
            reasons=tuple(reasons),
            row_filters=tuple(filters) if allow else (),
            masks=parsed_masks if allow else {},
            hidden_columns=frozenset(h.lower() for h in hidden) if allow else frozenset(),
            revision=revision,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "allow": self.allow,
            "reasons": list(self.reasons),
            "row_filters": list(self.row_filters),
            "masks": {c: m.as_dict() for c, m in sorted(self.masks.items())},
            "hidden_columns": sorted(self.hidden_columns),
        }


def _str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


@dataclass(frozen=True)
class TableAccess:
    """What the rewriter did to one table reference of a query."""

    table: str
    product: str
    port: str
    revision: str
    version: str
    row_filters: tuple[str, ...]
    masks: Mapping[str, Mask]
    hidden_columns: frozenset[str]
    reasons: tuple[str, ...]
    # The filters bound to the principal, in the target dialect (None: no filter).
    row_filter_sql: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "product": self.product,
            "port": self.port,
            "version": self.version,
            "revision": self.revision,
            "row_filters": list(self.row_filters),
            "row_filter_sql": self.row_filter_sql,
            "masks": {c: m.as_dict() for c, m in sorted(self.masks.items())},
            "hidden_columns": sorted(self.hidden_columns),
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class RewrittenQuery:
    """The secure SQL (target dialect) and what was applied to each table."""

    sql: str
    read: str
    write: str
    tables: tuple[TableAccess, ...]


# The rewriter's two callbacks: physical name parts → port (None = unknown table), port → decision.
ResolvePort = Callable[[tuple[str, ...]], PortRef | None]
Decide = Callable[[PortRef], AccessDecision]
