"""CI in a domain repository, as docs/ci.md sets it up (issue 12, points 5-7).

The workflow's `run:` steps are read from docs/ci.md and executed here, in order, against a local
git remote (the domain repository and the guild's policy repository), a shallow clone of the pull
request's branch (what `actions/checkout` with `fetch-depth: 1` gives) and a real meshgov service
publishing the catalogue. `uses:` steps are GitHub's own: the checkout is the shallow clone, the
installation is this environment's meshgov, and the SARIF upload is checked as the file it reads.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from api_server import ROOT, TOKENS, RunningServer, settings_for, start_server

BIN = Path(sys.executable).parent
MEMBERS = """apiVersion: meshgov/v1
kind: DataProduct
metadata:
  domain: loyalty
  name: members
  version: {version}
  owner: loyalty-data@acme.example
  description: One row per loyalty member.
  status: active
spec:
{inputs}  outputPorts:
    - name: members
      kind: table
      table: loyalty.members
      retention: 2y
      columns:
        - {{name: member_id, type: string, required: true, unique: true,
           classification: internal}}
        - {{name: customer_id, type: string, entity: customer, classification: internal}}
{extra}  access:
    grants:
      - to: {{groups: [analysts]}}
        purposes: [analytics]
"""
TIER = "        - {name: tier, type: string, classification: internal}\n"
FROM_CUSTOMERS = "  inputs:\n    - {product: customer/customers, port: customers}\n"
FROM_A_TYPO = "  inputs:\n    - {product: commerce/orderz, port: orders}\n"


def _members(version: str, inputs: str = "", extra: str = TIER) -> str:
    return MEMBERS.format(version=version, inputs=inputs, extra=extra)


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout


def _commit_all(repo: Path, message: str) -> None:
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", message)


@dataclass
class Remote:
    domain: Path  # bare repository of the domain team
    policies: Path  # bare repository of the guild's policies, tagged v12


def _remotes(tmp: Path, feature: str) -> Remote:
    """main holds members 1.0.0; the pull request's branch `feature` holds ``feature``."""
    domain = tmp / "domain.git"
    _git(tmp, "init", "-q", "--bare", "-b", "main", str(domain))
    author = tmp / "author"
    _git(tmp, "clone", "-q", str(domain), str(author))
    (author / "products").mkdir()
    (author / "products" / "members.yaml").write_text(_members("1.0.0"), encoding="utf-8")
    _commit_all(author, "members 1.0.0")
    _git(author, "push", "-q", "origin", "HEAD:main")
    _git(author, "checkout", "-q", "-b", "feature")
    (author / "products" / "members.yaml").write_text(feature, encoding="utf-8")
    _commit_all(author, "members 1.1.0")
    _git(author, "push", "-q", "origin", "feature")

    policies = tmp / "policies.git"
    _git(tmp, "init", "-q", "--bare", "-b", "main", str(policies))
    guild = tmp / "guild"
    shutil.copytree(ROOT / "policies", guild)
    _git(guild, "init", "-q", "-b", "main")
    _commit_all(guild, "policies")
    _git(guild, "tag", "v12")
    _git(guild, "push", "-q", str(policies), "main", "v12")
    return Remote(domain, policies)


def _checkout(remote: Remote, tmp: Path) -> Path:
    """What actions/checkout with fetch-depth 1 leaves: one commit of the branch."""
    work = tmp / "runner"
    _git(
        tmp, "clone", "-q", "--depth", "1", "--branch", "feature", remote.domain.as_uri(), str(work)
    )
    assert _git(work, "rev-parse", "--is-shallow-repository").strip() == "true"
    return work


def _workflow() -> dict[str, Any]:
    text = (ROOT / "docs" / "ci.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(.*?)```", text, re.DOTALL)
    assert block, "docs/ci.md shows the workflow in a yaml block"
    workflow = yaml.safe_load(block.group(1))
    assert isinstance(workflow, dict)
    return workflow


