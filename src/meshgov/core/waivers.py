"""Waivers: time-boxed, justified exceptions to a rule for one product (and optionally one column).

A waiver file (``.meshgov-waivers.yaml``) is a YAML list, or a mapping with a ``waivers`` list::

    - rule: pii.undeclared_name
      product: customer/customers
      column: email_hint            # optional: without it the waiver covers the whole product
      port: customers               # optional
      justification: false positive, the column holds a hint text (JIRA GOV-12)
      expires: 2026-12-31

An active waiver suppresses the findings it matches; an expired one suppresses nothing and is
itself reported as a warning, so that it is renewed or removed. Invalid input findings are never
waived. A malformed file is an ``InputError`` naming the file and line.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from meshgov.core.report import Finding, FindingKind, Severity
from meshgov.core.yaml_source import SourceDocument, load_yaml
from meshgov.errors import InputError, Location

DEFAULT_WAIVER_FILE = ".meshgov-waivers.yaml"
EXPIRED_RULE = "waiver.expired"
UNMATCHED_RULE = "waiver.unmatched"
_KEYS = {"rule", "product", "port", "column", "justification", "expires"}


@dataclass(frozen=True)
class Waiver:
    rule: str
    product: str
    justification: str
    expires: dt.date
    column: str | None = None
    port: str | None = None
    file: str | None = None
    line: int | None = None

    def active(self, today: dt.date) -> bool:
        """A waiver is valid through its expiry day."""
        return today <= self.expires

    def matches(self, finding: Finding) -> bool:
        loc = finding.location
        if finding.kind is not FindingKind.violation:
            return False
        if finding.rule != self.rule or loc.product != self.product:
            return False
        if self.port is not None and loc.port != self.port:
            return False
        return self.column is None or (loc.column or "").lower() == self.column.lower()


def parse_waivers(text: str, source: str) -> list[Waiver]:
    """Parse and validate a waiver file.

    >>> text = "- {rule: r, product: a/b, justification: j, expires: 2030-01-01}"
    >>> parse_waivers(text, "w")[0].expires.year
    2030
    """
    if not text.strip():
        return []
    doc = load_yaml(text, source)
    items = doc.data
    prefix: tuple[str, ...] = ()
    if isinstance(items, dict) and set(items) == {"waivers"}:
        items = items["waivers"]
        prefix = ("waivers",)
    if items is None:
        return []
    if not isinstance(items, list):
        raise InputError(
            "a waiver file must be a list of waivers (or a mapping with a 'waivers' list)",
            Location(file=source, line=1),
        )
    return [_waiver(item, (*prefix, i), doc) for i, item in enumerate(items)]


def _waiver(item: object, path: tuple[str | int, ...], doc: SourceDocument) -> Waiver:
    line = doc.line_of(path)

    def bad(message: str, key: str | None = None) -> InputError:
        where = doc.line_of((*path, key)) if key else line
        return InputError(f"waiver {path[-1]}: {message}", Location(file=doc.source, line=where))

    if not isinstance(item, dict):
        raise bad("must be a mapping with rule, product, justification and expires")
    unknown = sorted(set(item) - _KEYS)
    if unknown:
        raise bad(f"unknown key '{unknown[0]}'", unknown[0])
    for key in ("rule", "product", "justification", "expires"):
        if key not in item or item[key] in (None, ""):
            raise bad(f"missing required key '{key}'")
    strings: dict[str, str | None] = {}
    for key in ("rule", "product", "justification", "port", "column"):
        value = item.get(key)
        if value is not None and not isinstance(value, str):
            raise bad(f"'{key}' must be a string, got {type(value).__name__}", key)
        strings[key] = value
    product = strings["product"] or ""
    if product.count("/") != 1:
        raise bad(f"'product' must be 'domain/name', got {product!r}", "product")
    return Waiver(
        rule=strings["rule"] or "",
        product=product,
        justification=(strings["justification"] or "").strip(),
        expires=_date(item["expires"], bad),
        column=strings["column"],
        port=strings["port"],
        file=doc.source,
        line=line,
    )


def _date(value: object, bad: Callable[[str, str], InputError]) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        # The YAML loader keeps dates as ISO text (a timestamp as ISO 8601 with its time).
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
        try:
            return dt.datetime.fromisoformat(value.strip()).date()
        except ValueError:
            pass
    raise bad(f"'expires' must be a date (YYYY-MM-DD), got {value!r}", "expires")


@dataclass(frozen=True)
class WaiverOutcome:
    kept: tuple[Finding, ...]
    waived: tuple[Finding, ...]


def apply_waivers(
    findings: Iterable[Finding], waivers: Sequence[Waiver], today: dt.date
) -> WaiverOutcome:
    """Split findings into those that stand and those an active waiver suppresses."""
    active = [w for w in waivers if w.active(today)]
    kept: list[Finding] = []
    waived: list[Finding] = []
    for finding in findings:
        (waived if any(w.matches(finding) for w in active) else kept).append(finding)
    return WaiverOutcome(tuple(kept), tuple(waived))


def expired_waiver_findings(
    waivers: Sequence[Waiver], today: dt.date, checked: Collection[str] | None = None
) -> list[Finding]:
    """Each expired waiver is a warning: it no longer suppresses anything.

    ``checked``: the products of this run; an expired waiver of another product is its run's
    business (``None``: every waiver is reported).
    """
    findings = []
    for waiver in waivers:
        if waiver.active(today) or (checked is not None and waiver.product not in checked):
            continue
        target = waiver.product + "".join(f":{p}" for p in (waiver.port, waiver.column) if p)
        findings.append(
            Finding(
                rule=EXPIRED_RULE,
                severity=Severity.warning,
                message=(
                    f"the waiver of {waiver.rule} for {target} expired on "
                    f"{waiver.expires.isoformat()}; its findings are reported again"
                ),
                location=Location(
                    file=waiver.file,
                    line=waiver.line,
                    product=waiver.product,
                    port=waiver.port,
                    column=waiver.column,
                ),
                fix="fix the finding, or renew the waiver with a new 'expires' date and "
                "justification",
            )
        )
    return findings


def unmatched_waiver_findings(
    waivers: Sequence[Waiver],
    rules: Collection[str],
    checked: Mapping[str, Mapping[str, Collection[str]]],
    mesh: Collection[str] | None,
) -> list[Finding]:
    """A warning per waiver that can match nothing: a rule no policy declares, a port or column
    the (checked) product does not have, or a product the mesh does not have.

    Args:
        rules: every rule id the policies (and meshgov) can report.
        checked: port → lower-cased column names, of each product of this run.
        mesh: every product id known (``None`` when the mesh was not given: a product that is
            not checked cannot be judged).
    """
    findings = []
    for waiver in waivers:
        problem = _unmatched(waiver, rules, checked, mesh)
        if problem is None:
            continue
        findings.append(
            Finding(
                rule=UNMATCHED_RULE,
                severity=Severity.warning,
                message=f"the waiver of {waiver.rule} for {waiver.product} matches nothing: "
                f"{problem}",
                location=Location(file=waiver.file, line=waiver.line, product=waiver.product),
                fix="correct the waiver (rule id, product, port, column) or remove it",
            )
        )
    return findings


def _unmatched(
    waiver: Waiver,
    rules: Collection[str],
    checked: Mapping[str, Mapping[str, Collection[str]]],
    mesh: Collection[str] | None,
) -> str | None:
    if waiver.rule not in rules:
        return f"no policy reports a rule '{waiver.rule}'"
    ports = checked.get(waiver.product)
    if ports is None:
        if mesh is not None and waiver.product not in mesh:
            return f"there is no product {waiver.product}"
        return None
    if waiver.port is not None and waiver.port not in ports:
        return f"{waiver.product} has no port '{waiver.port}' (ports: {', '.join(sorted(ports))})"
    if waiver.column is not None:
        scope = [ports[waiver.port]] if waiver.port is not None else list(ports.values())
        if not any(waiver.column.lower() in columns for columns in scope):
            where = f"port '{waiver.port}'" if waiver.port else waiver.product
            return f"{where} has no column '{waiver.column}'"
    return None
