"""examples/broken: each manifest fails exactly the rule it is named after, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from meshgov.gate import Gate

ROOT = Path(__file__).resolve().parents[2]
BROKEN = ROOT / "examples" / "broken"
MESH = ROOT / "examples" / "mesh"
# The released versions that the release/* change examples are compared against.
PREVIOUS = ROOT / "examples" / "previous"
POLICIES = ROOT / "policies"
# Packages whose every rule has a broken example (guards that only fire on internal faults aside).
COVERED_PACKAGES = ("pii", "identity", "release")
INTERNAL_RULES = {"identity/unrecognised-fact"}
RULE_LITERAL = re.compile(r'"((?:pii|identity|release)/[a-z][a-z0-9-]*[a-z0-9])"')


def _broken_files() -> list[Path]:
    return sorted(BROKEN.glob("*.yaml"))


def _rule_of(path: Path) -> str:
    """``pii-missing-mask.yaml`` -> ``pii/missing-mask``."""
    package, _, rule = path.stem.partition("-")
    return f"{package}/{rule}"


@pytest.fixture(scope="module")
def gate() -> Gate:
    return Gate.from_dir(POLICIES)


@pytest.mark.parametrize("path", _broken_files(), ids=lambda p: p.stem)
def test_each_example_fails_only_its_rule_against_the_mesh(gate: Gate, path: Path) -> None:
    report = gate.check_paths([path], against=str(PREVIOUS), catalog_dir=MESH)
    (result,) = report.results
    assert not result.invalid, [f.message for f in result.findings]
    rules = {finding.rule for finding in result.findings}
    assert rules == {_rule_of(path)}, [str(f.message) for f in result.findings]
    for finding in result.findings:
        assert finding.location.product == result.product
        assert finding.fix


def test_all_examples_together_fail_only_their_rules(gate: Gate) -> None:
    report = gate.check_paths(_broken_files(), against=str(PREVIOUS))
    outcome = {
        Path(result.file).name: sorted({f.rule for f in result.findings})
        for result in report.results
    }
    expected = {path.name: [_rule_of(path)] for path in _broken_files()}
    assert outcome == expected


def test_every_rule_of_the_covered_packages_has_an_example() -> None:
    rules: set[str] = set()
    for package in COVERED_PACKAGES:
        for rego in (POLICIES / "meshgov" / package).glob("*.rego"):
            if not rego.stem.endswith("_test"):
                rules.update(RULE_LITERAL.findall(rego.read_text()))
    covered = {_rule_of(path) for path in _broken_files()}
    assert rules - INTERNAL_RULES <= covered, sorted(rules - INTERNAL_RULES - covered)


def test_the_example_mesh_itself_passes(gate: Gate) -> None:
    report = gate.check_paths([MESH], catalog_dir=MESH)
    assert len(report.results) >= 6
    findings = [(r.file, f.rule, f.message) for r in report.results for f in r.findings]
    assert findings == []


def test_previous_versions_pass_and_back_every_change_example(gate: Gate) -> None:
    report = gate.check_paths([PREVIOUS], catalog_dir=MESH)
    assert [f.rule for r in report.results for f in r.findings] == []
    released = {r.product for r in report.results}
    for path in _broken_files():
        if "--against examples/previous" in path.read_text():
            product = next(
                line.split(":", 1)[1].strip()
                for line in path.read_text().splitlines()
                if line.startswith("  name:")
            )
            assert f"support/{product}" in released, path.name
