"""Parsed manifests kept on disk between processes: used when the file is unchanged, never when
it changed, and never at the cost of an error's place."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import meshgov.catalog as catalog_module
from meshgov.catalog import load_catalog
from meshgov.errors import ManifestError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def mesh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MESHGOV_CACHE_DIR", str(tmp_path / "cache"))
    target = tmp_path / "mesh"
    shutil.copytree(ROOT / "examples" / "mesh", target, ignore=shutil.ignore_patterns("*.parquet"))
    return target


def _count_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    parsed: list[str] = []
    real = catalog_module.read_manifest_document

    def counting(text: str | bytes, source: str) -> object:
        parsed.append(source)
        return real(text, source)

    monkeypatch.setattr(catalog_module, "read_manifest_document", counting)
    return parsed


def test_an_unchanged_catalogue_is_not_parsed_again(
    mesh: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = load_catalog(mesh)
    parsed = _count_parses(monkeypatch)
    second = load_catalog(mesh)
    assert parsed == []
    assert second.revision == first.revision
    assert second.manifests == first.manifests


def test_an_edited_manifest_is_parsed_again(mesh: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    load_catalog(mesh)
    path = mesh / "customer" / "customers.yaml"
    path.write_text(
        path.read_text().replace("One row per customer", "One row per client"), encoding="utf-8"
    )
    parsed = _count_parses(monkeypatch)
    catalog = load_catalog(mesh)
    assert parsed == [str(path)]
    assert "client" in (catalog.manifests["customer/customers"].metadata.description or "")


def test_a_cached_manifest_whose_data_path_now_leaves_the_root_is_located(
    mesh: Path, tmp_path: Path
) -> None:
    load_catalog(mesh)
    data = mesh / "customer" / "data"
    shutil.rmtree(data, ignore_errors=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    data.symlink_to(outside)  # the file is unchanged, its snapshot now points outside
    with pytest.raises(ManifestError) as caught:
        load_catalog(mesh)
    assert caught.value.location is not None
    assert caught.value.location.line is not None
    assert "leaves the catalogue directory" in caught.value.message


def test_a_damaged_or_shared_cache_file_is_ignored(
    mesh: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = load_catalog(mesh).revision
    (cache_file,) = (tmp_path / "cache" / "manifests").glob("*.pickle")
    assert cache_file.stat().st_mode & 0o077 == 0
    cache_file.write_bytes(b"not a pickle")
    assert load_catalog(mesh).revision == expected
    os.chmod(cache_file, 0o644)  # readable by others: not trusted
    parsed = _count_parses(monkeypatch)
    assert load_catalog(mesh).revision == expected
    assert len(parsed) == 7


def test_the_cache_can_be_turned_off(mesh: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHGOV_CACHE_DIR", "off")
    load_catalog(mesh)
    parsed = _count_parses(monkeypatch)
    load_catalog(mesh)
    assert len(parsed) == 7
