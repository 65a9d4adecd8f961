"""Reports are never empty: with every --format, every manifest given is in the report.

Invalid manifests (unparsable YAML, an ODCS contract the ODCS JSON Schema refuses, a bad
``derivedFrom`` reference) appear as findings of their own kind (``invalid_input``), one per error,
and the exit code stays 2. A run that stops before judging anything still writes a report.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from xml.etree import ElementTree

import pytest
from typer.testing import CliRunner

from meshgov.cli import app

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"
MESH = ROOT / "examples" / "mesh"
FORMATS = ["text", "json", "junit", "sarif", "github"]

BAD_ODCS = """\
apiVersion: v3.1.0
id: c1
name: things
version: 1.0.0
domain: shop
schema:
  - name: things
    properties:
      - {name: a, logicalType: string, colour: red}
"""


@pytest.fixture
def inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A good manifest and three invalid ones, in an empty working directory."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    root = tmp_path / "in"
    root.mkdir()
    good = root / "customers.yaml"
    shutil.copy(MESH / "customer" / "customers.yaml", good)
    bad_yaml = root / "broken.yaml"
    bad_yaml.write_text("apiVersion: meshgov/v1\nkind: [unclosed\n")
    bad_odcs = root / "things.odcs.yaml"
    bad_odcs.write_text(BAD_ODCS)
    bad_ref = root / "customer_360.yaml"
    text = (MESH / "marketing" / "customer_360.yaml").read_text()
    assert "derivedFrom: [" in text
    bad_ref.write_text(text.replace("derivedFrom: [", "derivedFrom: [lifetime_value, ", 1))
    return {"good": good, "yaml": bad_yaml, "odcs": bad_odcs, "ref": bad_ref}


def _check(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["check", "--policies", str(POLICIES), "--no-scan", *args])
    return result.exit_code, result.stdout, result.stderr


def _files_in(output_format: str, stdout: str, stderr: str) -> dict[str, list[str]]:
    """file -> the kinds of its findings (``ok`` when it has none), as each format writes them."""
    found: dict[str, list[str]] = {}
    if output_format == "json":
        for result in json.loads(stdout)["results"]:
            kinds = [f["kind"] for f in result["findings"]] or ["ok"]
            found.setdefault(result["file"], []).extend(kinds)
    elif output_format == "junit":
        for suite in ElementTree.fromstring(stdout).iter("testsuite"):
            file = suite.get("file")
            if file is None:
                continue
            kinds = [e.get("type", "") for e in suite.iter("error")] or ["ok"]
            found.setdefault(file, []).extend(kinds)
    elif output_format == "sarif":
        for result in json.loads(stdout)["runs"][0]["results"]:
            uri = result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            found.setdefault(uri, []).append(result["properties"]["kind"])
    elif output_format == "github":
        for line in stdout.splitlines():
            file = line.split("file=", 1)[1].split(",", 1)[0]
            found.setdefault(file, []).append("invalid_input" if "invalid_" in line else "x")
    else:
        # Text: judged manifests on stdout, one stderr line per error of an invalid one.
        for line in stderr.splitlines():
            if line.startswith("error invalid_manifest "):
                file = line.split(" ")[2].split(":")[0]
                found.setdefault(file, []).append("invalid_input")
        for line in stdout.splitlines():
            for word in line.split():
                if word.endswith(".yaml"):
                    found.setdefault(word, []).append("ok")
    return found


@pytest.mark.parametrize("output_format", FORMATS)
def test_every_manifest_is_in_the_report_of_every_format(
    inputs: dict[str, Path], output_format: str
) -> None:
    code, stdout, stderr = _check("-f", output_format, *(str(p) for p in inputs.values()))
    assert code == 2, stderr
    found = _files_in(output_format, stdout, stderr)
    if output_format == "sarif":
        keys = {name: path.as_uri() for name, path in inputs.items()}
    else:
        keys = {name: str(path) for name, path in inputs.items()}
    invalid = ("yaml", "odcs", "ref")
    if output_format not in ("sarif", "github"):  # these two list findings, not files
        assert keys["good"] in found, found
    for name in invalid:
        assert "invalid_input" in found.get(keys[name], []), (name, found)
    if output_format in ("json", "sarif"):
        # the ODCS contract's three schema errors are three findings
        assert found[keys["odcs"]].count("invalid_input") == 3


def test_json_report_names_each_schema_error_line(inputs: dict[str, Path]) -> None:
    code, stdout, _ = _check("-f", "json", str(inputs["odcs"]), str(inputs["ref"]))
    assert code == 2
    report = json.loads(stdout)
    assert report["exit_code"] == 2
    by_file = {r["file"]: r["findings"] for r in report["results"]}
    odcs = by_file[str(inputs["odcs"])]
    assert sorted((f["location"]["line"], f["rule"]) for f in odcs) == [
        (1, "invalid_manifest"),  # no kind: the contract's first line
        (1, "invalid_manifest"),  # no status
        (9, "invalid_manifest"),  # unknown key 'colour'
    ]
    (ref,) = by_file[str(inputs["ref"])]
    assert "derivedFrom" in ref["message"]
    assert ref["location"]["line"] is not None


@pytest.mark.parametrize("output_format", ["json", "junit", "sarif", "github"])
def test_a_run_that_stops_still_writes_a_report(
    inputs: dict[str, Path], output_format: str
) -> None:
    code, stdout, stderr = _check(
        "-f", output_format, "--against", "no-such-revision", str(inputs["good"])
    )
    assert code == 2
    assert "no-such-revision" in stderr
    assert "no-such-revision" in stdout  # the report's one finding says why
    if output_format == "json":
        report = json.loads(stdout)
        assert report["exit_code"] == 2
        assert report["general"][0]["kind"] == "invalid_input"


def test_an_unreadable_catalogue_manifest_is_a_finding_not_a_stop(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog"
    shutil.copytree(MESH, catalog)
    (catalog / "commerce" / "orders.yaml").write_text(
        "apiVersion: meshgov/v1\nkind: DataProduct\nmetadata: [\n"
    )
    code, stdout, _ = _check("-f", "json", "--catalog", str(catalog), str(inputs["good"]))
    assert code == 2
    report = json.loads(stdout)
    assert [r["file"] for r in report["results"]] == [str(inputs["good"])]
    (general,) = report["general"]
    assert general["kind"] == "invalid_input"
    assert general["location"]["file"].endswith("orders.yaml")


def test_the_service_lists_every_schema_error_of_a_contract() -> None:
    from meshgov.api.errors import meshgov_error_response
    from meshgov.core.manifest import parse_manifest
    from meshgov.errors import ManifestErrors

    with pytest.raises(ManifestErrors) as caught:
        parse_manifest(BAD_ODCS, "request:manifest")
    response = meshgov_error_response(caught.value)
    assert response.status_code == 400
    body = json.loads(bytes(response.body))
    assert body["code"] == "invalid_manifest"
    assert [e["location"]["line"] for e in body["errors"]] == [1, 1, 9]
