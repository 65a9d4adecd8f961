"""`meshgov export` over the example mesh: only what the principal may see, stamped with the
decision, in each format; denials and bad input exit as the contract says."""

from __future__ import annotations

import hashlib
import io
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from click.testing import Result
from typer.testing import CliRunner

from meshgov.cli import app
from meshgov.config import DEVELOPMENT_HASH_KEY

ROOT = Path(__file__).resolve().parents[2]
MESH = ROOT / "examples" / "mesh"
CUSTOMERS = MESH / "customer" / "data" / "customers.parquet"


def export(
    principal: str, out: Path, *extra: str, port: str = "customer/customers:customers"
) -> Result:
    return CliRunner().invoke(
        app,
        [
            "export",
            "--catalog",
            str(MESH),
            "--principal",
            str(MESH / "principals" / f"{principal}.yaml"),
            "--purpose",
            "analytics",
            "--policies",
            str(ROOT / "policies"),
            "-o",
            str(out),
            *extra,
            port,
        ],
    )


@pytest.fixture(autouse=True)
def _development_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MESHGOV_HASH_KEY", raising=False)


def test_parquet_export_holds_only_what_the_analyst_may_see(tmp_path: Path) -> None:
    out = tmp_path / "customers.parquet"
    result = export("analyst-eu", out)
    assert result.exit_code == 0, result.output
    exported = pq.read_table(out)
    source = pq.read_table(CUSTOMERS)
    eu = source.filter(pa.compute.equal(source["region"], "EU"))
    assert exported.num_rows == eu.num_rows > 0
    assert set(exported["region"].to_pylist()) == {"EU"}
    expected = {
        hashlib.sha256(DEVELOPMENT_HASH_KEY + email.encode()).hexdigest()
        for email in eu["email"].to_pylist()
    }
    assert set(exported["email"].to_pylist()) == expected
    assert set(exported["full_name"].to_pylist()) == {"[REDACTED]"}
    metadata = pq.read_metadata(out).metadata
    assert metadata[b"meshgov.product_version"] == b"2.1.0"
    assert metadata[b"meshgov.principal"] == b"analyst-eu"
    assert len(metadata[b"meshgov.decision_id"]) == 32
    assert len(metadata[b"meshgov.policy_revision"]) >= 12
    assert not (tmp_path / "customers.parquet.partial").exists()


def test_csv_and_arrow_exports_carry_the_same_rows(tmp_path: Path) -> None:
    parquet, csv, arrow = (tmp_path / n for n in ("c.parquet", "c.csv", "c.arrows"))
    for out, fmt in ((parquet, "parquet"), (csv, "csv"), (arrow, "arrow")):
        result = export("analyst-us", out, "--format", fmt)
        assert result.exit_code == 0, result.output
    reference = pq.read_table(parquet)
    from_csv = pa_csv.read_csv(csv)
    with ipc.open_stream(io.BytesIO(arrow.read_bytes())) as reader:
        from_arrow = reader.read_all()
        schema_metadata = reader.schema.metadata
    assert from_csv.column_names == reference.column_names
    assert from_csv["email"].to_pylist() == reference["email"].to_pylist()
    assert from_arrow.to_pylist() == reference.to_pylist()
    assert set(reference["region"].to_pylist()) == {"US"}
    assert schema_metadata[b"meshgov.principal"] == b"analyst-us"


def test_hidden_columns_are_absent_from_the_export(tmp_path: Path) -> None:
    from meshgov.catalog import load_catalog
    from meshgov.core.principal import Principal
    from meshgov.gateway import Gateway
    from meshgov.policy_backends import load_bundle_dir

    gateway = Gateway(load_catalog(MESH), load_bundle_dir(ROOT / "policies"))
    analyst = Principal(id="a", groups=["analysts"], attributes={"region": "EU"})
    # Find a table port with a snapshot and hidden columns for the analyst in the example mesh.
    for manifest in gateway.catalog.manifests.values():
        for port in manifest.spec.output_ports:
            if not port.data:
                continue
            decision = gateway.decide(analyst, "analytics", manifest.id, port.name)
            if decision.allow and decision.hidden_columns:
                out = tmp_path / "hidden.parquet"
                result = export("analyst-eu", out, port=f"{manifest.id}:{port.name}")
                assert result.exit_code == 0, result.output
                names = {n.lower() for n in pq.read_schema(out).names}
                assert names.isdisjoint(decision.hidden_columns)
                assert names  # something is still exported
                return
    pytest.fail("the example mesh has no port with hidden columns for an analyst")


