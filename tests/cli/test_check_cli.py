"""`meshgov check` end to end: exit codes, bad input, formats, waivers and --against."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest
from typer.testing import CliRunner

from meshgov.cli import app

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "check"
POLICIES = FIXTURES / "policies"
MESHGOV = Path(sys.executable).parent / "meshgov"

GOOD = (FIXTURES / "mesh" / "shop" / "customers.yaml").read_text()
ALIAS_BOMB = """\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


@pytest.fixture
def mesh(tmp_path: Path) -> Path:
    root = tmp_path / "mesh"
    shutil.copytree(FIXTURES / "mesh", root)
    return root


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from an empty directory, so that no ./policies or waiver file is picked up."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["check", "--policies", str(POLICIES), *args])
    return result.exit_code, result.stdout, result.stderr


def _customers(mesh: Path) -> Path:
    return mesh / "shop" / "customers.yaml"


def _break_pii(mesh: Path) -> None:
    path = _customers(mesh)
    path.write_text(
        path.read_text().replace("classification: confidential, pii: true", "pii: true")
    )


def _assert_one_clear_line(stderr: str, file: Path, place: str | None = None) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert str(file) in lines[0]
    if place:
        assert place in lines[0], lines[0]
    assert "Traceback" not in stderr


# --- exit codes ----------------------------------------------------------------------------------


def test_clean_mesh_passes(mesh: Path, in_tmp: Path) -> None:
    code, out, err = run(str(mesh))
    assert code == 0, out + err
    assert "shop/customers" in out
    assert "passed" in out
    assert err == ""


def test_violation_exits_1_and_names_everything(mesh: Path, in_tmp: Path) -> None:
    _break_pii(mesh)
    code, out, _ = run(str(mesh))
    assert code == 1
    assert "test/pii-unclassified" in out
    assert "shop/customers:customers:email" in out
    assert f"{_customers(mesh)}:" in out
    assert "fix:" in out


def test_fail_on(mesh: Path, in_tmp: Path) -> None:
    path = _customers(mesh)
    path.write_text(path.read_text().replace("  owner: shop-data@acme.example\n", ""))
    assert run(str(mesh))[0] == 0
    assert run(str(mesh), "--fail-on", "warning")[0] == 1
    _break_pii(mesh)
    assert run(str(mesh), "--fail-on", "never")[0] == 0


def test_usage_errors_exit_2(mesh: Path, in_tmp: Path) -> None:
    assert run(str(mesh), "--format", "yaml")[0] == 2
    assert run(str(mesh), "--fail-on", "sometimes")[0] == 2
    assert CliRunner().invoke(app, ["check"]).exit_code == 2


# --- bad input -----------------------------------------------------------------------------------

