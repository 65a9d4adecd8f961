"""`meshgov policy impact --against REV`: which products a policy change would fail, locally.

Compares the release gate under ``--policies`` (the working tree: the candidate) with the same
directory at ``--against`` (a git revision, or another policy directory: the baseline), over every
product of ``--catalog``, and the access decisions of ``--principals`` on every port for every
registered purpose. This is the dry run that ``PUT /v1/policies/…`` performs in the service.

Exit codes: 0 no product would start failing, 1 at least one would, 2 invalid input, 4 policy
errors (a revision does not compile).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from meshgov.cli._common import (
    EXIT_OK,
    EXIT_VIOLATIONS,
    err_console,
    load_principal_file,
    reports_errors,
)
from meshgov.errors import InputError, Location

if TYPE_CHECKING:
    from meshgov.core.policy import PolicyBundle
    from meshgov.core.principal import Principal


class ImpactFormat(StrEnum):
    text = "text"
    json = "json"


def register(app: typer.Typer) -> None:
    app.command("impact")(impact_command)


def baseline_bundle(policies: Path, against: str) -> PolicyBundle:
    """The policy bundle at ``against``: a directory, or ``policies`` at a git revision."""
    from meshgov.policy_backends import load_bundle_dir

    candidate = Path(against)
    if candidate.is_dir():
        return load_bundle_dir(candidate)
    root = _git(["rev-parse", "--show-toplevel"], policies)
    relative = policies.resolve().relative_to(Path(root).resolve()).as_posix()
    with tempfile.TemporaryDirectory(prefix="meshgov-impact-") as tmp:
        archive = subprocess.run(
            ["git", "archive", "--format=tar", against, "--", relative],
            cwd=root,
            capture_output=True,
            check=False,
        )
        if archive.returncode != 0:
            message = archive.stderr.decode(errors="replace").strip().splitlines()
            raise InputError(
                f"--against {against!r} is neither a directory nor a git revision holding "
                f"{relative}/ ({message[0] if message else 'git archive failed'})"
            )
        unpack = subprocess.run(
            ["tar", "-x", "-C", tmp], input=archive.stdout, capture_output=True, check=False
        )
        if unpack.returncode != 0:
            raise InputError(f"cannot unpack {relative} at {against}")
        return load_bundle_dir(Path(tmp) / relative)


def _git(args: list[str], cwd: Path) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    except OSError:
        raise InputError("git is not available to read --against") from None
    if done.returncode != 0:
        raise InputError(f"{cwd} is not inside a git repository", Location(file=str(cwd)))
    return done.stdout.strip()


@reports_errors
def impact_command(
    against: str = typer.Option(
        ..., "--against", help="Baseline: a git revision (e.g. main, HEAD~1) or a policy directory."
    ),
    policies: Path = typer.Option(
        Path("policies"), "--policies", "-p", help="The candidate policy directory."
    ),
    catalog: Path = typer.Option(
        Path("examples/mesh"), "--catalog", "-c", help="The products to dry-run the gate on."
    ),
    principals: Path | None = typer.Option(
        None,
        "--principals",
        help="Principal files (a directory of YAML/JSON, or one file) whose access decisions to "
        "compare; default: CATALOG/principals when it exists.",
    ),
    output: ImpactFormat = typer.Option(ImpactFormat.text, "--format", "-f", help="text or json."),
) -> None:
    """Dry-run the release gate under both revisions; list the findings that would change."""
    from meshgov.catalog import load_catalog
    from meshgov.gate import Gate
    from meshgov.policy_backends import load_bundle_dir
    from meshgov.service import policy_impact

    if not policies.is_dir():
        raise InputError("policy directory not found", Location(file=str(policies)))
    with err_console.status("compiling both revisions…"):
        candidate = load_bundle_dir(policies)
        baseline = baseline_bundle(policies, against)
        before, after = Gate(baseline), Gate(candidate)
    products = load_catalog(catalog)
    with err_console.status(f"checking {len(products.manifests)} products under both revisions…"):
        changes = policy_impact(before, after, products, scan=True)
    people = _principals(principals if principals is not None else catalog / "principals")
    access: list[dict[str, Any]] = []
    if people:
        from meshgov.gateway import Gateway, access_impact, registered_purposes

        purposes = registered_purposes(baseline) | registered_purposes(candidate)
        with err_console.status(f"comparing access decisions of {len(people)} principals…"):
            access = access_impact(
                Gateway(products, baseline), Gateway(products, candidate), people, purposes
            )
    newly_failing = [c["product"] for c in changes if c["passes_before"] and not c["passes_after"]]
    if output is ImpactFormat.json:
        document: dict[str, Any] = {
            "baseline": baseline.revision,
            "candidate": candidate.revision,
            "products": len(products.manifests),
            "newly_failing": newly_failing,
            "changes": changes,
            "principals": [p.id for p in people],
            "access": access,
        }
        typer.echo(json.dumps(document, indent=2))
    else:
        _print_text(baseline.revision, candidate.revision, len(products.manifests), changes)
        _print_access(access, len(people))
    raise typer.Exit(EXIT_VIOLATIONS if newly_failing else EXIT_OK)


def _principals(path: Path) -> list[Principal]:
    """Every principal file at ``path`` (a directory or one file); none when it does not exist."""
    if not path.exists():
        return []
    files = (
        sorted(p for p in path.iterdir() if p.suffix in {".yaml", ".yml", ".json"})
        if path.is_dir()
        else [path]
    )
    return [load_principal_file(file) for file in files]


def _print_access(access: list[dict[str, Any]], principals: int) -> None:
    if not principals:
        return
    if not access:
        typer.echo(f"no access decision changes for {principals} principals")
        return
    typer.echo(f"access decisions that change ({len(access)}):")
    for change in access:
        before, after = change["before"], change["after"]
        detail = []
        for key in ("masks", "hidden_columns", "row_filters"):
            if before[key] != after[key]:
                shown = sorted(after[key]) if isinstance(after[key], dict) else after[key]
                detail.append(f"{key} → {shown}")
        if before["allow"] != after["allow"]:
            detail = [after["reasons"][0] if after["reasons"] else ""]
        typer.echo(
            f"  {change['change']:<8} {change['principal']} / {change['purpose']} on "
            f"{change['product']}:{change['port']}: {'; '.join(detail)}"
        )


def _print_text(baseline: str, candidate: str, total: int, changes: list[dict[str, Any]]) -> None:
    typer.echo(f"policy impact {baseline} → {candidate} on {total} products")
    if not changes:
        typer.echo("no finding changes")
    for change in changes:
        verdict = (
            "starts FAILING"
            if change["passes_before"] and not change["passes_after"]
            else "starts passing"
            if change["passes_after"] and not change["passes_before"]
            else "still " + ("passing" if change["passes_after"] else "failing")
        )
        typer.echo(f"{change['product']}@{change['version']}: {verdict}")
        for sign, key in (("+", "added"), ("-", "removed")):
            for finding in change[key]:
                location = finding.get("location") or {}
                where = ":".join(
                    str(location.get(k)) for k in ("port", "column") if location.get(k)
                )
                typer.echo(
                    f"  {sign} {finding.get('severity')} {finding.get('rule')}"
                    f"{' at ' + where if where else ''}: {finding.get('message')}"
                )
