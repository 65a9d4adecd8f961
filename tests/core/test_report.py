"""Findings, exit codes, renderers and waivers of the release gate report."""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import unquote, urlsplit
from xml.etree import ElementTree

import pytest

from meshgov.core.report import (
    FailOn,
    Finding,
    FindingKind,
    ManifestResult,
    Report,
    Severity,
    policy_findings,
    render_github,
    render_json,
    render_junit,
    render_sarif,
)
from meshgov.core.waivers import (
    EXPIRED_RULE,
    Waiver,
    apply_waivers,
    expired_waiver_findings,
    parse_waivers,
)
from meshgov.errors import InputError, Location, ManifestError

FILE = "products/customer/customers.yaml"
PRODUCT = "customer/customers"


def _finding(
    rule: str = "pii/unclassified",
    severity: Severity = Severity.error,
    column: str | None = "email",
    line: int | None = 12,
) -> Finding:
    return Finding(
        rule=rule,
        severity=severity,
        message=f"column '{column}' is PII, classified public",
        location=Location(file=FILE, line=line, product=PRODUCT, port="customers", column=column),
        fix="Classify it confidential or restricted.",
    )


def _report(*findings: Finding, general: tuple[Finding, ...] = ()) -> Report:
    return Report(
        revision="abc123",
        results=(ManifestResult(FILE, PRODUCT, "2.1.0", "2.0.0", tuple(findings)),),
        general=general,
    )


INVALID = Finding.from_error(ManifestError("invalid YAML: mapping values", Location(FILE, 3)))


# --- severities and exit codes -------------------------------------------------------------------


def test_unknown_policy_severity_counts_as_error() -> None:
    assert Severity.parse("WARNING") is Severity.warning
    assert Severity.parse("critical") is Severity.error
    assert Severity.parse(None) is Severity.error


@pytest.mark.parametrize(
    ("severities", "fail_on", "code"),
    [
        ((), FailOn.error, 0),
        ((Severity.warning,), FailOn.error, 0),
        ((Severity.warning,), FailOn.warning, 1),
        ((Severity.error,), FailOn.error, 1),
        ((Severity.error,), FailOn.never, 0),
        ((Severity.info,), FailOn.warning, 0),
    ],
)
def test_exit_code_follows_fail_on(
    severities: tuple[Severity, ...], fail_on: FailOn, code: int
) -> None:
    report = _report(*(_finding(severity=s) for s in severities))
    assert report.exit_code(fail_on) == code


def test_invalid_input_exits_2_even_with_fail_on_never() -> None:
    report = _report(_finding(), INVALID)
    assert report.exit_code(FailOn.never) == 2
    assert report.summary()["invalid"] == 1
    assert report.summary()["errors"] == 1


def test_input_error_becomes_a_located_finding() -> None:
    finding = Finding.from_error(InputError("bad", Location(file="x.yaml", line=4)), product="a/b")
    assert finding.kind is FindingKind.invalid_input
    assert finding.rule == "invalid_input"
    assert finding.position == "x.yaml:4"
    assert finding.location.product == "a/b"


# --- policy results ------------------------------------------------------------------------------


def test_policy_findings_take_lines_from_the_manifest() -> None:
    violations = [
        {
            "rule": "pii/unclassified",
            "severity": "error",
            "message": "m",
            "location": {"product": PRODUCT, "port": "customers", "column": "email"},
            "fix": "f",
        },
        {"rule": "release/owner", "severity": "warning", "message": "no owner", "location": {}},
    ]
    lines = {("", ""): 3, ("customers", ""): 10, ("customers", "email"): 14}
    findings = policy_findings(violations, product=PRODUCT, file=FILE, lines=lines)
    assert [(f.rule, f.location.line, f.severity) for f in findings] == [
        ("pii/unclassified", 14, Severity.error),
        ("release/owner", 3, Severity.warning),
    ]
    assert findings[1].location.product == PRODUCT
    assert findings[1].location.file == FILE


def test_malformed_policy_results_fail_closed() -> None:
    assert policy_findings(None, product=PRODUCT, file=FILE, lines={}) == []
    odd = policy_findings({"x": 1}, product=PRODUCT, file=FILE, lines={})
    assert [f.rule for f in odd] == ["policy.malformed_result"]
    mixed = policy_findings(["oops", {"message": "m"}], product=PRODUCT, file=FILE, lines={})
    assert sorted((f.rule, f.severity) for f in mixed) == [
        ("policy.malformed_result", Severity.error),
        ("policy.unnamed_rule", Severity.error),
    ]


