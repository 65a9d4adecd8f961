"""Several workers on one store: a change made through one is served by the others."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import yaml
from api_server import settings_for

from meshgov.core.principal import Principal
from meshgov.service import Service


def _wait_for(condition, timeout: float = 15.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_activation_and_publication_reach_the_other_worker(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    first = Service(settings)
    first.start(bootstrap=True, refresh_seconds=0)
    second = Service(settings)
    second.start(bootstrap=False, refresh_seconds=0.1)
    try:
        assert second.state.revision == first.state.revision
        categories = copy.deepcopy(first.state.bundle.data["registry"]["pii_categories"])
        categories["gender"] = {
            "description": "x",
            "name_hints": ["^gender$"],
            "allowed_masks": ["redact"],
            "minimum": "confidential",
        }
        staged = first.stage_file("guild", "data/pii_categories.yaml", yaml.safe_dump(categories))
        assert staged.activatable, staged.report
        first.activate("guild", staged.id)
        assert _wait_for(lambda: second.state.revision == staged.id)

        manifest = (Path(settings.catalog_dir or ".") / "commerce" / "products.yaml").read_text()
        doc = yaml.safe_load(manifest)
        doc["metadata"]["version"] = "9.0.0"
        doc["spec"]["outputPorts"][0].pop("data", None)
        owner = Principal(id="owner", groups=("commerce-owners",), domain="commerce")
        result = first.publish(owner, "commerce", "products", yaml.safe_dump(doc))
        assert result.published, result.findings
        assert _wait_for(lambda: second.state.products["commerce/products"].version == "9.0.0")
    finally:
        second.close()
        first.close()


def test_an_api_activation_survives_a_restart(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    first = Service(settings)
    first.start(bootstrap=True, refresh_seconds=0)
    try:
        original = first.state.revision
        categories = copy.deepcopy(first.state.bundle.data["registry"]["pii_categories"])
        categories["gender"] = {
            "description": "x",
            "name_hints": ["^gender$"],
            "allowed_masks": ["redact"],
            "minimum": "confidential",
        }
        staged = first.stage_file("guild", "data/pii_categories.yaml", yaml.safe_dump(categories))
        first.activate("guild", staged.id)
    finally:
        first.close()
    # Same policies directory on disk: its revision is known, so the guild's choice stays.
    second = Service(settings)
    second.start(bootstrap=True, refresh_seconds=0)
    try:
        assert second.state.revision == staged.id != original
        assert second.rollback("guild").id == original
    finally:
        second.close()
