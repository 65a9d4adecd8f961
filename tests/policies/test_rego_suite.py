"""Every Rego test in policies/ runs through both in-process engines (regopy and regorus): one
pytest case per test rule and engine.

Also: every policy file compiles on its own, the bundle follows the structural conventions, and
every rule id the policies emit is documented in docs/policies.md (and nothing else is).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from meshgov.core.policy import PolicyBundle, PreparedPolicy, RegoTest, discover_tests
from meshgov.core.policy_lint import crash_risks, lint_bundle
from meshgov.policy_backends import engine_from_url, load_bundle_dir

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"
DOCS = ROOT / "docs" / "policies.md"
GATE_CONCERNS = ("pii", "identity", "release")
RULE_ID = re.compile(r'"((?:pii|identity|release)/[a-z0-9]+(?:-[a-z0-9]+)*)"')
DOC_ANCHOR = re.compile(r'<a id="([a-z]+/[a-z0-9-]+)"></a>')

BUNDLE = load_bundle_dir(POLICIES)
TESTS = discover_tests(BUNDLE)


@pytest.fixture(scope="module", params=["embedded", "regorus"])
def prepared(request: pytest.FixtureRequest) -> PreparedPolicy:
    # A bundle that would crash regopy must fail here, not take the test process down.
    assert crash_risks(lint_bundle(BUNDLE)) == []
    entrypoints = [f"{t.package.replace('.', '/')}/{t.name}" for t in TESTS]
    engine = engine_from_url(request.param)
    return engine.prepare(BUNDLE, include_tests=True, entrypoints=entrypoints)


def test_every_concern_has_rego_tests() -> None:
    packages = {t.package for t in TESTS}
    for concern in (*GATE_CONCERNS, "main", "lib.result"):
        assert f"meshgov.{concern}_test" in packages


@pytest.mark.parametrize("rego_test", TESTS, ids=[f"{t.package}.{t.name}" for t in TESTS])
def test_rego(prepared: PreparedPolicy, rego_test: RegoTest) -> None:
    value = prepared.evaluate(f"data.{rego_test.package}.{rego_test.name}", {})
    assert value is True, f"{rego_test.path}:{rego_test.line}: evaluated to {value!r}"


@pytest.mark.parametrize("engine", ["embedded", "regorus"])
@pytest.mark.parametrize("path", sorted(BUNDLE.modules))
def test_policy_file_compiles_on_its_own(path: str, engine: str) -> None:
    engine_from_url(engine).prepare(
        PolicyBundle.create({path: BUNDLE.modules[path]}, BUNDLE.data), include_tests=True
    )


def test_policies_follow_the_conventions() -> None:
    errors = [f.describe() for f in lint_bundle(BUNDLE) if f.severity == "error"]
    assert errors == []


def _emitted_rule_ids() -> set[str]:
    """Rule ids written as literals in the gate packages and their tests.

    Ids built from parts (release/missing-<field>, release/<field>-changed) appear literally in
    the tests that expect them, so the union covers them too.
    """
    ids: set[str] = set()
    for path, text in BUNDLE.modules.items():
        if path.split("/")[1] in GATE_CONCERNS:
            ids.update(RULE_ID.findall(text))
    return ids


def test_every_emitted_rule_id_is_documented() -> None:
    documented = set(DOC_ANCHOR.findall(DOCS.read_text(encoding="utf-8")))
    emitted = _emitted_rule_ids()
    assert len(emitted) > 30
    assert sorted(emitted - documented) == []


def test_every_documented_gate_rule_is_emitted() -> None:
    documented = {
        rule
        for rule in DOC_ANCHOR.findall(DOCS.read_text(encoding="utf-8"))
        if rule.split("/")[0] in GATE_CONCERNS
    }
    assert sorted(documented - _emitted_rule_ids()) == []


def test_every_emitted_rule_id_is_tested() -> None:
    tested: set[str] = set()
    for path, text in BUNDLE.modules.items():
        if path.endswith("_test.rego"):
            tested.update(RULE_ID.findall(text))
    assert sorted(_emitted_rule_ids() - tested) == []


def test_every_gate_rule_has_a_fix_and_a_literal_severity() -> None:
    for concern in GATE_CONCERNS:
        text = BUNDLE.modules[f"meshgov/{concern}/{concern}.rego"]
        assert "rego.metadata" not in text
        severities = set(re.findall(r'"(error|warning|info|critical)",\n', text))
        assert severities <= {"error", "warning"}


def _catalogue() -> dict[str, str]:
    """Rule id -> severity from the `custom.rules` of the METADATA blocks of the gate packages."""
    catalogue: dict[str, str] = {}
    for concern in GATE_CONCERNS:
        text = BUNDLE.modules[f"meshgov/{concern}/{concern}.rego"]
        for block in re.findall(r"^# METADATA\n((?:#.*\n)+)", text, re.MULTILINE):
            meta = yaml.safe_load("\n".join(line[2:] for line in block.splitlines()))
            catalogue.update((meta.get("custom") or {}).get("rules") or {})
    return catalogue


def test_every_emitted_rule_id_has_a_metadata_entry() -> None:
    catalogue = _catalogue()
    assert set(catalogue) == _emitted_rule_ids()
    # breaking: an error without a major version bump, a warning with one (or in 0.x).
    assert set(catalogue.values()) <= {"error", "warning", "breaking"}


def test_documented_severity_matches_the_catalogue() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    for rule, severity in _catalogue().items():
        heading = re.search(rf"^### {re.escape(rule)} \((.+)\)$", docs, re.MULTILINE)
        assert heading is not None, rule
        expected = "without a major bump" if severity == "breaking" else severity
        assert expected in heading.group(1), (rule, heading.group(1))


@pytest.mark.parametrize("path", sorted(BUNDLE.modules))
def test_metadata_blocks_are_yaml(path: str) -> None:
    # OPA parses METADATA as YAML and rejects the module otherwise; regopy ignores it.
    for block in re.findall(r"^# METADATA\n((?:#.*\n)+)", BUNDLE.modules[path], re.MULTILINE):
        assert isinstance(yaml.safe_load("\n".join(line[2:] for line in block.splitlines())), dict)
