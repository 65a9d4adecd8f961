"""`meshgov check PATH...`: the release gate in CI.

Exit codes: 0 pass, 1 findings at or above ``--fail-on``, 2 invalid input (one line per bad file
on stderr, naming file and line), 4 policy errors (Rego compile or evaluation, with file and line).
The report goes to stdout in the chosen format; progress and errors go to stderr.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from meshgov.cli._common import err_console, fail, reports_errors
from meshgov.errors import MeshgovError

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.console import Console
    from rich.progress import TaskID

    from meshgov.core.manifest import Manifest
    from meshgov.core.report import FailOn, Finding, Report

# Show a progress bar only when it helps: many manifests and a terminal to draw it on.
PROGRESS_MIN_MANIFESTS = 20


class OutputFormat(StrEnum):
    text = "text"
    json = "json"
    junit = "junit"
    sarif = "sarif"
    github = "github"


class FailOnOption(StrEnum):
    error = "error"
    warning = "warning"
    never = "never"


def register(app: typer.Typer) -> None:
    """Add ``check`` to the root app."""
    app.command("check")(check)


@reports_errors
def check(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Manifest files or directories of manifests.",
            show_default=False,
            metavar="PATHS",
        ),
    ],
    against: Annotated[
        str | None,
        typer.Option(
            "--against",
            help="Previous versions: a directory of released manifests, or a git revision "
            "(the same file paths at that revision). Matched by product id.",
        ),
    ] = None,
    policies: Annotated[
        Path | None,
        typer.Option(help="Policy directory (default: ./policies, else the shipped policies)."),
    ] = None,
    catalog: Annotated[
        str | None,
        typer.Option(
            help="The rest of the mesh, for identity rules and inputs: a directory of manifests, "
            "a file saved from GET /v1/catalog, or its URL (https://…/v1/catalog; token in "
            "MESHGOV_TOKEN). Without it, the report warns which checks could not run.",
        ),
    ] = None,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="Report format on stdout.")
    ] = OutputFormat.text,
    fail_on: Annotated[
        FailOnOption, typer.Option(help="Lowest severity that fails the check (exit 1).")
    ] = FailOnOption.error,
    waivers: Annotated[
        Path | None,
        typer.Option(help="Waiver file (default: ./.meshgov-waivers.yaml when present)."),
    ] = None,
    scan: Annotated[
        bool, typer.Option("--scan/--no-scan", help="Scan data snapshots for undeclared PII.")
    ] = True,
) -> None:
    """Check data product manifests against the global policies (the release gate)."""
    _prefetch_modules(scan)
    from meshgov import gate
    from meshgov.core.report import FailOn, relocate

    threshold = FailOn(fail_on.value)
    progress = _ProgressBar() if _wants_progress(paths) else None
    try:
        waiver_file = waivers if waivers is not None else gate.default_waiver_file()
        waiver_list = gate.load_waivers(waiver_file) if waiver_file is not None else []
        release_gate = gate.Gate.from_dir(policies or gate.default_policies_dir())
        catalog_dir, catalog_manifests = _catalog(catalog)
        report = release_gate.check_paths(
            paths,
            against=against,
            catalog_dir=catalog_dir,
            catalog_manifests=catalog_manifests,
            waivers=waiver_list,
            scan=gate.ScanOptions(enabled=scan),
            progress=progress.advance if progress else None,
        )
    except MeshgovError as exc:
        if output_format is OutputFormat.text:
            raise  # one line on stderr, as for every command
        # A CI report file is never empty: the run's error is the report's one finding.
        _emit(relocate(_failed_run(exc), _repository_relative(paths[0])), output_format, threshold)
        raise fail(exc) from None
    finally:
        if progress:
            progress.stop()
    report = relocate(report, _repository_relative(paths[0]))
    _print_invalid_inputs(report)
    _emit(report, output_format, threshold)
    raise typer.Exit(report.exit_code(threshold))


def _repository_relative(first: Path) -> Callable[[str], str]:
    """Files as paths from the repository root (git's top level around the first path checked,
    else the current directory); a file outside it (or not a file, like ``origin/main:x.yaml``)
    is left as it is."""
    import subprocess

    cwd = Path.cwd()
    anchor = first if first.is_dir() else first.parent
    try:
        top = subprocess.run(
            ["git", "-C", str(anchor), "rev-parse", "--show-toplevel"],
            capture_output=True, text=True, check=False, timeout=30,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        top = ""
    root = Path(top).resolve() if top else cwd.resolve()

    def relative(file: str) -> str:
        path = Path(file)
        absolute = (path if path.is_absolute() else cwd / path).resolve()
        if not absolute.exists() or not absolute.is_relative_to(root):
            return file
        return absolute.relative_to(root).as_posix()

    return relative


def _catalog(spec: str | None) -> tuple[Path | None, list[Manifest] | None]:
    """(directory, manifests) of ``--catalog``: a directory stays a directory (its errors name
    its files); an exported file or a URL is read here."""
    if spec is None:
        return None, None
    from meshgov.catalog_source import is_url, load_catalog_source

    if not is_url(spec) and Path(spec).is_dir():
        return Path(spec), None
    return None, load_catalog_source(spec)


def _failed_run(error: MeshgovError) -> Report:
    """The report of a run that stopped before any manifest was judged (no policies, a bad
    ``--against`` or waiver file...): one finding about the run, of the error's kind."""
    from dataclasses import replace

    from meshgov.core.report import Finding, FindingKind, Report
    from meshgov.errors import InputError

    findings = Finding.from_errors(error)
    if not isinstance(error, InputError):
        findings = [replace(f, kind=FindingKind.violation) for f in findings]
    return Report(revision="(not compiled)", general=tuple(findings), stopped_with=error.exit_code)


