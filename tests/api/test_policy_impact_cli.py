"""`meshgov policy impact --against REV`: the service's policy dry run, locally."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml
from api_server import ROOT
from typer.testing import CliRunner

from meshgov.cli import app


def _candidate(tmp_path: Path) -> Path:
    """The shipped policies with a stricter guild setting: postal addresses must be restricted."""
    policies = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", policies)
    categories = policies / "data" / "pii_categories.yaml"
    document = yaml.safe_load(categories.read_text(encoding="utf-8"))
    document["address"]["minimum"] = "restricted"
    categories.write_text(yaml.safe_dump(document), encoding="utf-8")
    return policies


def test_impact_against_a_directory_lists_newly_failing_products(tmp_path: Path) -> None:
    candidate = _candidate(tmp_path)
    result = CliRunner().invoke(
        app,
        [
            "policy",
            "impact",
            "--against",
            str(ROOT / "policies"),
            "--policies",
            str(candidate),
            "--catalog",
            str(ROOT / "examples" / "mesh"),
            "--format",
            "json",
        ],
    )
    document = json.loads(result.stdout)
    assert document["products"] == 7
    assert result.exit_code == 1
    assert "customer/customers" in document["newly_failing"]
    change = next(c for c in document["changes"] if c["product"] == "customer/customers")
    assert change["removed"] == []
    assert {f["location"]["column"] for f in change["added"]} == {"postcode"}


def test_impact_against_the_same_revision_changes_nothing() -> None:
    result = CliRunner().invoke(
        app,
        [
            "policy",
            "impact",
            "--against",
            str(ROOT / "policies"),
            "--policies",
            str(ROOT / "policies"),
            "--catalog",
            str(ROOT / "examples" / "mesh"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "no finding changes" in result.stdout


def test_impact_against_a_git_revision(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "policy",
            "impact",
            "--against",
            "HEAD",
            "--policies",
            str(ROOT / "policies"),
            "--catalog",
            str(ROOT / "examples" / "mesh"),
            "--format",
            "json",
        ],
    )
    assert result.exit_code in (0, 1), result.output
    assert json.loads(result.stdout)["products"] == 7


def test_an_unknown_revision_is_invalid_input() -> None:
    result = CliRunner().invoke(
        app,
        ["policy", "impact", "--against", "no-such-ref-xyz", "--policies", str(ROOT / "policies")],
    )
    assert result.exit_code == 2


def _without_purpose(tmp_path: Path, purpose: str) -> Path:
    """The shipped policies with one purpose no longer registered."""
    policies = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", policies)
    purposes = policies / "data" / "purposes.yaml"
    document = yaml.safe_load(purposes.read_text(encoding="utf-8"))
    del document[purpose]
    purposes.write_text(yaml.safe_dump(document), encoding="utf-8")
    return policies


def test_impact_lists_the_access_decisions_that_change(tmp_path: Path) -> None:
    candidate = _without_purpose(tmp_path, "operations")
    args = ["policy", "impact", "--against", str(ROOT / "policies"), "--policies", str(candidate)]
    mesh = ["--catalog", str(ROOT / "examples" / "mesh")]
    result = CliRunner().invoke(app, [*args, *mesh, "--format", "json"])
    document = json.loads(result.stdout)
    # The products whose grants name the purpose start failing the gate (grant-unknown-purpose).
    assert result.exit_code == 1, result.output
    assert "customer/customers" in document["newly_failing"]
    assert "owner-customer" in document["principals"]  # examples/mesh/principals by default
    access = document["access"]
    # Exactly the decisions that allowed the unregistered purpose close; nothing else moves.
    assert access
    assert {(c["purpose"], c["change"]) for c in access} == {("operations", "closed")}
    closed = next(c for c in access if c["principal"] == "owner-customer")
    assert (closed["product"], closed["port"]) == ("customer/customers", "customers")
    assert closed["before"]["allow"] is True
    assert "'operations' is not registered" in closed["after"]["reasons"][0]
    text = CliRunner().invoke(app, [*args, *mesh])
    assert "closed   owner-customer / operations on customer/customers:customers" in text.stdout


def test_impact_without_principals_compares_no_access(tmp_path: Path) -> None:
    candidate = _without_purpose(tmp_path, "operations")
    mesh = tmp_path / "mesh"
    shutil.copytree(ROOT / "examples" / "mesh", mesh, ignore=shutil.ignore_patterns("principals"))
    args = ["policy", "impact", "--against", str(ROOT / "policies"), "--policies", str(candidate)]
    result = CliRunner().invoke(app, [*args, "--catalog", str(mesh), "--format", "json"])
    document = json.loads(result.stdout)
    assert (document["principals"], document["access"]) == ([], [])