BAD_INPUTS = {
    "malformed.yaml": (GOOD.replace("  name: customers\n", "  name: [customers\n"), ":6"),
    "wrong_types.yaml": (GOOD.replace("version: 1.0.0", "version: [1, 0]"), ":6"),
    "unknown_key.yaml": (GOOD.replace("  status: active\n", "  statuz: active\n"), ":9"),
    "empty.yaml": ("", "empty document"),
    "alias_bomb.yaml": (ALIAS_BOMB, "alias bomb"),
    "not_a_mapping.yaml": ("- just\n- a list\n", "mapping"),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_manifest_exits_2_with_one_line(name: str, tmp_path: Path, in_tmp: Path) -> None:
    text, place = BAD_INPUTS[name]
    path = tmp_path / name
    path.write_text(text)
    code, _, err = run(str(path))
    assert code == 2
    _assert_one_clear_line(err, path, place)


def test_missing_file_exits_2(tmp_path: Path, in_tmp: Path) -> None:
    path = tmp_path / "absent.yaml"
    code, _, err = run(str(path))
    assert code == 2
    _assert_one_clear_line(err, path, "no such file")


def test_non_utf8_exits_2_naming_the_line(tmp_path: Path, in_tmp: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(
        GOOD.replace("Customers of the shop.", "Kunden der Stra\xdfe").encode("latin-1")
    )
    code, _, err = run(str(path))
    assert code == 2
    _assert_one_clear_line(err, path, ":8")
    assert "UTF-8" in err


def test_huge_file_exits_2(tmp_path: Path, in_tmp: Path) -> None:
    path = tmp_path / "huge.yaml"
    filler = "# " + "x" * 1022 + "\n"
    path.write_text(GOOD + filler * (50 * 1024))
    assert path.stat().st_size > 50_000_000
    code, _, err = run(str(path))
    assert code == 2
    _assert_one_clear_line(err, path, "limit")


def test_bad_file_does_not_hide_the_others(mesh: Path, in_tmp: Path) -> None:
    _break_pii(mesh)
    broken = mesh / "broken.yaml"
    broken.write_text("apiVersion: meshgov/v1\nkind: DataProduct\nmetadata: [\n")
    code, out, err = run(str(mesh), "--format", "json")
    assert code == 2
    _assert_one_clear_line(err, broken)
    results = {r["file"]: r for r in json.loads(out)["results"]}
    assert results[str(broken)]["findings"][0]["kind"] == "invalid_input"
    assert results[str(_customers(mesh))]["findings"][0]["rule"] == "test/pii-unclassified"


def _broken_policies(tmp_path: Path) -> Path:
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    rego = policies / "meshgov" / "main" / "main.rego"
    rego.write_text(rego.read_text() + "\nviolations contains x if {\n")
    return policies


def test_rego_syntax_error_exits_4_with_file_and_line(
    mesh: Path, tmp_path: Path, in_tmp: Path
) -> None:
    policies = _broken_policies(tmp_path)
    result = CliRunner().invoke(app, ["check", "--policies", str(policies), str(mesh)])
    assert result.exit_code == 4
    assert "meshgov/main/main.rego:" in result.stderr
    assert "Traceback" not in result.output


def test_missing_policies_dir_exits_2(mesh: Path, tmp_path: Path, in_tmp: Path) -> None:
    result = CliRunner().invoke(app, ["check", "--policies", str(tmp_path / "none"), str(mesh)])
    assert result.exit_code == 2
    assert "policy directory not found" in result.stderr


# --- formats -------------------------------------------------------------------------------------


def test_json_format(mesh: Path, in_tmp: Path) -> None:
    _break_pii(mesh)
    code, out, _ = run(str(mesh), "--format", "json")
    assert code == 1
    document = json.loads(out)
    assert document["exit_code"] == 1
    finding = document["results"][0]["findings"][0]
    assert finding["rule"] == "test/pii-unclassified"
    assert finding["location"]["column"] == "email"
    assert isinstance(finding["location"]["line"], int)


def test_junit_format(mesh: Path, in_tmp: Path) -> None:
    _break_pii(mesh)
    code, out, _ = run(str(mesh), "--format", "junit")
    assert code == 1
    root = ElementTree.fromstring(out)
    failures = root.findall(".//testcase[failure]")
    assert [c.get("name") for c in failures] == ["test/pii-unclassified"]
    assert failures[0].get("classname") == "shop/customers"
    passing = [c.get("classname") for c in root.iter("testcase") if not len(c)]
    assert passing == ["shop/orders"]


def test_sarif_format(mesh: Path, in_tmp: Path) -> None:
    _break_pii(mesh)
    code, out, _ = run(str(mesh), "--format", "sarif")
    assert code == 1
    sarif = json.loads(out)
    assert sarif["version"] == "2.1.0"
    run_ = sarif["runs"][0]
    assert [r["id"] for r in run_["tool"]["driver"]["rules"]] == ["test/pii-unclassified"]
    (result,) = run_["results"]
    physical = result["locations"][0]["physicalLocation"]
    assert physical["artifactLocation"]["uri"] == _customers(mesh).as_uri()
    line = physical["region"]["startLine"]
    assert "name: email" in _customers(mesh).read_text().splitlines()[line - 1]


def test_sarif_uris_of_awkward_paths(mesh: Path, in_tmp: Path) -> None:
    _break_pii(mesh)
    odd = in_tmp / "my dir" / "x#1.yaml"
    odd.parent.mkdir()
    shutil.copy(_customers(mesh), odd)
    # Inside the repository root (here the current directory), absolute or not: root-relative.
    for arg, uri, base in (
        (str(odd), "my%20dir/x%231.yaml", "%SRCROOT%"),
        ("my dir/x#1.yaml", "my%20dir/x%231.yaml", "%SRCROOT%"),
    ):
        code, out, _ = run(arg, "--format", "sarif")
        assert code == 1
        (result,) = json.loads(out)["runs"][0]["results"]
        artifact = result["locations"][0]["physicalLocation"]["artifactLocation"]
        assert artifact["uri"] == uri
        assert artifact.get("uriBaseId") == base
    assert odd.as_uri().endswith("/my%20dir/x%231.yaml")


def test_github_format(mesh: Path, in_tmp: Path) -> None:
    _break_pii(mesh)
    code, out, _ = run(str(mesh), "--format", "github")
    assert code == 1
    (line,) = out.strip().splitlines()
    assert line.startswith(f"::error file={_customers(mesh)},line=")
    assert "title=test/pii-unclassified (shop/customers%3Acustomers%3Aemail)::" in line


# --- waivers -------------------------------------------------------------------------------------

WAIVER = (
    "- rule: test/pii-unclassified\n"
    "  product: shop/customers\n"
    "  column: email\n"
    "  justification: reclassification tracked in GOV-7\n"
    "  expires: {expires}\n"
)


def test_default_waiver_file_suppresses_findings(mesh: Path, in_tmp: Path) -> None:
    _break_pii(mesh)
    (in_tmp / ".meshgov-waivers.yaml").write_text(WAIVER.format(expires="2999-12-31"))
    code, out, _ = run(str(mesh), "--format", "json")
    assert code == 0
    document = json.loads(out)
    assert document["summary"]["waived"] == 1
    assert document["results"][0]["waived"][0]["rule"] == "test/pii-unclassified"


def test_expired_waiver_is_reported(mesh: Path, tmp_path: Path, in_tmp: Path) -> None:
    _break_pii(mesh)
    waivers = tmp_path / "waivers.yaml"
    waivers.write_text(WAIVER.format(expires="2020-01-31"))
    code, out, _ = run(str(mesh), "--waivers", str(waivers))
    assert code == 1
    assert "waiver.expired" in out
    assert "2020-01-31" in out
    assert "test/pii-unclassified" in out


def test_malformed_waiver_file_exits_2(mesh: Path, tmp_path: Path, in_tmp: Path) -> None:
    waivers = tmp_path / "waivers.yaml"
    waivers.write_text(WAIVER.format(expires="someday"))
    code, _, err = run(str(mesh), "--waivers", str(waivers))
    assert code == 2
    _assert_one_clear_line(err, waivers, ":5")


# --- --against -----------------------------------------------------------------------------------


def _remove_region(mesh: Path) -> None:
    path = _customers(mesh)
    text = path.read_text()
    path.write_text(
        text.replace("        - {name: region, type: string, classification: internal}\n", "")
    )


def test_against_directory(mesh: Path, tmp_path: Path, in_tmp: Path) -> None:
    released = tmp_path / "released"
    shutil.copytree(mesh, released)
    _remove_region(mesh)
    code, out, _ = run(str(_customers(mesh)), "--against", str(released))
    assert code == 1
    assert "test/column-removed" in out
    assert "shop/customers:customers:region" in out
    assert "against 1.0.0" in out


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def test_against_git_ref(mesh: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    _git(mesh, "init", "-q", "-b", "main")
    _git(mesh, "add", ".")
    _git(mesh, "commit", "-q", "-m", "release 1.0.0")
    _git(mesh, "tag", "v1.0.0")
    _remove_region(mesh)
    monkeypatch.chdir(mesh)
    code, out, _ = run("shop/customers.yaml", "--against", "v1.0.0", "--format", "json")
    assert code == 1
    (finding,) = json.loads(out)["results"][0]["findings"]
    assert finding["rule"] == "test/column-removed"
    code, _, err = run("shop/customers.yaml", "--against", "v9.9.9")
    assert code == 2
    assert "v9.9.9" in err
    assert "not a git revision" in err


# --- the installed command, in a fresh process ---------------------------------------------------


def _meshgov(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    if not MESHGOV.exists():
        pytest.skip(f"{MESHGOV} is not installed")
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(
        [str(MESHGOV), "check", *args], cwd=cwd, capture_output=True, text=True, env=env
    )


def test_subprocess_pass_and_json(mesh: Path, in_tmp: Path) -> None:
    proc = _meshgov("--policies", str(POLICIES), str(mesh), "--format", "json", cwd=in_tmp)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["passed"] is True
    assert proc.stderr == ""


@pytest.mark.parametrize("name", ["malformed.yaml", "alias_bomb.yaml", "wrong_types.yaml"])
def test_subprocess_bad_input(name: str, tmp_path: Path, in_tmp: Path) -> None:
    text, place = BAD_INPUTS[name]
    path = tmp_path / name
    path.write_text(text)
    proc = _meshgov("--policies", str(POLICIES), str(path), cwd=in_tmp)
    assert proc.returncode == 2
    _assert_one_clear_line(proc.stderr, path, place)


def test_subprocess_non_utf8(tmp_path: Path, in_tmp: Path) -> None:
    path = tmp_path / "bytes.yaml"
    path.write_bytes(b"apiVersion: meshgov/v1\nkind: \xff\xfe\n")
    proc = _meshgov("--policies", str(POLICIES), str(path), cwd=in_tmp)
    assert proc.returncode == 2
    _assert_one_clear_line(proc.stderr, path, ":2")


def test_subprocess_rego_error_exits_4(mesh: Path, tmp_path: Path, in_tmp: Path) -> None:
    policies = _broken_policies(tmp_path)
    proc = _meshgov("--policies", str(policies), str(mesh), "--format", "json", cwd=in_tmp)
    assert proc.returncode == 4
    # stdout holds the report and nothing else (the compiler's chatter stays off it).
    report = json.loads(proc.stdout)
    assert report["exit_code"] == 4
    assert [f["rule"] for f in report["general"]] == ["policy_compile_error"]
    assert "meshgov/main/main.rego:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_subprocess_many_manifests_keep_stdout_clean(mesh: Path, in_tmp: Path) -> None:
    """Worker threads compile the policies concurrently; stdout must still carry only the JSON."""
    orders = (mesh / "shop" / "orders.yaml").read_text()
    for i in range(60):
        (mesh / "shop" / f"orders_{i}.yaml").write_text(
            orders.replace("  name: orders\n", f"  name: orders_{i}\n")
        )
    proc = _meshgov("--policies", str(POLICIES), str(mesh), "--format", "json", cwd=in_tmp)
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    assert document["summary"]["manifests"] == 62
    assert proc.stderr == ""


def test_directory_without_manifests_exits_2(tmp_path: Path, in_tmp: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.yaml").write_text("just: notes\n")
    code, _, err = run(str(empty))
    assert code == 2
    assert "no manifests found" in err


def test_catalog_gives_identity_rules_the_rest_of_the_mesh(mesh: Path, in_tmp: Path) -> None:
    orders = mesh / "shop" / "orders.yaml"
    orders.write_text(
        orders.read_text().replace(
            "name: customer_id, type: string, entity: customer,", "name: cust_id, type: string,"
        )
    )
    code, out, _ = run(
        str(orders), "--catalog", str(mesh), "--format", "json", "--fail-on", "warning"
    )
    assert code == 1
    rules = [f["rule"] for f in json.loads(out)["results"][0]["findings"]]
    assert rules == ["test/identity"]
    assert run(str(orders), "--catalog", str(mesh / "absent"))[0] == 2


# --- the repository's own policies and examples --------------------------------------------------


def test_example_mesh_passes_with_the_shipped_policies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(app, ["check", "examples/mesh"])
    assert result.exit_code == 0, result.output
    assert "passed" in result.stdout


def test_broken_examples_each_fail_their_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    broken = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "examples" / "broken").glob("*.yaml"))
    args = ["check", *broken, "--against", "examples/previous", "--format", "json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.stderr
    for entry in json.loads(result.stdout)["results"]:
        package, _, rule = Path(entry["file"]).stem.partition("-")
        assert {f["rule"] for f in entry["findings"]} == {f"{package}/{rule}"}, entry["file"]


def test_error_lines_print_as_written_no_emoji_or_markup(in_tmp: Path) -> None:
    """`file.yaml:100:` once printed as `file.yaml💯` (rich emoji codes); `[x]` as markup."""
    bad = in_tmp / "x[bold]y.yaml"
    bad.write_text("# filler\n" * 99 + "apiVersion: meshgov/v9\n", encoding="utf-8")
    code, _, stderr = run(str(bad))
    assert code == 2
    assert "💯" not in stderr
    assert f"{bad}:100" in stderr or "x[bold]y.yaml:100" in stderr