# --- renderers -----------------------------------------------------------------------------------


def test_json_report() -> None:
    report = _report(_finding(), _finding("release/owner", Severity.warning, None, 3))
    document = json.loads(render_json(report, FailOn.error))
    assert document["passed"] is False
    assert document["exit_code"] == 1
    assert document["revision"] == "abc123"
    assert document["summary"]["errors"] == 1
    assert document["summary"]["warnings"] == 1
    result = document["results"][0]
    assert result["product"] == PRODUCT
    assert result["previous_version"] == "2.0.0"
    first = result["findings"][0]
    assert first["rule"] == "pii/unclassified"
    assert first["location"] == {
        "file": FILE,
        "line": 12,
        "product": PRODUCT,
        "port": "customers",
        "column": "email",
    }
    assert first["fix"].startswith("Classify")


def test_junit_one_case_per_rule_per_product() -> None:
    report = Report(
        revision="r",
        results=(
            ManifestResult(
                FILE,
                PRODUCT,
                findings=(
                    _finding(),
                    _finding(column="phone"),
                    _finding("release/owner", Severity.warning),
                ),
            ),
            ManifestResult("clean.yaml", "a/clean"),
            ManifestResult("broken.yaml", findings=(INVALID,)),
        ),
    )
    root = ElementTree.fromstring(render_junit(report, FailOn.error))
    assert root.tag == "testsuites"
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    customers = suites[PRODUCT]
    cases = {c.get("name"): c for c in customers.iter("testcase")}
    assert set(cases) == {"pii/unclassified", "release/owner"}
    failure = cases["pii/unclassified"].find("failure")
    assert failure is not None
    assert "phone" in (failure.text or "")
    assert cases["release/owner"].find("failure") is None  # a warning below --fail-on
    assert "release/owner" in (cases["release/owner"].findtext("system-out") or "")
    assert [c.get("name") for c in suites["a/clean"].iter("testcase")] == ["policies"]
    assert suites["broken.yaml"].find("testcase/error") is not None
    assert root.get("failures") == "1"
    assert root.get("errors") == "1"
    assert root.get("tests") == "4"


def test_junit_warning_fails_with_fail_on_warning() -> None:
    report = _report(_finding(severity=Severity.warning))
    root = ElementTree.fromstring(render_junit(report, FailOn.warning))
    assert root.find(".//failure") is not None


