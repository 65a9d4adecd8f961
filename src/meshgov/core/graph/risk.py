"""Re-identification risk: quasi-identifiers that become joinable through shared entity ids.

Birth date, postcode and gender are each harmless; together, and tied to one person by a shared
customer id, they identify most people. Given what a principal can see, this finds, for every
entity, the quasi-identifiers reachable by joining visible products on that entity's identifier,
and reports the combinations that reach the configured threshold or contain a configured set.

Access is approximated from the manifests' own grants (the access policy may narrow it further,
so this errs on the side of reporting): a principal sees a product of its own domain, or one
whose grant names its id, one of its groups or its domain (and its purpose, when given; a grant
with ``ports`` limits the ports). A ``restricted`` column is hidden without the ``restricted``
clearance; a PII column is masked without the ``pii`` clearance. A masked quasi-identifier is not
exposed unless its mask only generalises it (``year``, ``partial``); a masked identifier still
joins when the mask is ``hash`` (keyed, the same key mesh-wide, so hashed ids join).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from meshgov.core.collection import gc_paused
from meshgov.core.graph.model import EntityGraph, MeshIndex
from meshgov.core.manifest import Column, Manifest, MaskKind
from meshgov.errors import InputError, Location, PrincipalError

DEFAULT_THRESHOLD = 3
_GENERALISING_MASKS = {MaskKind.year.value, MaskKind.partial.value}


@dataclass(frozen=True)
class QuasiIdentifier:
    name: str
    aliases: tuple[str, ...] = ()  # other column names meaning it (lower case)
    categories: tuple[str, ...] = ()  # piiCategory values meaning it


@dataclass(frozen=True)
class QuasiIdentifierPolicy:
    identifiers: tuple[QuasiIdentifier, ...]
    threshold: int = DEFAULT_THRESHOLD
    combinations: tuple[frozenset[str], ...] = ()

    def match(self, column: Column) -> str | None:
        name = column.name.lower()
        for qi in self.identifiers:
            if name == qi.name or name in qi.aliases:
                return qi.name
            if column.pii_category and column.pii_category in qi.categories:
                return qi.name
        return None


def _names(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value.lower(),)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(v.lower() for v in value)
    raise InputError(f"{where} must be a name or a list of names", Location(file=_QI_FILE))


_QI_FILE = "policies/data/quasi_identifiers.yaml"
_LIST_KEYS = ("quasi_identifiers", "identifiers", "attributes", "columns")
_THRESHOLD_KEYS = ("threshold", "max_combination", "k", "min_combination")
_CATEGORY_KEYS = ("piiCategories", "pii_categories", "categories")
_COMBINATION_KEYS = ("combinations", "risky_combinations", "sets")


def _identifier(item: Any, name: str | None = None) -> QuasiIdentifier:
    if isinstance(item, str) and name is None:
        return QuasiIdentifier(item.lower(), (), (item.lower(),))
    if isinstance(item, Mapping):
        qi_name = name or item.get("name")
        if not isinstance(qi_name, str) or not qi_name:
            raise InputError("a quasi-identifier needs a name", Location(file=_QI_FILE))
        categories = _names(item.get("categories", item.get("piiCategory")), qi_name)
        return QuasiIdentifier(
            qi_name.lower(),
            _names(item.get("aliases", item.get("names")), qi_name),
            categories or (qi_name.lower(),),
        )
    if isinstance(item, list) and name is not None:
        return QuasiIdentifier(name.lower(), _names(item, name), (name.lower(),))
    if item is None and name is not None:
        return QuasiIdentifier(name.lower(), (), (name.lower(),))
    raise InputError(f"cannot read quasi-identifier {item!r}", Location(file=_QI_FILE))


def quasi_identifier_policy(data: Any) -> QuasiIdentifierPolicy:
    """Read ``policies/data/quasi_identifiers.yaml`` in any of its reasonable shapes.

    A list of names (or of ``{name, aliases, categories}``); or a mapping with such a list under
    ``quasi_identifiers``/``identifiers``/``columns``, optional ``piiCategories`` (columns
    declaring them count as quasi-identifiers), an optional ``threshold`` (the smallest number of
    distinct quasi-identifiers that is risky, default 3) and ``combinations`` (sets that are risky
    whatever their size); or a mapping of name to aliases/definition.
    """
    if isinstance(data, list):
        return QuasiIdentifierPolicy(tuple(_identifier(i) for i in data))
    if not isinstance(data, Mapping):
        raise InputError("quasi-identifiers must be a list or a mapping", Location(file=_QI_FILE))
    list_key = next((k for k in _LIST_KEYS if k in data), None)
    if list_key is None:
        identifiers = tuple(_identifier(v, str(k)) for k, v in data.items())
        return QuasiIdentifierPolicy(identifiers)
    raw = data[list_key]
    if isinstance(raw, Mapping):
        identifiers = tuple(_identifier(v, str(k)) for k, v in raw.items())
    elif isinstance(raw, list):
        identifiers = tuple(_identifier(i) for i in raw)
    else:
        raise InputError(f"{list_key} must be a list or a mapping", Location(file=_QI_FILE))
    # Columns declaring one of these PII categories count as that quasi-identifier too.
    category_key = next((k for k in _CATEGORY_KEYS if k in data), None)
    if category_key is not None:
        categories = _names(data[category_key], category_key)
        identifiers += tuple(QuasiIdentifier(c, (), (c,)) for c in categories)
    threshold = DEFAULT_THRESHOLD
    threshold_key = next((k for k in _THRESHOLD_KEYS if k in data), None)
    if threshold_key is not None:
        value = data[threshold_key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputError(f"{threshold_key} must be a positive integer", Location(file=_QI_FILE))
        threshold = value
    combinations: list[frozenset[str]] = []
    combination_key = next((k for k in _COMBINATION_KEYS if k in data), None)
    for combo in data.get(combination_key, []) if combination_key else []:
        combinations.append(frozenset(_names(combo, "a combination")))
    return QuasiIdentifierPolicy(identifiers, threshold, tuple(combinations))


@dataclass(frozen=True)
class PrincipalView:
    """What the risk analysis needs of a principal (``{id, groups, domain, attributes}``)."""

    id: str
    groups: tuple[str, ...] = ()
    domain: str | None = None
    clearances: tuple[str, ...] = ()
    purpose: str | None = None


def principal_view(data: Any, purpose: str | None = None) -> PrincipalView:
    if not isinstance(data, Mapping) or not isinstance(data.get("id"), str):
        raise PrincipalError("a principal is a mapping with at least an 'id'")
    attributes = data.get("attributes") or {}
    if not isinstance(attributes, Mapping):
        raise PrincipalError("principal attributes must be a mapping")
    groups = data.get("groups") or []
    clearances = attributes.get("clearances") or data.get("clearances") or []
    if not isinstance(groups, list) or not isinstance(clearances, list):
        raise PrincipalError("principal groups and clearances must be lists")
    domain = data.get("domain")
    return PrincipalView(
        id=data["id"],
        groups=tuple(str(g) for g in groups),
        domain=str(domain) if domain else None,
        clearances=tuple(str(c) for c in clearances),
        purpose=purpose or (str(data["purpose"]) if data.get("purpose") else None),
    )


def visible_ports(manifest: Manifest, principal: PrincipalView) -> set[str]:
    """Ports the principal may read under the product's own grants (owners read every port)."""
    every = {p.name for p in manifest.spec.output_ports}
    if principal.domain == manifest.metadata.domain:
        return every
    ports: set[str] = set()
    for grant in manifest.spec.access.grants:
        target = grant.to
        matches = (
            principal.id in target.ids
            or bool(set(principal.groups) & set(target.groups))
            or (principal.domain is not None and principal.domain in target.domains)
        )
        if not matches:
            continue
        if principal.purpose and grant.purposes and principal.purpose not in grant.purposes:
            continue
        ports |= set(grant.ports) & every if grant.ports else every
    return ports


