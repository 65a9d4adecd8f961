"""What the release gate found: findings, per-manifest results, and the machine-readable renderings.

Pure: the gate (``meshgov.gate``) fills a ``Report``; the CLI and the HTTP service only render it.
Renderers here produce JSON, JUnit XML, SARIF 2.1.0 and GitHub workflow annotations; the rich text
view lives in the CLI because it needs a terminal.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.etree import ElementTree

from meshgov.errors import Location, ManifestErrors, MeshgovError

TOOL_NAME = "meshgov"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
# Base of relative artifact URIs: the directory the check ran in (GitHub code scanning's name).
SARIF_SRCROOT = "%SRCROOT%"

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_INVALID = 2


class Severity(StrEnum):
    info = "info"
    warning = "warning"
    error = "error"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]

    @classmethod
    def parse(cls, value: object) -> Severity:
        """An unknown severity from a policy counts as an error: fail closed."""
        try:
            return cls(str(value).lower())
        except ValueError:
            return cls.error


_SEVERITY_RANK = {Severity.info: 0, Severity.warning: 1, Severity.error: 2}


class FailOn(StrEnum):
    """The lowest severity that fails the gate (``never``: findings never fail it)."""

    error = "error"
    warning = "warning"
    never = "never"

    def fails(self, severity: Severity) -> bool:
        if self is FailOn.never:
            return False
        return severity.rank >= Severity(self.value).rank


class FindingKind(StrEnum):
    violation = "violation"  # a policy rule (or the gate itself) found a problem in a product
    invalid_input = "invalid_input"  # the input could not be checked at all: exit 2


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    message: str
    location: Location = field(default_factory=Location)
    fix: str | None = None
    kind: FindingKind = FindingKind.violation

    @classmethod
    def from_error(cls, error: MeshgovError, *, product: str | None = None) -> Finding:
        """An input the gate could not read becomes an error finding that names its place."""
        location = error.location or Location()
        if product and not location.product:
            location = replace(location, product=product)
        return cls(
            rule=error.code,
            severity=Severity.error,
            message=error.message,
            location=location,
            kind=FindingKind.invalid_input,
        )

    @classmethod
    def from_errors(cls, error: MeshgovError, *, product: str | None = None) -> list[Finding]:
        """One finding per error of ``error`` (several for ``ManifestErrors``), else one."""
        errors = error.errors if isinstance(error, ManifestErrors) else (error,)
        return [cls.from_error(e, product=product) for e in errors]

    @property
    def anchor(self) -> str:
        """``product:port:column``, as far as known."""
        loc = self.location
        return ":".join(p for p in (loc.product, loc.port, loc.column) if p)

    @property
    def position(self) -> str:
        loc = self.location
        if not loc.file:
            return ""
        return f"{loc.file}:{loc.line}" if loc.line is not None else loc.file

    def sort_key(self) -> tuple[int, str, str, str, str, str]:
        loc = self.location
        return (
            -self.severity.rank,
            loc.product or "",
            loc.port or "",
            loc.column or "",
            self.rule,
            self.message,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": self.severity.value,
            "kind": self.kind.value,
            "message": self.message,
            "location": self.location.as_dict(),
            "fix": self.fix,
        }


@dataclass(frozen=True)
class ManifestResult:
    """The outcome for one manifest file (``product`` is None when it could not be read)."""

    file: str
    product: str | None = None
    version: str | None = None
    previous_version: str | None = None
    findings: tuple[Finding, ...] = ()
    waived: tuple[Finding, ...] = ()

    @property
    def invalid(self) -> bool:
        return any(f.kind is FindingKind.invalid_input for f in self.findings)

    @property
    def name(self) -> str:
        return self.product or self.file


@dataclass(frozen=True)
class Report:
    """Everything one gate run found, and the policy revision that judged it."""

    revision: str
    results: tuple[ManifestResult, ...] = ()
    # Findings about the run rather than one manifest (an expired waiver, a bad waiver file...).
    general: tuple[Finding, ...] = ()
    # The exit code of a run that stopped on an error before judging anything (4 for policies
    # that do not compile), so that its report says what the process exits with.
    stopped_with: int | None = None

    def findings(self) -> Iterator[Finding]:
        for result in self.results:
            yield from result.findings
        yield from self.general

    def waived(self) -> Iterator[Finding]:
        for result in self.results:
            yield from result.waived

    @property
    def invalid(self) -> bool:
        return any(f.kind is FindingKind.invalid_input for f in self.findings())

    def count(self, severity: Severity) -> int:
        return sum(
            1 for f in self.findings() if f.severity is severity and f.kind is FindingKind.violation
        )

    def exit_code(self, fail_on: FailOn = FailOn.error) -> int:
        """2 when any input was invalid, else 1 when a finding is at or above ``fail_on``."""
        if self.stopped_with is not None:
            return self.stopped_with
        if self.invalid:
            return EXIT_INVALID
        if any(fail_on.fails(f.severity) for f in self.findings()):
            return EXIT_FINDINGS
        return EXIT_OK

    def summary(self) -> dict[str, int]:
        return {
            "manifests": len(self.results),
            "errors": self.count(Severity.error),
            "warnings": self.count(Severity.warning),
            "info": self.count(Severity.info),
            "invalid": sum(1 for f in self.findings() if f.kind is FindingKind.invalid_input),
            "waived": sum(1 for _ in self.waived()),
        }


# --- renderers -----------------------------------------------------------------------------------


def render_json(report: Report, fail_on: FailOn = FailOn.error) -> str:
    exit_code = report.exit_code(fail_on)
    document = {
        "tool": TOOL_NAME,
        "revision": report.revision,
        "passed": exit_code == EXIT_OK,
        "exit_code": exit_code,
        "fail_on": fail_on.value,
        "summary": report.summary(),
        "results": [
            {
                "file": r.file,
                "product": r.product,
                "version": r.version,
                "previous_version": r.previous_version,
                "findings": [f.as_dict() for f in r.findings],
                "waived": [f.as_dict() for f in r.waived],
            }
            for r in report.results
        ],
        "general": [f.as_dict() for f in report.general],
    }
    return json.dumps(document, indent=2, sort_keys=False)


def _rule_groups(findings: Iterable[Finding]) -> dict[str, list[Finding]]:
    groups: dict[str, list[Finding]] = {}
    for finding in sorted(findings, key=lambda f: (f.rule, f.sort_key())):
        groups.setdefault(finding.rule, []).append(finding)
    return groups


def _finding_line(finding: Finding) -> str:
    where = " ".join(p for p in (finding.position, finding.anchor) if p)
    text = f"[{finding.severity.value}] {finding.rule}: {finding.message}"
    if where:
        text += f" ({where})"
    if finding.fix:
        text += f"\nfix: {finding.fix}"
    return text


def render_junit(report: Report, fail_on: FailOn = FailOn.error) -> str:
    """One test suite per manifest, one test case per rule that spoke (or one passing case).

    Findings at or above ``fail_on`` are failures; invalid inputs are errors; the rest are
    reported in ``system-out`` so that CI shows them without failing.
    """
    suites = ElementTree.Element("testsuites", name=f"{TOOL_NAME} check")
    total = failures = errors = 0
    for result in report.results:
        suite = ElementTree.SubElement(suites, "testsuite", name=result.name, file=result.file)
        suite_failures = suite_errors = 0
        groups = _rule_groups(result.findings)
        if not groups:
            ElementTree.SubElement(
                suite, "testcase", classname=result.name, name="policies", file=result.file
            )
        for rule, findings in groups.items():
            case = ElementTree.SubElement(
                suite, "testcase", classname=result.name, name=rule, file=result.file
            )
            body = "\n\n".join(_finding_line(f) for f in findings)
            if any(f.kind is FindingKind.invalid_input for f in findings):
                node = ElementTree.SubElement(
                    case, "error", type="invalid_input", message=findings[0].message
                )
                node.text = body
                suite_errors += 1
            elif any(fail_on.fails(f.severity) for f in findings):
                node = ElementTree.SubElement(
                    case, "failure", type=findings[0].severity.value, message=findings[0].message
                )
                node.text = body
                suite_failures += 1
            else:
                ElementTree.SubElement(case, "system-out").text = body
        cases = max(len(groups), 1)
        suite.set("tests", str(cases))
        suite.set("failures", str(suite_failures))
        suite.set("errors", str(suite_errors))
        total += cases
        failures += suite_failures
        errors += suite_errors
    if report.general:
        suite = ElementTree.SubElement(suites, "testsuite", name="run")
        groups = _rule_groups(report.general)
        for rule, findings in groups.items():
            case = ElementTree.SubElement(suite, "testcase", classname="run", name=rule)
            body = "\n\n".join(_finding_line(f) for f in findings)
            if any(f.kind is FindingKind.invalid_input for f in findings):
                ElementTree.SubElement(case, "error", message=findings[0].message).text = body
                errors += 1
            elif any(fail_on.fails(f.severity) for f in findings):
                ElementTree.SubElement(case, "failure", message=findings[0].message).text = body
                failures += 1
            else:
                ElementTree.SubElement(case, "system-out").text = body
        suite.set("tests", str(len(groups)))
        total += len(groups)
    suites.set("tests", str(total))
    suites.set("failures", str(failures))
    suites.set("errors", str(errors))
    ElementTree.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(
        suites, encoding="unicode"
    )


_SARIF_LEVEL = {Severity.error: "error", Severity.warning: "warning", Severity.info: "note"}


def render_sarif(report: Report, version: str = "0") -> str:
    """SARIF 2.1.0: one run, a rule per rule id, a result per finding located in the manifest."""
    all_findings = sorted(report.findings(), key=Finding.sort_key)
    rule_ids = sorted({f.rule for f in all_findings})
    rule_index = {rule: i for i, rule in enumerate(rule_ids)}
    first_of_rule: dict[str, Finding] = {}
    for finding in all_findings:
        first_of_rule.setdefault(finding.rule, finding)
    rules = []
    for rule in rule_ids:
        sample = first_of_rule[rule]
        descriptor: dict[str, Any] = {
            "id": rule,
            "name": rule,
            "shortDescription": {"text": rule},
            "defaultConfiguration": {"level": _SARIF_LEVEL[sample.severity]},
        }
        if sample.fix:
            descriptor["help"] = {"text": sample.fix}
        rules.append(descriptor)
    results = []
    for finding in all_findings:
        loc = finding.location
        message = finding.message + (f" Fix: {finding.fix}" if finding.fix else "")
        result: dict[str, Any] = {
            "ruleId": finding.rule,
            "ruleIndex": rule_index[finding.rule],
            "level": _SARIF_LEVEL[finding.severity],
            "kind": "fail",
            "message": {"text": message},
        }
        location: dict[str, Any] = {}
        if loc.file:
            physical: dict[str, Any] = {"artifactLocation": _artifact_location(loc.file)}
            if loc.line is not None:
                physical["region"] = {"startLine": loc.line}
            location["physicalLocation"] = physical
        if finding.anchor:
            location["logicalLocations"] = [
                {"fullyQualifiedName": finding.anchor, "kind": "member"}
            ]
        if location:
            result["locations"] = [location]
        result["properties"] = {"kind": finding.kind.value}
        results.append(result)
    document = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": TOOL_NAME,
                        "version": version,
                        "rules": rules,
                    }
                },
                "results": results,
                "properties": {"policyRevision": report.revision},
            }
        ],
    }
    return json.dumps(document, indent=2)


def _artifact_location(file: str) -> dict[str, str]:
    """A SARIF ``artifactLocation`` for a file path: a valid URI reference (SARIF 2.1.0 §3.10.3).

    An absolute path becomes a ``file://`` URI. A relative one becomes a percent-encoded relative
    reference with ``uriBaseId: %SRCROOT%`` (the directory the check ran in), which code scanning
    resolves against the checkout; its absolute value is left to the consumer, so the report does
    not depend on (or disclose) the machine it was made on.
    """
    path = Path(file)
    if path.is_absolute():
        return {"uri": path.as_uri()}
    return {"uri": quote(path.as_posix()), "uriBaseId": SARIF_SRCROOT}


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


_GITHUB_COMMAND = {Severity.error: "error", Severity.warning: "warning", Severity.info: "notice"}


def render_github(report: Report) -> str:
    """GitHub Actions workflow commands: ``::error file=…,line=…,title=…::message``."""
    lines = []
    for finding in sorted(report.findings(), key=Finding.sort_key):
        loc = finding.location
        props: list[str] = []
        if loc.file:
            props.append(f"file={_escape_property(loc.file)}")
            if loc.line is not None:
                props.append(f"line={loc.line}")
        title = finding.rule + (f" ({finding.anchor})" if finding.anchor else "")
        props.append(f"title={_escape_property(title)}")
        message = finding.message + (f"\nFix: {finding.fix}" if finding.fix else "")
        lines.append(
            f"::{_GITHUB_COMMAND[finding.severity]} {','.join(props)}::{_escape_data(message)}"
        )
    return "\n".join(lines)


def relocate(report: Report, path_of: Callable[[str], str]) -> Report:
    """``report`` with every file (results, findings, waived, general) mapped by ``path_of``.

    The CLI names files relative to the repository root in every format, whatever the current
    directory (GitHub annotations and SARIF resolve paths from the root).
    """

    def finding(item: Finding) -> Finding:
        file = item.location.file
        if not file:
            return item
        return replace(item, location=replace(item.location, file=path_of(file)))

    return replace(
        report,
        results=tuple(
            replace(
                result,
                file=path_of(result.file),
                findings=tuple(finding(f) for f in result.findings),
                waived=tuple(finding(f) for f in result.waived),
            )
            for result in report.results
        ),
        general=tuple(finding(f) for f in report.general),
    )


# The key of a grant's line in the lines of a manifest: (GRANT_LINE, index in spec.access.grants).
GRANT_LINE = "#grant"


def policy_findings(
    violations: object, *, product: str, file: str | None, lines: Mapping[tuple[str, str], int]
) -> list[Finding]:
    """Turn what ``data.meshgov.main.violations`` returned into findings.

    Args:
        violations: the policy result: a list (Rego set) of violation objects, or None.
        product: the product id, used when a violation does not name one.
        file: the manifest file the product came from.
        lines: line of each ``(port, column)`` (column ``""`` for the port itself).

    A malformed violation still becomes an error finding: the gate never drops what a rule said.
    """
    if violations is None:
        return []
    if not isinstance(violations, list):
        return [
            Finding(
                "policy.malformed_result",
                Severity.error,
                f"the policies returned {type(violations).__name__}, not a set of violations",
                Location(file=file, product=product),
            )
        ]
    findings: list[Finding] = []
    for item in violations:
        if not isinstance(item, dict):
            findings.append(
                Finding(
                    "policy.malformed_result",
                    Severity.error,
                    f"a policy returned a violation that is not an object: {item!r}"[:300],
                    Location(file=file, product=product),
                )
            )
            continue
        raw_location = item.get("location")
        where = raw_location if isinstance(raw_location, dict) else {}
        port = _text_or_none(where.get("port"))
        column = _text_or_none(where.get("column"))
        grant = where.get("grant")
        line = lines.get((GRANT_LINE, str(grant))) if isinstance(grant, int) else None
        if line is None:
            line = lines.get((port or "", column or "")) or lines.get((port or "", ""))
        if line is None:
            line = lines.get(("", ""))
        # A rule may name the exact line (the ODCS reader's notes carry theirs).
        exact = where.get("line")
        if isinstance(exact, int) and not isinstance(exact, bool) and exact > 0:
            line = exact
        location = Location(
            file=_text_or_none(where.get("file")) or file,
            line=line,
            product=_text_or_none(where.get("product")) or product,
            port=port,
            column=column,
        )
        findings.append(
            Finding(
                rule=_text_or_none(item.get("rule")) or "policy.unnamed_rule",
                severity=Severity.parse(item.get("severity", "error")),
                message=_text_or_none(item.get("message")) or "(no message)",
                location=location,
                fix=_text_or_none(item.get("fix")),
            )
        )
    findings.sort(key=Finding.sort_key)
    return findings


def _text_or_none(value: object) -> str | None:
    if value is None or value == "":
        return None
    return str(value)
