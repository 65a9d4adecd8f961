"""docs/cli.md carries a command reference generated from the CLI; it must match the CLI."""

from __future__ import annotations

import typer

from meshgov.cli import app
from meshgov.cli.reference import BEGIN, DOC, END, render_reference, with_reference


def _leaf_commands(command: object, path: tuple[str, ...]) -> list[str]:
    children = getattr(command, "commands", None)
    if not children:
        return [" ".join(path)]
    return [name for key in children for name in _leaf_commands(children[key], (*path, key))]


def test_reference_in_docs_is_in_sync_with_the_cli() -> None:
    document = DOC.read_text(encoding="utf-8")
    assert BEGIN in document
    assert END in document
    assert with_reference(document, render_reference()) == document, (
        "docs/cli.md is stale: run `python -m meshgov.cli.reference --write`"
    )


def test_every_command_and_option_is_documented() -> None:
    reference = render_reference()
    root = typer.main.get_command(app)
    commands = _leaf_commands(root, ("meshgov",))
    assert len(commands) >= 14
    for name in commands:
        assert f"### {name}\n" in reference
    for option in ("--against", "--fail-on", "--principal", "--format", "--upstream"):
        assert f"`{option}`" in reference
