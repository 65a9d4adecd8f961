"""The registry files the global rules read: refused with file, key and line when misshapen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from meshgov.core.registry import validate_registry
from meshgov.core.yaml_source import load_yaml
from meshgov.errors import InputError, PolicyCompileError
from meshgov.policy_backends import load_bundle_dir

ROOT = Path(__file__).resolve().parents[2]


def _shipped() -> dict[str, Any]:
    return dict(load_bundle_dir(ROOT / "policies").data["registry"])


def _error(
    registry: dict[str, Any], stem: str | None = None, text: str | None = None
) -> InputError:
    docs = {}
    if stem is not None and text is not None:
        docs[stem] = load_yaml(text, f"data/{stem}.yaml")
        registry = {**registry, stem: docs[stem].data}
    with pytest.raises(InputError) as info:
        validate_registry(registry, docs)
    return info.value


def test_the_shipped_registry_is_valid() -> None:
    validate_registry(_shipped())


def test_a_purposes_file_that_is_a_list_is_refused() -> None:
    error = _error(_shipped(), "purposes", "- analytics\n- marketing\n")
    assert "registry file purposes" in error.message
    assert error.location is not None and error.location.file == "data/purposes.yaml"


def test_a_field_of_the_wrong_type_is_named_with_its_line() -> None:
    error = _error(_shipped(), "purposes", "analytics:\n  description: ok\n  pii: 'no'\n")
    assert "analytics.pii" in error.message
    assert error.location is not None and error.location.line == 3


def test_a_category_naming_a_mask_that_does_not_exist_is_refused() -> None:
    text = "email:\n  default_mask: hash\n  allowed_masks: [hash, scramble]\n"
    error = _error(_shipped(), "pii_categories", text)
    assert "mask 'scramble'" in error.message
    assert "known: " in error.message
    assert error.location is not None and error.location.line == 3


def test_a_default_mask_outside_the_allowed_ones_is_refused() -> None:
    error = _error(
        _shipped(), "pii_categories", "email:\n  default_mask: hash\n  allowed_masks: [redact]\n"
    )
    assert "default_mask 'hash' is not among its allowed_masks" in error.message


def test_tiers_and_categories_must_exist_and_hints_must_be_regular_expressions() -> None:
    registry = _shipped()
    classifications = {**registry["classifications"], "pii_minimum": "secret"}
    assert (
        "pii_minimum 'secret' is not a tier"
        in _error({**registry, "classifications": classifications}).message
    )
    bad_minimum = "email:\n  default_mask: hash\n  allowed_masks: [hash]\n  minimum: top\n"
    assert "minimum 'top' is not a tier" in _error(registry, "pii_categories", bad_minimum).message
    bad_hint = (
        "email:\n  default_mask: hash\n  allowed_masks: [hash]\n  name_hints: ['(unclosed']\n"
    )
    assert "is not a regular expression" in _error(registry, "pii_categories", bad_hint).message
    quasi = "columns: [zip]\npiiCategories: [shoe_size]\n"
    assert (
        "'shoe_size' is not a pii category" in _error(registry, "quasi_identifiers", quasi).message
    )


def test_extra_keys_and_unknown_files_are_the_guilds_own() -> None:
    registry = _shipped()
    registry["purposes"] = {"analytics": {"pii": False, "owner": "guild", "review": "2026-12"}}
    registry["regions"] = ["EU", "US"]
    validate_registry(registry)


def test_a_bundle_with_a_misshapen_data_file_does_not_load(tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text("package p\n\nx := 1\n", encoding="utf-8")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "purposes.yaml").write_text("analytics:\n  pii: 1\n", encoding="utf-8")
    with pytest.raises(PolicyCompileError) as info:
        load_bundle_dir(tmp_path)
    assert info.value.location is not None
    assert info.value.location.file == "data/purposes.yaml"
    assert info.value.location.line == 2