def test_a_denied_export_exits_3_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "nothing.parquet"
    result = export("nobody", out)
    assert result.exit_code == 3
    assert "no grant" in result.output
    assert not out.exists()


@pytest.mark.parametrize(
    ("port", "extra", "message"),
    [
        ("customer/customers", (), "is not PRODUCT:PORT"),
        ("customer/nope:customers", (), "unknown product"),
        ("customer/customers:nope", (), "has no output port"),
        ("commerce/orders:order_events", (), "has no snapshot"),
        ("customer/customers:customers", ("--format", "xlsx"), "unknown export format"),
    ],
)
def test_bad_input_exits_2_naming_it(
    tmp_path: Path, port: str, extra: tuple[str, ...], message: str
) -> None:
    result = export("analyst-eu", tmp_path / "x.parquet", *extra, port=port)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_the_export_is_produced_batch_by_batch(tmp_path: Path) -> None:
    """A 300,000-row snapshot comes out as several chunks, the first before the scan is done."""
    import numpy as np

    from meshgov.catalog import load_catalog
    from meshgov.core.principal import Principal
    from meshgov.exports import ExportFormat, export_chunks, plan_export
    from meshgov.gateway import Gateway
    from meshgov.governed import GovernedRunner
    from meshgov.policy_backends import load_bundle_dir

    mesh = tmp_path / "mesh"
    shutil.copytree(MESH / "customer", mesh / "customer")
    rows = 300_000
    source = pq.read_table(CUSTOMERS)
    big = pa.concat_tables([source] * (rows // source.num_rows + 1)).slice(0, rows)
    pq.write_table(big, mesh / "customer" / "data" / "customers.parquet", row_group_size=50_000)
    gateway = Gateway(load_catalog(mesh), load_bundle_dir(ROOT / "policies"))
    analyst = Principal(id="analyst-eu", groups=["analysts"], attributes={"region": "EU"})
    plan = plan_export(gateway, analyst, "analytics", "customer/customers", "customers", "x" * 32)
    runner = GovernedRunner(DEVELOPMENT_HASH_KEY)
    chunks = list(export_chunks(plan, runner, ExportFormat.arrow))
    runner.close()
    assert len(chunks) > 2
    with ipc.open_stream(io.BytesIO(b"".join(chunks))) as reader:
        table = reader.read_all()
    expected = int(np.sum(np.array(big["region"].to_pylist()) == "EU"))
    assert table.num_rows == expected
    assert max(len(c) for c in chunks) < sum(len(c) for c in chunks) / 2


def test_an_output_that_cannot_be_written_exits_2_naming_it(tmp_path: Path) -> None:
    out = tmp_path / "missing-dir" / "customers.parquet"
    result = export("analyst-eu", out)
    assert result.exit_code == 2, result.output
    assert "cannot write the export" in result.output
    assert "missing-dir" in result.output
    assert "internal_error" not in result.output


def test_an_export_warns_about_the_development_hash_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As `meshgov query` and `meshgov serve` do: hashes made with the public key are guessable."""
    public = export("analyst-eu", tmp_path / "public.parquet")
    assert public.exit_code == 0, public.output
    assert "public development key" in " ".join(public.output.split())
    monkeypatch.setenv("MESHGOV_HASH_KEY", "s3cret")
    keyed = export("analyst-eu", tmp_path / "keyed.parquet")
    assert keyed.exit_code == 0, keyed.output
    assert "development key" not in keyed.output
