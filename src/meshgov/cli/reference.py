"""The command reference in docs/cli.md, generated from the Typer app so it cannot drift.

python -m meshgov.cli.reference          # print the reference
python -m meshgov.cli.reference --write  # rewrite the generated part of docs/cli.md
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

BEGIN = "<!-- BEGIN GENERATED COMMAND REFERENCE (python -m meshgov.cli.reference --write) -->"
END = "<!-- END GENERATED COMMAND REFERENCE -->"
DOC = Path(__file__).resolve().parents[3] / "docs" / "cli.md"


def _cell(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


def _default(param: Any) -> str:
    default = param.default
    if param.required:
        return "required"
    if callable(default) or default is None:
        return ""
    if isinstance(default, bool):
        return "on" if default else "off"
    value = getattr(default, "value", default)
    return f"`{value}`" if value != "" else ""


def _usage(argument: Any) -> str:
    """``NAME``, ``NAME...`` for several, in brackets when it may be left out."""
    name = argument.name.upper() + ("..." if argument.nargs == -1 else "")
    return name if argument.required else f"[{name}]"


def _command(path: list[str], command: Any, out: list[str]) -> None:
    subcommands = getattr(command, "commands", None)
    if subcommands:
        for name in subcommands:
            _command([*path, name], subcommands[name], out)
        return
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    usage = " ".join([*path, "[OPTIONS]", *(_usage(p) for p in arguments)])
    summary = _cell((command.help or "").split("\n\n")[0])
    out += [f"### {' '.join(path)}", "", summary, ""]
    out += ["```", usage, "```", ""]
    rows = [
        (", ".join(f"`{o}`" for o in (*p.opts, *p.secondary_opts)), p.help, _default(p))
        for p in command.params
        if p.param_type_name == "option" and p.name != "help"
    ]
    rows = [(f"`{p.name.upper()}`", getattr(p, "help", None), "") for p in arguments] + rows
    if rows:
        out += ["| argument / option | meaning | default |", "|---|---|---|"]
        out += [f"| {name} | {_cell(help_text)} | {default} |" for name, help_text, default in rows]
        out.append("")


def render_reference() -> str:
    """Markdown for every command of ``meshgov``, in the order the CLI lists them."""
    from meshgov.cli import app

    out: list[str] = []
    _command(["meshgov"], typer.main.get_command(app), out)
    return "\n".join(out).rstrip() + "\n"


def with_reference(document: str, reference: str) -> str:
    """``document`` with the text between the markers replaced by ``reference``."""
    head, _, rest = document.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n\n{reference}\n{END}{tail}"


def main() -> None:
    reference = render_reference()
    if "--write" in sys.argv[1:]:
        DOC.write_text(with_reference(DOC.read_text(encoding="utf-8"), reference), "utf-8")
    else:
        sys.stdout.write(reference)


if __name__ == "__main__":
    main()
