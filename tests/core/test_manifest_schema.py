"""The committed JSON Schema of meshgov/v1 matches the model, and accepts the example mesh."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from meshgov.catalog import manifest_paths
from meshgov.core.manifest import manifest_json_schema

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "docs" / "manifest.schema.json"


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def test_committed_schema_is_in_sync_with_the_model() -> None:
    expected = render(manifest_json_schema())
    if os.environ.get("MESHGOV_UPDATE_SCHEMA") == "1":
        SCHEMA_FILE.write_text(expected, encoding="utf-8")
    assert SCHEMA_FILE.read_text(encoding="utf-8") == expected, (
        "docs/manifest.schema.json is stale: regenerate it with "
        "MESHGOV_UPDATE_SCHEMA=1 .venv/bin/pytest tests/core/test_manifest_schema.py"
    )


def test_schema_is_a_valid_json_schema_without_internal_fields() -> None:
    schema = manifest_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert set(schema["properties"]) == {"apiVersion", "kind", "metadata", "spec"}


def _example_manifests() -> list[Path]:
    return [
        p for p in manifest_paths([ROOT / "examples" / "mesh"]) if p.suffix in (".yaml", ".yml")
    ]


@pytest.mark.parametrize("path", _example_manifests(), ids=lambda p: p.stem)
def test_example_manifests_validate_against_the_schema(path: Path) -> None:
    validator = jsonschema.Draft202012Validator(manifest_json_schema())
    errors = sorted(validator.iter_errors(yaml.safe_load(path.read_text())), key=str)
    assert not errors, errors[0].message


def test_schema_rejects_unknown_keys_and_bad_enums() -> None:
    validator = jsonschema.Draft202012Validator(manifest_json_schema())
    good = yaml.safe_load((ROOT / "examples" / "mesh" / "customer" / "customers.yaml").read_text())
    bad_key = json.loads(json.dumps(good))
    bad_key["spec"]["outputPorts"][0]["columns"][0]["colour"] = "red"
    assert not validator.is_valid(bad_key)
    bad_mask = json.loads(json.dumps(good))
    bad_mask["spec"]["outputPorts"][0]["columns"][1]["mask"] = "blur"
    assert not validator.is_valid(bad_mask)