def test_sarif_report() -> None:
    report = _report(
        _finding(),
        _finding("release/owner", Severity.warning, None, None),
        general=(Finding("waiver.expired", Severity.warning, "expired", Location(file="w.yaml")),),
    )
    sarif = json.loads(render_sarif(report, "0.1.0"))
    assert sarif["version"] == "2.1.0"
    run = sarif["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "meshgov"
    rule_ids = [r["id"] for r in driver["rules"]]
    assert rule_ids == sorted(rule_ids) == ["pii/unclassified", "release/owner", "waiver.expired"]
    results = run["results"]
    assert len(results) == 3
    for result in results:
        assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
    error = next(r for r in results if r["ruleId"] == "pii/unclassified")
    assert error["level"] == "error"
    physical = error["locations"][0]["physicalLocation"]
    assert physical == {
        "artifactLocation": {"uri": FILE, "uriBaseId": "%SRCROOT%"},
        "region": {"startLine": 12},
    }
    logical = error["locations"][0]["logicalLocations"][0]["fullyQualifiedName"]
    assert logical == f"{PRODUCT}:customers:email"
    owner = next(r for r in results if r["ruleId"] == "release/owner")
    assert owner["level"] == "warning"
    assert "region" not in owner["locations"][0]["physicalLocation"]
    assert run["properties"]["policyRevision"] == "abc123"


def _sarif_uri(file: str) -> dict[str, str]:
    finding = Finding("pii/x", Severity.error, "bad", Location(file=file, line=1))
    sarif = json.loads(render_sarif(_report(finding)))
    location = sarif["runs"][0]["results"][0]["locations"][0]
    artifact: dict[str, str] = location["physicalLocation"]["artifactLocation"]
    return artifact


@pytest.mark.parametrize("file", ["my dir/x#1.yaml", "a/100% b?.yaml", "c:d.yaml", "ü.yaml"])
def test_sarif_relative_paths_are_percent_encoded_uri_references(file: str) -> None:
    artifact = _sarif_uri(file)
    assert artifact["uriBaseId"] == "%SRCROOT%"
    uri = artifact["uri"]
    assert not set(uri) & {" ", "#", "?", ":", "ü"}
    assert urlsplit(uri).scheme == ""  # a relative reference, never read as a scheme
    assert urlsplit(uri).path == uri  # no fragment or query split off
    assert unquote(uri) == file


def test_sarif_absolute_paths_are_file_uris() -> None:
    artifact = _sarif_uri("/tmp/my dir/x#1.yaml")
    assert artifact == {"uri": "file:///tmp/my%20dir/x%231.yaml"}
    assert unquote(urlsplit(artifact["uri"]).path) == "/tmp/my dir/x#1.yaml"


def test_github_annotations_escape_their_syntax() -> None:
    finding = Finding(
        "pii/x",
        Severity.error,
        "100% bad\nsecond line",
        Location(file="a,b:c.yaml", line=7, product=PRODUCT),
        fix="do it",
    )
    text = render_github(_report(finding, _finding("release/owner", Severity.warning, None, 3)))
    lines = text.splitlines()
    assert lines[0] == (
        f"::error file=a%2Cb%3Ac.yaml,line=7,title=pii/x ({PRODUCT})::"
        "100%25 bad%0Asecond line%0AFix: do it"
    )
    assert lines[1].startswith(f"::warning file={FILE},line=3,title=release/owner")


# --- waivers -------------------------------------------------------------------------------------

TODAY = dt.date(2026, 6, 1)
WAIVERS = """\
# Waivers granted by the guild
- rule: pii/unclassified
  product: customer/customers
  column: email
  justification: migration to restricted in progress (GOV-12)
  expires: 2026-12-31
- rule: release/owner
  product: customer/customers
  justification: owner team being reorganised
  expires: 2026-01-31
"""


def test_parse_waivers() -> None:
    waivers = parse_waivers(WAIVERS, ".meshgov-waivers.yaml")
    assert [(w.rule, w.column, w.expires, w.line) for w in waivers] == [
        ("pii/unclassified", "email", dt.date(2026, 12, 31), 2),
        ("release/owner", None, dt.date(2026, 1, 31), 7),
    ]
    assert parse_waivers("waivers: []\n", "w") == []
    assert parse_waivers("", "w") == []


def test_active_waiver_suppresses_only_what_it_names() -> None:
    waivers = parse_waivers(WAIVERS, "w.yaml")
    email = _finding(column="email")
    phone = _finding(column="phone")
    owner = _finding("release/owner", Severity.warning, None)
    outcome = apply_waivers([email, phone, owner, INVALID], waivers, TODAY)
    assert outcome.waived == (email,)
    # The owner waiver expired; invalid input is never waived.
    assert outcome.kept == (phone, owner, INVALID)


def test_waiver_is_valid_through_its_expiry_day() -> None:
    waiver = Waiver("r", "a/b", "j", dt.date(2026, 6, 1))
    assert waiver.active(dt.date(2026, 6, 1))
    assert not waiver.active(dt.date(2026, 6, 2))


def test_expired_waivers_are_warnings_located_in_the_waiver_file() -> None:
    waivers = parse_waivers(WAIVERS, "w.yaml")
    expired = expired_waiver_findings(waivers, TODAY)
    assert len(expired) == 1
    assert expired[0].rule == EXPIRED_RULE
    assert expired[0].severity is Severity.warning
    assert expired[0].position == "w.yaml:7"
    assert "2026-01-31" in expired[0].message


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("rule: x\n", "must be a list", 1),
        (
            "- rule: r\n  product: a/b\n  expires: 2026-01-01\n",
            "missing required key 'justification'",
            1,
        ),
        (
            "- {rule: r, product: a/b, justification: j, expires: 2026-01-01}\n"
            "- rule: r\n  product: a/b\n  justification: j\n  expires: soon\n",
            "'expires' must be a date",
            5,
        ),
        ("- {rule: r, product: ab, justification: j, expires: 2026-01-01}\n", "domain/name", 1),
        (
            "- rule: r\n  product: a/b\n  justification: j\n  expires: 2026-01-01\n  colum: x\n",
            "unknown key 'colum'",
            5,
        ),
        ("- {rule: [r], product: a/b, justification: j, expires: 2026-01-01}\n", "string", 1),
        ("- [unclosed\n", "invalid YAML", None),
        ("- just text\n", "must be a mapping", 1),
    ],
)
def test_malformed_waiver_files_name_the_place(text: str, message: str, line: int | None) -> None:
    with pytest.raises(InputError) as caught:
        parse_waivers(text, "w.yaml")
    assert message in caught.value.message
    assert caught.value.location is not None
    assert caught.value.location.file == "w.yaml"
    if line is not None:
        assert caught.value.location.line == line