@dataclass(frozen=True)
class PortView:
    """What a principal gets of one port: readable at all, hidden columns, masked columns."""

    readable: bool
    hidden: frozenset[str] = frozenset()
    masks: Mapping[str, str] = field(default_factory=dict)  # column → mask kind

    def column(self, name: str) -> tuple[bool, bool]:
        """(value exposed, can join on it) for one column of the port."""
        if not self.readable or name in self.hidden:
            return False, False
        mask = self.masks.get(name)
        if mask is None:
            return True, True
        return mask in _GENERALISING_MASKS, mask == MaskKind.hash.value


#: ``(manifest, port name) → PortView``: the real access policy, or ``grant_access``.
AccessView = Callable[[Manifest, str], PortView]


def grant_access(principal: PrincipalView) -> AccessView:
    """Access approximated from the manifests' own grants and the column metadata."""

    def view(manifest: Manifest, port_name: str) -> PortView:
        if port_name not in visible_ports(manifest, principal):
            return PortView(False)
        port = manifest.port(port_name)
        if port is None:
            return PortView(False)
        hidden: set[str] = set()
        masks: dict[str, str] = {}
        for col in port.columns:
            restricted = col.classification is not None and col.classification.value == "restricted"
            if restricted and "restricted" not in principal.clearances:
                hidden.add(col.name)
            elif col.pii and "pii" not in principal.clearances:
                # PII without a declared mask is treated as nulled (fail closed).
                masks[col.name] = col.mask.value if col.mask else MaskKind.null.value
        return PortView(True, frozenset(hidden), masks)

    return view


# Least to most protective: the union of what a principal may get keeps the most revealing.
_MASK_STRENGTH = {"year": 0, "partial": 1, "hash": 2}