def _expand(value: str, context: dict[str, str]) -> str:
    """``${{ github.base_ref }}`` and ``${{ secrets.X }}`` as the runner would give them."""
    return re.sub(r"\$\{\{\s*([\w.]+)\s*\}\}", lambda m: context[m.group(1)], value)


@dataclass
class Runner:
    work: Path
    env: dict[str, str]
    steps: list[dict[str, Any]]

    def step(self, name: str) -> dict[str, Any]:
        return next(s for s in self.steps if s.get("name") == name)

    def run(self, name: str) -> subprocess.CompletedProcess[str]:
        step = self.step(name)
        env = {**self.env, **{k: str(v) for k, v in (step.get("env") or {}).items()}}
        return subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", step["run"]],
            cwd=self.work,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )


def _runner(work: Path, remote: Remote, server: RunningServer, token: str) -> Runner:
    workflow = _workflow()
    context = {"github.base_ref": "main", "secrets.MESHGOV_TOKEN": token}
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHGOV_")}
    env.update({k: _expand(str(v), context) for k, v in workflow["env"].items()})
    # The runner's own values: this service, these remotes; meshgov is this environment's.
    env.update(
        {
            "MESHGOV_URL": server.url,
            "POLICIES_REPO": remote.policies.as_uri(),
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    steps = [
        {**s, "env": {k: _expand(str(v), context) for k, v in (s.get("env") or {}).items()}}
        for s in workflow["jobs"]["gate"]["steps"]
    ]
    return Runner(work, env, steps)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[RunningServer]:
    handle = start_server(settings_for(tmp_path / "service"))
    try:
        yield handle.running
    finally:
        handle.stop()


def test_the_documented_workflow_runs_in_a_shallow_clone(
    served: RunningServer, tmp_path: Path
) -> None:
    remote = _remotes(tmp_path, _members("1.1.0", extra=""))  # drops `tier`: a breaking change
    work = _checkout(remote, tmp_path)
    runner = _runner(work, remote, served, TOKENS["analyst-eu"])
    checkout = runner.steps[0]
    assert checkout["uses"].startswith("actions/checkout@") and checkout["with"]["fetch-depth"] == 1
    assert runner.step("Install meshgov")["run"].startswith("pip install")

    # The base branch is not in a shallow checkout: the check says which fetch to run.
    assert runner.run("Policies").returncode == 0
    before = runner.run("Check")
    assert before.returncode == 2, before.stderr
    hint = "git fetch --no-tags --depth=1 origin main:refs/remotes/origin/main"
    assert hint in " ".join(before.stderr.split())
    # That is the workflow's own fetch step.
    assert (
        runner.step("Fetch the base branch")["run"].replace('"', "").replace("$BASE_REF", "main")
        == hint
    )

    fetched = runner.run("Fetch the base branch")
    assert fetched.returncode == 0, fetched.stderr
    checked = runner.run("Check")
    annotated = runner.run("Annotations")
    upload = runner.step("Upload SARIF")

    # Findings fail the step (exit 1) and the SARIF report is written all the same, and uploaded.
    assert checked.returncode == 1, checked.stderr
    sarif = json.loads((work / "meshgov.sarif").read_text(encoding="utf-8"))
    results = sarif["runs"][0]["results"]
    rules = {r["ruleId"] for r in results}
    assert "identity/owner-unreachable" in rules  # the mesh came from the service's catalogue
    assert any(r.startswith("release/") for r in rules)  # against origin/main: tier was dropped
    uris = {
        loc["physicalLocation"]["artifactLocation"]["uri"]
        for r in results
        for loc in r["locations"]
    }
    assert uris == {"products/members.yaml"}
    assert upload["uses"].startswith("github/codeql-action/upload-sarif@")
    assert upload["with"]["sarif_file"] == "meshgov.sarif"
    assert upload["if"] == "${{ !cancelled() }}"
    assert annotated.returncode == 0, annotated.stderr
    annotations = [line for line in annotated.stdout.splitlines() if line.startswith("::")]
    assert annotations and all("file=products/members.yaml" in a for a in annotations)


def test_every_format_writes_a_complete_report_on_exit_2(
    served: RunningServer, tmp_path: Path
) -> None:
    remote = _remotes(tmp_path, _members("1.1.0"))
    work = _checkout(remote, tmp_path)
    runner = _runner(work, remote, served, TOKENS["analyst-eu"])
    assert runner.run("Policies").returncode == 0
    for output in ("json", "sarif", "junit", "github"):
        done = subprocess.run(
            [str(BIN / "meshgov"), "check", "products/", "--against", "origin/main",
             "--policies", ".meshgov-policies", "--format", output],
            cwd=work, capture_output=True, text=True, check=False, env=runner.env,
        )  # fmt: skip
        assert done.returncode == 2
        assert done.stdout.strip(), f"--format {output} wrote nothing on exit 2"
        assert "git fetch" in done.stdout, f"--format {output} does not say why"


def test_the_mesh_comes_from_the_service_or_a_saved_file(
    served: RunningServer, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    (repo / "products").mkdir(parents=True)
    manifest = repo / "products" / "members.yaml"
    manifest.write_text(_members("1.0.0", inputs=FROM_A_TYPO), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHGOV_")}
    policies = str(ROOT / "policies")

    def check(
        *extra: str, token: str | None = TOKENS["analyst-eu"]
    ) -> subprocess.CompletedProcess[str]:
        run_env = {**env, "MESHGOV_TOKEN": token} if token else env
        return subprocess.run(
            [str(BIN / "meshgov"), "check", "products/", "--policies", policies,
             "--format", "json", *extra],
            cwd=repo, capture_output=True, text=True, check=False, env=run_env,
        )  # fmt: skip

    # Without the mesh: it passes, and says which checks could not run and which inputs.
    alone = check()
    assert alone.returncode == 0, alone.stderr
    [warning] = json.loads(alone.stdout)["general"]
    assert warning["rule"] == "catalog/mesh-not-given"
    assert warning["severity"] == "warning"
    assert "identity/owner-unreachable" in warning["message"]
    assert "commerce/orderz" in warning["message"]
    assert warning["location"]["file"] == "products/members.yaml"

    # With the catalogue the service publishes: the identity rules and the typo are errors.
    url = f"{served.url}/v1/catalog"
    remote = check("--catalog", url)
    assert remote.returncode == 1, remote.stderr
    report = json.loads(remote.stdout)
    rules = {f["rule"] for r in report["results"] for f in r["findings"]}
    assert {"identity/owner-unreachable", "catalog/unknown-input"} <= rules
    assert report["general"] == []
    typo = next(
        f for r in report["results"] for f in r["findings"] if f["rule"] == "catalog/unknown-input"
    )
    assert "commerce/orderz" in typo["message"]

    # The same document saved to a file.
    with httpx.Client(headers={"Authorization": f"Bearer {TOKENS['analyst-eu']}"}) as client:
        exported = client.get(url)
    assert exported.status_code == 200
    assert {p["product"] for p in exported.json()["products"]} >= {"customer/customers"}
    (repo / "mesh.json").write_text(exported.text, encoding="utf-8")
    saved = check("--catalog", "mesh.json", token=None)
    assert saved.returncode == 1
    assert json.loads(saved.stdout)["results"] == report["results"]

    # Fixed (reads the owner's product): passes with the mesh.
    manifest.write_text(_members("1.0.0", inputs=FROM_CUSTOMERS), encoding="utf-8")
    fixed = check("--catalog", url)
    assert fixed.returncode == 0, fixed.stdout

    # No token: the catalogue answers 401, and the CLI says what to set (exit 2).
    refused = check("--catalog", url, token=None)
    assert refused.returncode == 2
    assert "MESHGOV_TOKEN" in refused.stderr
    with httpx.Client() as client:
        assert client.get(url).status_code == 401
