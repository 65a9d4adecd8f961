"""`meshgov policy test|lint`: what the governance guild runs on `policies/` before a change lands.

``test`` runs every ``test_*`` rule of every ``*_test.rego`` through the embedded engine (the one
production uses) and prints the results like ``opa test``; ``lint`` checks the structural
conventions (``meshgov.core.policy_lint``) and compiles every module.

Exit codes: 0 ok, 1 failing tests or lint errors, 2 invalid input (no such directory),
4 policy errors (a module does not compile: file and line on stderr).

``meshgov policy impact`` belongs to the service: a module ``meshgov.cli.policy_impact`` with a
``register(app)`` function is picked up here when it exists.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console

from meshgov.cli._common import EXIT_OK, EXIT_VIOLATIONS, err_console, reports_errors

if TYPE_CHECKING:
    from meshgov.core.policy import PolicyBundle, PreparedPolicy, RegoTest

app = typer.Typer(
    help="Test, lint and dry-run (impact) the Rego policies of the governance guild.",
    no_args_is_help=True,
)

out_console = Console(highlight=False, soft_wrap=True, emoji=False)

# Show a progress bar only when it helps: enough tests and a terminal to draw it on.
PROGRESS_MIN_TESTS = 50

Outcome = Literal["PASS", "FAIL", "ERROR"]


@dataclass(frozen=True)
class RegoTestResult:
    """One Rego test run: its outcome, how long it took and, when it did not pass, why."""

    test: RegoTest
    outcome: Outcome
    seconds: float
    detail: str = ""

    @property
    def query(self) -> str:
        return f"data.{self.test.package}.{self.test.name}"


def format_duration(seconds: float) -> str:
    """``opa test`` style: 123µs, 4.5ms, 1.2s.

    >>> format_duration(0.000123), format_duration(0.0045), format_duration(1.25)
    ('123µs', '4.5ms', '1.25s')
    """
    if seconds < 0.001:
        return f"{seconds * 1e6:.0f}µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f}ms"
    return f"{seconds:.2f}s"


def _policies_dir(directory: Path | None) -> Path:
    if directory is not None:
        return directory
    from meshgov.gate import default_policies_dir

    return default_policies_dir()


def _load(directory: Path | None) -> PolicyBundle:
    from meshgov.policy_backends import load_bundle_dir

    return load_bundle_dir(_policies_dir(directory))


def _refuse_crash_risks(bundle: PolicyBundle) -> None:
    """regopy crashes the process on some bundles: refuse them with a located error instead."""
    from meshgov.core.policy_lint import crash_risks, lint_bundle
    from meshgov.errors import Location, PolicyCompileError

    risks = crash_risks(lint_bundle(bundle))
    if risks:
        first = risks[0]
        raise PolicyCompileError(first.message, Location(file=first.path, line=first.line))


def run_tests(prepared: PreparedPolicy, tests: list[RegoTest]) -> list[RegoTestResult]:
    """Evaluate each test; it passes only when it is exactly ``true``."""
    from meshgov.errors import PolicyError

    results: list[RegoTestResult] = []
    for test in tests:
        query = f"data.{test.package}.{test.name}"
        started = time.perf_counter()
        try:
            value = prepared.evaluate(query, {})
        except PolicyError as exc:
            results.append(
                RegoTestResult(test, "ERROR", time.perf_counter() - started, exc.message)
            )
            continue
        elapsed = time.perf_counter() - started
        if value is True:
            results.append(RegoTestResult(test, "PASS", elapsed))
        else:
            shown = "undefined" if value is None else json.dumps(value)[:80]
            results.append(RegoTestResult(test, "FAIL", elapsed, f"evaluated to {shown}"))
    return results


def _print_results(results: list[RegoTestResult], verbose: bool) -> None:
    current_file = None
    for result in results:
        if not verbose and result.outcome == "PASS":
            continue
        if result.test.path != current_file:
            current_file = result.test.path
            out_console.print(f"{current_file}:")
        out_console.print(f"{result.query}: {result.outcome} ({format_duration(result.seconds)})")
        if result.outcome != "PASS":
            out_console.print(
                f"  {result.test.path}:{result.test.line}: {result.detail}", markup=False
            )
    total = len(results)
    out_console.print("-" * 80)
    for outcome in ("PASS", "FAIL", "ERROR"):
        count = sum(1 for r in results if r.outcome == outcome)
        if count or outcome == "PASS":
            out_console.print(f"{outcome}: {count}/{total}")


def _run_with_progress(prepared: PreparedPolicy, tests: list[RegoTest]) -> list[RegoTestResult]:
    if len(tests) < PROGRESS_MIN_TESTS or not err_console.is_terminal:
        return run_tests(prepared, tests)
    from rich.progress import Progress

    results: list[RegoTestResult] = []
    with Progress(console=err_console, transient=True) as progress:
        task = progress.add_task("running Rego tests", total=len(tests))
        for test in tests:
            results.extend(run_tests(prepared, [test]))
            progress.advance(task)
    return results


@app.command("test")
@reports_errors
def run_rego_tests(
    directory: Annotated[
        Path | None,
        typer.Argument(help="Policy directory (default: ./policies, else the shipped policies)."),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Print every test, not only failures.")
    ] = False,
    run: Annotated[
        str | None,
        typer.Option("--run", "-r", help="Only tests whose data.<package>.<name> matches."),
    ] = None,
) -> None:
    """Run every Rego test (test_* rules in *_test.rego) with the embedded engine."""
    from meshgov.core.policy import discover_tests
    from meshgov.errors import InputError
    from meshgov.policy_backends.embedded import EmbeddedEngine

    bundle = _load(directory)
    tests = discover_tests(bundle)
    if run is not None:
        try:
            pattern = re.compile(run)
        except re.error as exc:
            raise InputError(f"--run: invalid regular expression: {exc}") from None
        tests = [t for t in tests if pattern.search(f"data.{t.package}.{t.name}")]
    if not tests:
        err_console.print("no tests found")
        raise typer.Exit(EXIT_VIOLATIONS)
    _refuse_crash_risks(bundle)
    # Every test as a compiled entrypoint: compiled once, much faster than ad-hoc queries.
    entrypoints = [f"{t.package.replace('.', '/')}/{t.name}" for t in tests]
    prepared = EmbeddedEngine().prepare(bundle, include_tests=True, entrypoints=entrypoints)
    results = _run_with_progress(prepared, tests)
    _print_results(results, verbose)
    if any(r.outcome != "PASS" for r in results):
        raise typer.Exit(EXIT_VIOLATIONS)


class LintFormat(StrEnum):
    text = "text"
    json = "json"


@app.command("lint")
@reports_errors
def lint_policies(
    directory: Annotated[
        Path | None,
        typer.Argument(help="Policy directory (default: ./policies, else the shipped policies)."),
    ] = None,
    output_format: Annotated[
        LintFormat, typer.Option("--format", "-f", help="Report format on stdout.")
    ] = LintFormat.text,
) -> None:
    """Check the structural conventions of policies/ and compile every module."""
    from meshgov.core.policy_lint import crash_risks, lint_bundle
    from meshgov.errors import Location, PolicyCompileError
    from meshgov.policy_backends.embedded import EmbeddedEngine

    bundle = _load(directory)
    findings = lint_bundle(bundle)
    if output_format is LintFormat.json:
        out_console.print_json(
            json.dumps(
                [
                    {
                        "rule": f.rule,
                        "severity": f.severity,
                        "message": f.message,
                        "file": f.path,
                        "line": f.line,
                    }
                    for f in findings
                ]
            )
        )
    else:
        for finding in findings:
            out_console.print(finding.describe(), markup=False)
    risks = crash_risks(findings)
    if risks:
        first = risks[0]
        raise PolicyCompileError(
            f"not compiled: {first.message}", Location(file=first.path, line=first.line)
        )
    # Tests included: a test module that does not compile is as broken as a policy.
    EmbeddedEngine().prepare(bundle, include_tests=True)
    errors = sum(1 for f in findings if f.severity == "error")
    warnings = len(findings) - errors
    summary = f"{len(bundle.modules)} file(s) compiled, {errors} error(s), {warnings} warning(s)"
    err_console.print(summary)
    raise typer.Exit(EXIT_VIOLATIONS if errors else EXIT_OK)


# The service's `policy impact` (see the module docstring).
if importlib.util.find_spec("meshgov.cli.policy_impact") is not None:
    importlib.import_module("meshgov.cli.policy_impact").register(app)