#: ``(purpose, product, port) → AccessDecision`` of the access policy for one principal.
Decide = Callable[[str, str, str], Any]


def policy_access(decide: Decide, purpose: str | None) -> AccessView:
    """Port views from the access policy's decisions (``data.meshgov.access.decision``).

    Without a purpose, every purpose the product's grants name is tried and the union of what
    they allow is kept: the most a principal can assemble.
    """

    def view(manifest: Manifest, port: str) -> PortView:
        purposes = (
            [purpose]
            if purpose
            else sorted({p for g in manifest.spec.access.grants for p in g.purposes})
        )
        allowed = [d for d in (decide(p, manifest.id, port) for p in purposes) if d.allow is True]
        if not allowed:
            return PortView(False)
        hidden = frozenset.intersection(*(frozenset(d.hidden_columns) for d in allowed))
        masks: dict[str, str] = {}
        for name in {c for d in allowed for c in d.masks}:
            kinds = [d.masks[name].kind if name in d.masks else None for d in allowed]
            if None in kinds:
                continue  # some purpose shows it in clear
            masks[name] = min(kinds, key=lambda k: _MASK_STRENGTH.get(str(k), 9)) or "null"
        return PortView(True, hidden, masks)

    return view


@dataclass(frozen=True)
class ExposedQuasiIdentifier:
    name: str
    product: str
    port: str
    column: str
    generalised: bool  # visible only through a generalising mask (year, partial)


@dataclass(frozen=True)
class RiskFinding:
    entity: str
    quasi_identifiers: tuple[str, ...]
    exposed: tuple[ExposedQuasiIdentifier, ...]
    join_columns: tuple[str, ...]  # product:port:column of the entity id used to join
    products: tuple[str, ...]
    cross_product: bool  # no single visible product exposes a risky combination alone
    matched_combinations: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class RiskReport:
    principal: str
    threshold: int
    access_model: str  # "grants" (approximation) or "policy" (the access policy's decisions)
    visible_products: tuple[str, ...]
    findings: tuple[RiskFinding, ...]


def _risky(names: set[str], policy: QuasiIdentifierPolicy) -> tuple[bool, list[frozenset[str]]]:
    matched = [c for c in policy.combinations if c and c <= names]
    return len(names) >= policy.threshold or bool(matched), matched


@gc_paused
def reidentification_risk(
    source: EntityGraph | MeshIndex,
    principal: PrincipalView,
    policy: QuasiIdentifierPolicy,
    access: AccessView | None = None,
    access_model: str | None = None,
) -> RiskReport:
    """Quasi-identifier combinations the principal can assemble by joining on entity ids.

    ``access`` says what the principal gets of each port (default: ``grant_access``).
    """
    index = source.index if isinstance(source, EntityGraph) else source
    view_of = access or grant_access(principal)
    views: dict[tuple[str, str], PortView] = {}
    for pid, manifest in index.manifests.items():
        for port in manifest.spec.output_ports:
            view = view_of(manifest, port.name)
            if view.readable:
                views[(pid, port.name)] = view
    findings: list[RiskFinding] = []
    for entity in sorted(index.carrier_products):
        exposed: list[ExposedQuasiIdentifier] = []
        joins: list[str] = []
        per_product: dict[str, set[str]] = {}
        for pid in sorted(index.carrier_products[entity]):
            manifest = index.manifests[pid]
            for port in manifest.spec.output_ports:
                port_view = views.get((pid, port.name))
                if port_view is None:
                    continue
                id_columns = [c for c in port.columns if c.entity == entity]
                joinable = [c for c in id_columns if port_view.column(c.name)[1]]
                if not joinable:
                    continue
                joins.extend(f"{pid}:{port.name}:{c.name}" for c in joinable)
                for col in port.columns:
                    name = policy.match(col)
                    if name is None or not port_view.column(col.name)[0]:
                        continue
                    generalised = col.name in port_view.masks
                    exposed.append(
                        ExposedQuasiIdentifier(name, pid, port.name, col.name, generalised)
                    )
                    per_product.setdefault(pid, set()).add(name)
        names = {e.name for e in exposed}
        risky, matched = _risky(names, policy)
        if not risky:
            continue
        alone = any(_risky(n, policy)[0] for n in per_product.values())
        findings.append(
            RiskFinding(
                entity=entity,
                quasi_identifiers=tuple(sorted(names)),
                exposed=tuple(sorted(exposed, key=lambda e: (e.name, e.product, e.port, e.column))),
                join_columns=tuple(sorted(joins)),
                products=tuple(sorted(per_product)),
                cross_product=not alone,
                matched_combinations=tuple(tuple(sorted(c)) for c in matched),
            )
        )
    return RiskReport(
        principal.id,
        policy.threshold,
        access_model or ("grants" if access is None else "custom"),
        tuple(sorted({pid for pid, _ in views})),
        tuple(findings),
    )