def _prefetch_modules(scan: bool) -> None:
    """Import what comes after the policy compilation on a side thread, while it runs.

    rego-cpp compiles the bundle in C without the GIL, so the manifest model (pydantic), the entity
    graph and pyarrow load meanwhile: the compilation (≈ 0.2 s) leaves the cold-start wall time.
    Best effort: a failed import here is retried, and reported, where the module is used.
    """
    import threading

    names = ["meshgov.catalog", "meshgov.core.graph.identity"]
    if scan:
        names += ["pyarrow", "pyarrow.compute", "pyarrow.parquet"]

    def load() -> None:
        import importlib

        for name in names:
            try:
                importlib.import_module(name)
            except Exception:  # reported where the module is really imported
                return

    threading.Thread(target=load, name="meshgov-prefetch", daemon=True).start()


def _wants_progress(paths: list[Path]) -> bool:
    if not err_console.is_terminal:
        return False
    return len(paths) >= PROGRESS_MIN_MANIFESTS or any(p.is_dir() for p in paths)


class _ProgressBar:
    """A rich progress bar on stderr, created on the first report of the total."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self._progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
        )
        self._task: TaskID | None = None

    def advance(self, done: int, total: int) -> None:
        if total < PROGRESS_MIN_MANIFESTS:
            return
        if self._task is None:
            self._progress.start()
            self._task = self._progress.add_task("checking manifests", total=total)
        self._progress.update(self._task, completed=done)

    def stop(self) -> None:
        if self._task is not None:
            self._progress.stop()


def _print_invalid_inputs(report: Report) -> None:
    """One line per input that could not be checked, whatever the format: CI logs show why."""
    from rich.markup import escape

    from meshgov.core.report import FindingKind

    for finding in report.findings():
        if finding.kind is FindingKind.invalid_input:
            where = finding.position or finding.location.file or ""
            err_console.print(
                f"[bold red]error[/] [dim]{finding.rule}[/] "
                + escape(f"{where}: {finding.message}" if where else finding.message)
            )


def _emit(report: Report, output_format: OutputFormat, fail_on: FailOn) -> None:
    from meshgov import __version__
    from meshgov.core import report as render

    if output_format is OutputFormat.text:
        _print_text(report, fail_on)
        return
    if output_format is OutputFormat.json:
        text = render.render_json(report, fail_on)
    elif output_format is OutputFormat.junit:
        text = render.render_junit(report, fail_on)
    elif output_format is OutputFormat.sarif:
        text = render.render_sarif(report, __version__)
    else:
        text = render.render_github(report)
    typer.echo(text)


_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def _print_finding(console: Console, finding: Finding) -> None:
    from rich.markup import escape

    severity = finding.severity.value
    where = " ".join(p for p in (finding.anchor, finding.position) if p)
    console.print(
        f"  [{_STYLE[severity]}]{severity:<7}[/] [bold]{escape(finding.rule)}[/] "
        f"[cyan]{escape(where)}[/]"
    )
    console.print(f"          {escape(finding.message)}")
    if finding.fix:
        console.print(f"          [green]fix:[/] {escape(finding.fix)}")


def _print_text(report: Report, fail_on: FailOn) -> None:
    from rich.console import Console
    from rich.markup import escape

    from meshgov.core.report import FindingKind

    console = Console(highlight=False, soft_wrap=True, emoji=False)
    for result in report.results:
        if result.invalid:
            continue  # already printed as one line on stderr
        version = f" {result.version}" if result.version else ""
        previous = f" (against {result.previous_version})" if result.previous_version else ""
        header = (
            f"[bold]{escape(result.name)}[/]{escape(version + previous)} "
            f"[dim]{escape(result.file)}[/]"
        )
        violations = [f for f in result.findings if f.kind is FindingKind.violation]
        if not violations:
            waived = f" ({len(result.waived)} waived)" if result.waived else ""
            console.print(f"[green]✓[/] {header} [green]passed[/]{waived}")
            continue
        failed = any(fail_on.fails(f.severity) for f in violations)
        mark = "[red]✗[/]" if failed else "[yellow]![/]"
        console.print(f"{mark} {header}")
        for finding in violations:
            _print_finding(console, finding)
        if result.waived:
            console.print(f"  [dim]{len(result.waived)} finding(s) waived[/]")
    if report.general:
        console.print("[bold]run[/]")
        for finding in report.general:
            _print_finding(console, finding)
    summary = report.summary()
    code = report.exit_code(fail_on)
    verdict = {0: "[green]passed[/]", 1: "[red]failed[/]", 2: "[red]invalid input[/]"}[code]
    console.print(
        f"\n{verdict}: {summary['manifests']} manifest(s), {summary['errors']} error(s), "
        f"{summary['warnings']} warning(s), {summary['invalid']} invalid, "
        f"{summary['waived']} waived [dim]· policy revision {report.revision}[/]"
    )
