"""The release gate facade: policies compiled once, manifests checked, previous versions, scans."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from meshgov.core.policy import PolicyBundle, PreparedPolicy
from meshgov.core.report import FindingKind, Report, Severity
from meshgov.core.waivers import parse_waivers
from meshgov.errors import InputError, PolicyCompileError
from meshgov.gate import Gate, ScanOptions, check_paths, default_policies_dir
from meshgov.policy_backends import load_bundle_dir
from meshgov.policy_backends.embedded import EmbeddedEngine

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "check"
POLICIES = FIXTURES / "policies"


@pytest.fixture(scope="module")
def gate() -> Gate:
    return Gate.from_dir(POLICIES)


@pytest.fixture
def mesh(tmp_path: Path) -> Path:
    root = tmp_path / "mesh"
    shutil.copytree(FIXTURES / "mesh", root)
    return root


def _customers(mesh: Path) -> Path:
    return mesh / "shop" / "customers.yaml"


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def _rules(report: Report) -> list[tuple[str, str | None, str | None]]:
    return [(f.rule, f.location.port, f.location.column) for f in report.findings()]


def test_clean_mesh_passes(gate: Gate, mesh: Path) -> None:
    report = gate.check_paths([mesh])
    assert report.exit_code() == 0
    assert [r.product for r in report.results] == ["shop/customers", "shop/orders"]
    assert report.revision == load_bundle_dir(POLICIES).revision


def test_violation_names_rule_place_and_line(gate: Gate, mesh: Path) -> None:
    _edit(_customers(mesh), "classification: confidential, pii: true", "pii: true")
    report = gate.check_paths([_customers(mesh)])
    assert report.exit_code() == 1
    (finding,) = list(report.findings())
    assert finding.rule == "test/pii-unclassified"
    assert finding.severity is Severity.error
    assert finding.location.product == "shop/customers"
    assert (finding.location.port, finding.location.column) == ("customers", "email")
    assert finding.location.file == str(_customers(mesh))
    lines = _customers(mesh).read_text().splitlines()
    assert "name: email" in lines[finding.location.line - 1]  # type: ignore[operator]
    assert finding.fix


def test_warning_only_fails_with_fail_on_warning(gate: Gate, mesh: Path) -> None:
    _edit(_customers(mesh), "  owner: shop-data@acme.example\n", "")
    report = gate.check_paths([_customers(mesh)])
    assert _rules(report) == [("test/owner-missing", None, None)]
    assert report.exit_code() == 0
    from meshgov.core.report import FailOn

    assert report.exit_code(FailOn.warning) == 1


class _CountingEngine:
    """Wraps the embedded engine to count compilations and evaluations."""

    name = "counting"

    def __init__(self) -> None:
        self.prepared = 0
        self.evaluated = 0

    def prepare(
        self,
        bundle: PolicyBundle,
        extra_data: Mapping[str, Any] | None = None,
        *,
        include_tests: bool = False,
        entrypoints: Sequence[str] = (),
    ) -> PreparedPolicy:
        self.prepared += 1
        inner = EmbeddedEngine().prepare(
            bundle, extra_data, include_tests=include_tests, entrypoints=entrypoints
        )
        engine = self

        class Counting:
            revision = inner.revision

            def evaluate(self, query: str, input_document: Any) -> Any:
                engine.evaluated += 1
                return inner.evaluate(query, input_document)

        return Counting()


def test_policies_are_compiled_once_for_many_manifests(mesh: Path) -> None:
    for i in range(5):
        copy = mesh / "more" / f"p{i}.yaml"
        copy.parent.mkdir(exist_ok=True)
        copy.write_text(_customers(mesh).read_text().replace("name: customers\n", f"name: p{i}\n"))
    engine = _CountingEngine()
    report = Gate.from_dir(POLICIES, engine).check_paths([mesh])
    assert len(report.results) == 7
    assert engine.prepared == 1
    assert engine.evaluated == 7


def test_invalid_manifest_does_not_hide_the_others(gate: Gate, mesh: Path) -> None:
    broken = mesh / "shop" / "broken.yaml"
    broken.write_text(
        "apiVersion: meshgov/v1\nkind: DataProduct\nmetadata:\n  domain: shop\n  name: [x\n"
    )
    missing = mesh / "nowhere.yaml"
    report = gate.check_paths([mesh, missing])
    assert report.exit_code() == 2
    by_file = {Path(r.file).name: r for r in report.results}
    assert not by_file["customers.yaml"].findings
    bad = by_file["broken.yaml"].findings[0]
    assert bad.kind is FindingKind.invalid_input
    assert bad.location.file == str(broken)
    assert bad.location.line == 6
    assert by_file["nowhere.yaml"].findings[0].message == "no such file"


def test_duplicate_product_is_invalid(gate: Gate, mesh: Path) -> None:
    twin = mesh / "twin.yaml"
    twin.write_text(_customers(mesh).read_text())
    report = gate.check_paths([_customers(mesh), twin])
    assert report.exit_code() == 2
    (finding,) = list(report.findings())
    assert finding.location.file == str(twin)
    assert "also defined in" in finding.message


def test_policy_compile_error_names_file_and_line(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    rego = policies / "meshgov" / "main" / "main.rego"
    text = rego.read_text().splitlines()
    text[5] = "_loc(port, column) := {"  # unclosed
    rego.write_text("\n".join(text) + "\n")
    with pytest.raises(PolicyCompileError) as caught:
        Gate.from_dir(policies)
    assert caught.value.location is not None
    assert caught.value.location.file == str(rego)
    assert caught.value.location.line is not None


def test_default_policies_prefer_the_working_directory(tmp_path: Path) -> None:
    assert default_policies_dir(tmp_path).name == "policies"  # the shipped ones
    (tmp_path / "policies").mkdir()
    assert default_policies_dir(tmp_path) == tmp_path / "policies"


# --- snapshots -----------------------------------------------------------------------------------


def _add_snapshot(mesh: Path, data: str) -> None:
    _edit(
        _customers(mesh),
        "      table: shop.customers\n",
        f"      table: shop.customers\n      data: {data}\n",
    )


def _customer_rows(n: int) -> dict[str, list[str]]:
    return {
        "customer_id": [f"C{i:07d}" for i in range(n)],
        "email": [f"user{i}@example.com" for i in range(n)],
        "region": ["EU" if i % 2 else "US" for i in range(n)],
        "notes": [f"call +4420794{i:05d}" if i % 3 else f"+4420794{i:05d}" for i in range(n)],
    }


def test_parquet_snapshot_scan_reports_undeclared_pii(gate: Gate, mesh: Path) -> None:
    (mesh / "shop" / "data").mkdir()
    pq.write_table(pa.table(_customer_rows(3000)), mesh / "shop" / "data" / "customers.parquet")
    _add_snapshot(mesh, "data/customers.parquet")
    report = gate.check_paths([_customers(mesh)])
    (finding,) = list(report.findings())
    assert finding.rule == "test/undeclared-in-snapshot"
    assert (finding.location.port, finding.location.column) == ("customers", "notes")
    assert "phone" in finding.message
    assert "1000 sampled" in finding.message  # the default sample
    assert "+44" not in finding.message
    assert gate.check_paths([_customers(mesh)], scan=ScanOptions(enabled=False)).exit_code() == 0


def test_csv_snapshot_keeps_text_as_written(gate: Gate, mesh: Path) -> None:
    (mesh / "shop" / "data").mkdir()
    rows = ["customer_id,email,region,mobile"]
    rows += [f"C{i:07d},u{i}@example.com,EU,+4479460{i:05d}" for i in range(50)]
    (mesh / "shop" / "data" / "customers.csv").write_text("\n".join(rows) + "\n")
    _add_snapshot(mesh, "data/customers.csv")
    report = gate.check_paths([_customers(mesh)])
    assert _rules(report) == [("test/undeclared-in-snapshot", "customers", "mobile")]


def test_missing_snapshot_is_invalid_input_naming_the_file(gate: Gate, mesh: Path) -> None:
    _add_snapshot(mesh, "data/absent.parquet")
    report = gate.check_paths([mesh])
    assert report.exit_code() == 2
    (finding,) = list(report.findings())
    assert finding.kind is FindingKind.invalid_input
    assert "absent.parquet" in finding.message
    assert finding.location.file == str(_customers(mesh))
    lines = _customers(mesh).read_text().splitlines()
    assert "data: data/absent.parquet" in lines[finding.location.line - 1]  # type: ignore[operator]
    orders = next(r for r in report.results if r.product == "shop/orders")
    assert not orders.findings


def test_corrupt_snapshot_is_invalid_input(gate: Gate, mesh: Path) -> None:
    (mesh / "shop" / "data").mkdir()
    (mesh / "shop" / "data" / "customers.parquet").write_bytes(b"not parquet at all")
    _add_snapshot(mesh, "data/customers.parquet")
    report = gate.check_paths([_customers(mesh)])
    assert report.exit_code() == 2
    assert "cannot read snapshot" in next(report.findings()).message


# --- previous versions ---------------------------------------------------------------------------


def _remove_region(path: Path) -> None:
    _edit(path, "        - {name: region, type: string, classification: internal}\n", "")


def test_against_directory_finds_breaking_change(gate: Gate, mesh: Path, tmp_path: Path) -> None:
    released = tmp_path / "released"
    shutil.copytree(mesh, released)
    _remove_region(_customers(mesh))
    report = gate.check_paths([_customers(mesh)], against=str(released))
    assert _rules(report) == [("test/column-removed", "customers", "region")]
    assert report.results[0].previous_version == "1.0.0"
    _edit(_customers(mesh), "version: 1.0.0", "version: 2.0.0")
    assert gate.check_paths([_customers(mesh)], against=str(released)).exit_code() == 0


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture
def repo(mesh: Path) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    _git(mesh, "init", "-q", "-b", "main")
    _git(mesh, "add", ".")
    _git(mesh, "commit", "-q", "-m", "v1")
    _git(mesh, "tag", "v1.0.0")
    return mesh


def test_against_git_ref(gate: Gate, repo: Path) -> None:
    _remove_region(_customers(repo))
    new = repo / "shop" / "new.yaml"
    new.write_text(
        (repo / "shop" / "orders.yaml").read_text().replace("name: orders\n", "name: new\n")
    )
    report = gate.check_paths([repo / "shop"], against="v1.0.0")
    assert _rules(report) == [("test/column-removed", "customers", "region")]
    versions = {r.product: r.previous_version for r in report.results}
    assert versions == {"shop/customers": "1.0.0", "shop/new": None, "shop/orders": "1.0.0"}


def test_against_git_ref_from_another_directory(
    gate: Gate, repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _remove_region(_customers(repo))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    report = gate.check_paths([_customers(repo)], against="HEAD")
    assert _rules(report) == [("test/column-removed", "customers", "region")]


def test_bad_git_ref_is_invalid_input(gate: Gate, repo: Path) -> None:
    with pytest.raises(InputError, match="not a git revision"):
        gate.check_paths([_customers(repo)], against="no-such-tag")
    with pytest.raises(InputError, match="not a git revision"):
        gate.check_paths([_customers(repo)], against="--output=/tmp/x")


def test_against_outside_git_is_invalid_input(gate: Gate, mesh: Path) -> None:
    with pytest.raises(InputError, match="not in a git repository"):
        gate.check_paths([_customers(mesh)], against="v1.0.0")


def test_unparseable_previous_version_is_invalid_input(gate: Gate, repo: Path) -> None:
    _customers(repo).write_text("apiVersion: meshgov/v1\nkind: [\n")
    _git(repo, "commit", "-q", "-am", "broken")
    shutil.copy(repo / "shop" / "orders.yaml", _customers(repo))
    _edit(_customers(repo), "name: orders\n", "name: customers\n")
    report = gate.check_paths([_customers(repo)], against="HEAD")
    assert report.exit_code() == 2
    finding = next(report.findings())
    assert "previous version" in finding.message
    assert finding.location.file == "HEAD:shop/customers.yaml"


# --- waivers and identity facts ------------------------------------------------------------------


def test_waivers_suppress_until_expiry(gate: Gate, mesh: Path) -> None:
    _edit(_customers(mesh), "classification: confidential, pii: true", "pii: true")
    waivers = parse_waivers(
        "- {rule: test/pii-unclassified, product: shop/customers, column: email,\n"
        "   justification: being fixed, expires: 2026-06-30}\n",
        "w.yaml",
    )
    before = gate.check_paths([mesh], waivers=waivers, today=dt.date(2026, 6, 30))
    assert before.exit_code() == 0
    assert len(list(before.waived())) == 1
    after = gate.check_paths([mesh], waivers=waivers, today=dt.date(2026, 7, 1))
    assert sorted(f.rule for f in after.findings()) == ["test/pii-unclassified", "waiver.expired"]
    assert after.exit_code() == 1


def test_identity_facts_reach_the_policies(gate: Gate, mesh: Path) -> None:
    orders = mesh / "shop" / "orders.yaml"
    _edit(
        orders, "name: customer_id, type: string, entity: customer,", "name: cust_id, type: string,"
    )
    report = gate.check_paths([orders], catalog_dir=mesh)
    assert ("test/identity", "orders", "cust_id") in _rules(report)


def test_check_paths_loads_policies_and_waiver_file(mesh: Path, tmp_path: Path) -> None:
    waiver_file = tmp_path / "w.yaml"
    waiver_file.write_text(
        "- {rule: test/pii-unclassified, product: shop/customers, justification: j,"
        " expires: 2000-01-01}\n"
    )
    report = check_paths([mesh], policies=POLICIES, waiver_file=waiver_file)
    assert [f.rule for f in report.general] == ["waiver.expired"]
    with pytest.raises(InputError, match="waiver file not found"):
        check_paths([mesh], policies=POLICIES, waiver_file=tmp_path / "none.yaml")


def test_waivers_that_match_nothing_are_warned_about(gate: Gate, mesh: Path) -> None:
    waivers = parse_waivers(
        "- {rule: test/pii-unclasified, product: shop/customers, justification: typo,"
        " expires: 2099-01-01}\n"
        "- {rule: test/pii-unclassified, product: shop/customers, port: customerz,"
        " justification: wrong port, expires: 2099-01-01}\n"
        "- {rule: test/pii-unclassified, product: shop/customers, column: emial,"
        " justification: wrong column, expires: 2099-01-01}\n"
        "- {rule: test/pii-unclassified, product: shop/customerz, justification: no product,"
        " expires: 2099-01-01}\n"
        "- {rule: test/pii-unclassified, product: shop/customers, column: email,"
        " justification: right, expires: 2099-01-01}\n"
        "- {rule: test/pii-unclassified, product: other/thing, justification: another repo,"
        " expires: 2000-01-01}\n",
        "w.yaml",
    )
    customers = [_customers(mesh)]
    alone = gate.check_paths(customers, waivers=waivers)
    unmatched = [f for f in alone.general if f.rule == "waiver.unmatched"]
    assert [f.location.line for f in unmatched] == [1, 2, 3]
    assert "no policy reports a rule 'test/pii-unclasified'" in unmatched[0].message
    assert "no port 'customerz'" in unmatched[1].message
    assert "no column 'emial'" in unmatched[2].message
    # The expired waiver is another product's, not checked here: not this run's business.
    assert not [f for f in alone.general if f.rule == "waiver.expired"]
    # With the mesh, a product that exists nowhere is named too.
    meshed = gate.check_paths(customers, waivers=waivers, catalog_dir=mesh)
    lines = [f.location.line for f in meshed.general if f.rule == "waiver.unmatched"]
    assert lines == [1, 2, 3, 4, 6]


def test_worker_threads_give_the_same_report_in_order(mesh: Path) -> None:
    orders = (mesh / "shop" / "orders.yaml").read_text()
    for i in range(50):
        text = orders.replace("  name: orders\n", f"  name: orders_{i}\n")
        if i % 7 == 0:
            text = text.replace("  owner: shop-data@acme.example\n", "")
        (mesh / "shop" / f"orders_{i:02d}.yaml").write_text(text)
    bundle = load_bundle_dir(POLICIES)
    serial = Gate(bundle, workers=1)
    threaded = Gate(bundle, workers=3)
    try:
        done: list[int] = []
        one = serial.check_paths([mesh])
        many = threaded.check_paths([mesh], progress=lambda n, total: done.append(n))
    finally:
        threaded.close()
    assert many == one
    assert len(many.results) == 52
    assert sum(1 for _ in many.findings()) == 8
    assert done == list(range(1, 53))


def test_against_git_ref_with_a_missing_manifest(gate: Gate, repo: Path) -> None:
    report = gate.check_paths([repo / "nowhere" / "absent.yaml", _customers(repo)], against="HEAD")
    by_name = {Path(r.file).name: r for r in report.results}
    assert by_name["absent.yaml"].findings[0].message == "no such file"
    assert by_name["customers.yaml"].previous_version == "1.0.0"


def test_odcs_contract_findings_point_at_the_property(gate: Gate, tmp_path: Path) -> None:
    contract = tmp_path / "payments.odcs.yaml"
    text = (
        Path(__file__).resolve().parents[1] / "examples" / "odcs" / "payments.odcs.yaml"
    ).read_text()
    lines = text.splitlines()
    start = lines.index("      - id: card_number_prop")
    at = next(i for i in range(start, len(lines)) if "classification:" in lines[i])
    lines[at] = lines[at].replace("restricted", "public")
    contract.write_text("\n".join(lines) + "\n")
    report = gate.check_paths([contract])
    (finding,) = [f for f in report.findings() if f.rule == "test/pii-unclassified"]
    assert finding.location.column == "card_number"
    assert finding.location.line == start + 1


def test_scan_reads_a_bounded_spread_of_a_large_snapshot(tmp_path: Path) -> None:
    from meshgov import scan

    path = tmp_path / "big.parquet"
    emails = [f"u{i}@example.com" for i in range(2000)]
    table = pa.table({"contact": emails, "n": list(range(2000))})
    pq.write_table(table, path, row_group_size=100)  # 20 row groups
    read = scan.read_text_columns(path)
    assert read.column_names == ["contact"]  # text columns only
    assert read.num_rows == scan.MAX_ROW_GROUPS * 100
    sample = scan.sample_rows(read, 10)
    assert sample.num_rows == 10
    assert sample == scan.sample_rows(read, 10)  # deterministic
    assert sample.column("contact")[0].as_py() == "u0@example.com"


def test_scan_of_empty_and_unknown_files(tmp_path: Path) -> None:
    from meshgov import scan

    path = tmp_path / "empty.csv"
    path.write_text("contact,region\n")
    assert scan.read_text_columns(path).num_rows == 0
    (tmp_path / "blank.csv").write_text("")
    with pytest.raises(InputError, match="cannot read snapshot"):
        scan.read_text_columns(tmp_path / "blank.csv")
    (tmp_path / "data.xlsx").write_bytes(b"x")
    with pytest.raises(InputError, match="Parquet"):
        scan.read_text_columns(tmp_path / "data.xlsx")


def test_the_odcs_twin_of_a_manifest_is_the_same_release(tmp_path: Path) -> None:
    """ODCS and meshgov forms of one product and version differ only where the snapshot sits."""
    root = Path(__file__).resolve().parents[1]
    previous = tmp_path / "previous"
    previous.mkdir()
    shutil.copy(root / "examples/mesh/payments/payments.yaml", previous)
    shipped = Gate.from_dir(root / "policies")
    report = shipped.check_paths(
        [root / "examples/odcs/payments.odcs.yaml"],
        against=str(previous),
        catalog_dir=root / "examples/mesh",
    )
    rules = [f.rule for f in report.findings()]
    assert "release/version-not-bumped" not in rules
    assert not [f for f in report.findings() if f.severity.value == "error"], rules
