"""A local catalogue (`--catalog DIR`): a port's `data:` snapshot may not leave the directory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meshgov.catalog import load_catalog
from meshgov.cli import app
from meshgov.errors import ManifestError

ROOT = Path(__file__).resolve().parents[2]
MESH = ROOT / "examples" / "mesh"
PAYMENTS_SNAPSHOT = MESH / "payments" / "data" / "payments.parquet"


@pytest.fixture(autouse=True)
def hash_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHGOV_HASH_KEY", "cli-test-key")


def _mesh(tmp_path: Path, data: str) -> tuple[Path, Path]:
    """A copy of the example mesh inside ``tmp_path/mesh`` whose customers port reads ``data``."""
    mesh = tmp_path / "mesh"
    shutil.copytree(MESH, mesh)
    manifest = mesh / "customer" / "customers.yaml"
    text = manifest.read_text(encoding="utf-8")
    assert "      data: data/customers.parquet\n" in text
    manifest.write_text(
        text.replace("data: data/customers.parquet", f"data: {json.dumps(data)}"),
        encoding="utf-8",
    )
    return mesh, manifest


def _data_line(manifest: Path) -> int:
    lines = manifest.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.strip().startswith("data:"))


def _query(mesh: Path, sql: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        app,
        [
            "query",
            "--catalog",
            str(mesh),
            "--principal",
            str(MESH / "principals" / "analyst-eu.yaml"),
            "--purpose",
            "analytics",
            "--format",
            "json",
            sql,
        ],
    )
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ("../../outside.parquet", "leaves the catalogue directory"),
        (str(PAYMENTS_SNAPSHOT), "is an absolute path"),
    ],
)
def test_data_outside_the_catalogue_is_exit_2_naming_file_and_line(
    tmp_path: Path, data: str, why: str
) -> None:
    (tmp_path / "outside.parquet").write_bytes(PAYMENTS_SNAPSHOT.read_bytes())
    mesh, manifest = _mesh(tmp_path, data)
    code, out, err = _query(mesh, "SELECT order_id FROM commerce.orders LIMIT 1")
    assert code == 2, err
    assert out == ""
    assert f"{manifest}:{_data_line(manifest)}" in err
    assert "spec.outputPorts[0].data" in err
    assert why in err


def test_a_symbolic_link_out_of_the_catalogue_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "customers.parquet").write_bytes(
        (MESH / "customer" / "data" / "customers.parquet").read_bytes()
    )
    mesh, manifest = _mesh(tmp_path, "linked/customers.parquet")
    (manifest.parent / "linked").symlink_to(outside)
    with pytest.raises(ManifestError, match="symbolic link") as caught:
        load_catalog(mesh)
    assert caught.value.location is not None
    assert caught.value.location.file == str(manifest)
    assert caught.value.location.line == _data_line(manifest)
    code, _, err = _query(mesh, "SELECT order_id FROM commerce.orders LIMIT 1")
    assert code == 2
    assert "symbolic link" in err


def test_data_anywhere_inside_the_catalogue_is_read(tmp_path: Path) -> None:
    # `..` is fine while the path stays in the catalogue, and so is a link that stays inside.
    mesh, manifest = _mesh(tmp_path, "../customer/data/customers.parquet")
    code, out, err = _query(mesh, "SELECT count(*) AS n FROM customer.customers")
    assert code == 0, err
    assert '"n"' in out  # (the exact JSON layout of results is `meshgov query`'s business)
    (manifest.parent / "inside").symlink_to(manifest.parent / "data")
    manifest.write_text(
        manifest.read_text(encoding="utf-8").replace(
            "../customer/data/customers.parquet", "inside/customers.parquet"
        ),
        encoding="utf-8",
    )
    assert "customer/customers" in load_catalog(mesh).manifests
