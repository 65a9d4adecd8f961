"""The ODCS standard's own examples (tests/fixtures/odcs/official, 18 contracts) are all read.

Each one is checked (exit 0 or 1, never 2: it is valid ODCS), and variants that the ODCS JSON
Schema refuses (no status, no kind) are invalid input naming the file and line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meshgov.cli import app
from meshgov.core.manifest import parse_manifest
from meshgov.errors import ManifestErrors
from meshgov.gate import Gate

ROOT = Path(__file__).resolve().parents[2]
OFFICIAL = ROOT / "tests" / "fixtures" / "odcs" / "official"
POLICIES = ROOT / "policies"
EXAMPLES = sorted(OFFICIAL.rglob("*.odcs.yaml"))


@pytest.fixture(scope="module")
def gate() -> Gate:
    return Gate.from_dir(POLICIES)


def test_all_the_examples_of_the_standard_are_here() -> None:
    assert len(EXAMPLES) == 18
    assert (OFFICIAL / "LICENSE").read_text().lstrip().startswith("Apache License")


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.relative_to(OFFICIAL).as_posix())
def test_each_example_is_read_and_judged(gate: Gate, path: Path) -> None:
    report = gate.check_paths([path])
    (result,) = report.results
    assert not result.invalid, [f.message for f in result.findings]
    assert report.exit_code() in (0, 1)
    assert result.product is not None
    assert re.fullmatch(r"[a-z][a-z0-9_-]*/[a-z][a-z0-9_-]*", result.product)
    # Every finding says how to fix it and where.
    for finding in result.findings:
        assert finding.fix, finding.rule
        assert finding.location.file == str(path)


def test_meshgov_check_reads_each_example() -> None:
    """One run per contract: several examples describe the same product (``my_quantum/my_table``),
    which checked together is a conflict of the mesh, not a property of any one contract."""
    for path in EXAMPLES:
        result = CliRunner().invoke(
            app, ["check", "--policies", str(POLICIES), "-f", "json", str(path)]
        )
        assert result.exit_code in (0, 1), (path, result.stderr)
        report = json.loads(result.stdout)
        assert report["summary"]["invalid"] == 0
        # Named from the repository root, as every report names files.
        assert [r["file"] for r in report["results"]] == [path.relative_to(ROOT).as_posix()]


def _without_line(text: str, key: str) -> str:
    lines = text.splitlines(keepends=True)
    kept = [line for line in lines if not re.match(rf"{key}\s*:", line)]
    assert len(kept) == len(lines) - 1, key
    return "".join(kept)


@pytest.mark.parametrize("key", ["status", "kind"])
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.relative_to(OFFICIAL).as_posix())
def test_schema_invalid_variants_are_refused_naming_the_place(path: Path, key: str) -> None:
    text = _without_line(path.read_text(encoding="utf-8"), key)
    with pytest.raises(ManifestErrors) as caught:
        parse_manifest(text, str(path))
    error = next(e for e in caught.value.errors if f"'{key}' is required" in e.message)
    assert error.location is not None
    assert error.location.file == str(path)
    assert error.location.line is not None


def test_a_refused_variant_exits_2_from_the_cli(tmp_path: Path) -> None:
    source = OFFICIAL / "all" / "full-example.odcs.yaml"
    bad = tmp_path / "full-example.odcs.yaml"
    bad.write_text(_without_line(source.read_text(encoding="utf-8"), "status"))
    result = CliRunner().invoke(app, ["check", "--policies", str(POLICIES), str(bad)])
    assert result.exit_code == 2
    assert re.search(rf"{re.escape(str(bad))}:\d+: 'status' is required", result.stderr)


def test_a_contract_without_kind_in_a_directory_is_found_and_refused(tmp_path: Path) -> None:
    source = OFFICIAL / "schema" / "table-column.odcs.yaml"
    bad = tmp_path / "contracts" / "table-column.odcs.yaml"
    bad.parent.mkdir()
    bad.write_text(_without_line(source.read_text(encoding="utf-8"), "kind"))
    result = CliRunner().invoke(
        app, ["check", "--policies", str(POLICIES), "-f", "json", str(bad.parent)]
    )
    assert result.exit_code == 2
    (found,) = json.loads(result.stdout)["results"]
    assert found["file"] == str(bad)
    assert any("'kind' is required" in f["message"] for f in found["findings"])
