"""Paths in findings are relative to the repository root in every format, whatever the current
directory; grant findings point at the grant (issue 12, point 7)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BROKEN = ROOT / "examples" / "broken" / "release-grant-unknown-purpose.yaml"
WAIVERS = """- rule: release/grant-unknown-purpose
  product: support/ticket_purposes
  justification: being fixed (GOV-1)
  expires: 2000-01-01
"""


def _check(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHGOV_")}
    return subprocess.run(
        [str(BIN / "meshgov"), "check", *args, "--policies", str(ROOT / "policies"), "--no-scan"],
        cwd=cwd, capture_output=True, text=True, check=False, env=env,
    )  # fmt: skip


def test_paths_are_relative_to_the_repository_root(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "products").mkdir(parents=True)
    manifest = repo / "products" / "tickets.yaml"
    shutil.copy(BROKEN, manifest)
    (repo / ".meshgov-waivers.yaml").write_text(WAIVERS, encoding="utf-8")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    grant_line = next(
        n for n, line in enumerate(manifest.read_text().splitlines(), 1) if "- to:" in line
    )

    at_root = json.loads(_check(repo, "products/", "--format", "json").stdout)
    files = {f["location"]["file"] for f in at_root["general"]}
    assert files >= {".meshgov-waivers.yaml", "products/tickets.yaml"}
    [finding] = [
        f for r in at_root["results"] for f in r["findings"]
        if f["rule"] == "release/grant-unknown-purpose"
    ]  # fmt: skip
    assert finding["location"] == {**finding["location"], "file": "products/tickets.yaml"}
    assert finding["location"]["line"] == grant_line

    # From a subdirectory, given by an absolute path too: the same root-relative paths.
    for cwd, arg in ((repo / "products", "."), (tmp_path, str(manifest))):
        github = _check(cwd, arg, "--format", "github").stdout
        assert f"file=products/tickets.yaml,line={grant_line}," in github
        sarif = json.loads(_check(cwd, arg, "--format", "sarif").stdout)
        uris = {
            loc["physicalLocation"]["artifactLocation"]["uri"]
            for result in sarif["runs"][0]["results"]
            for loc in result["locations"]
        }
        assert uris == {"products/tickets.yaml"}
