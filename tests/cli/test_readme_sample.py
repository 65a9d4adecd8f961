"""The README's sample `meshgov check` output is what meshgov prints (issue 12, small things)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_sample_is_the_real_output() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    sample = re.search(r"```text\n\$ (meshgov check [^\n]+)\n(.*?)```", readme, re.DOTALL)
    assert sample, "README shows a `meshgov check` run in a text block"
    command, shown = sample.group(1), sample.group(2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHGOV_")}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "meshgov"), *command.split()[1:]],
        cwd=ROOT, capture_output=True, text=True, check=False, env=env,
    )  # fmt: skip
    assert done.returncode == 1
    # The revision is the content hash of policies/: every rule change moves it, and the README
    # says so. Everything else is the output, character for character.
    revision = re.compile(r"policy revision [0-9a-f]{16}")
    assert revision.search(shown)
    assert revision.sub("policy revision …", done.stdout) == revision.sub(
        "policy revision …", shown
    )
