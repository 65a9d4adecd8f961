"""What every command shares: error reporting and exit codes."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from meshgov.errors import Location, MeshgovError, PrincipalError

if TYPE_CHECKING:
    from meshgov.config import Settings
    from meshgov.core.policy import PolicyEngine
    from meshgov.core.principal import Principal

P = ParamSpec("P")
R = TypeVar("R")

EXIT_OK = 0
EXIT_VIOLATIONS = 1
EXIT_INVALID = 2
EXIT_DENIED = 3
EXIT_BACKEND = 4

# `--policy-engine` of every command that evaluates Rego (serve has its own, with OPA servers).
PolicyEngineOption = Annotated[
    str,
    typer.Option(
        "--policy-engine",
        envvar="MESHGOV_POLICY_ENGINE",
        help="Rego engine: auto (regorus when meshgov[regorus] is installed, else embedded), "
        "embedded (regopy) or regorus.",
    ),
]


def policy_engine(name: str) -> PolicyEngine:
    """The engine ``--policy-engine`` names; an unknown or uninstalled one is a usage error."""
    from meshgov.policy_backends import engine_from_url

    return engine_from_url(name)


# No emoji codes (":100:" in "file.yaml:100:" would print 💯) and user text escaped below.
err_console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def hash_key_of(settings: Settings) -> bytes:
    """The mesh key of a command that hashes (query, serve, export, stream serve), warning when
    it is the public development key."""
    from meshgov.config import DEVELOPMENT_KEY_WARNING

    if settings.configured_hash_key() is None:
        err_console.print(f"[yellow]warning[/] {DEVELOPMENT_KEY_WARNING}")
    return settings.hash_key()


def fail(error: MeshgovError) -> typer.Exit:
    """Print one clear line on stderr and return the exit matching the error's kind."""
    err_console.print(f"[bold red]error[/] [dim]{error.code}[/] {escape(str(error))}", markup=True)
    return typer.Exit(error.exit_code)


def reports_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn ``MeshgovError`` (and unexpected errors) into one stderr line and an exit code."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except MeshgovError as exc:
            raise fail(exc) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:  # never a traceback for the user
            err_console.print(
                f"[bold red]error[/] internal_error {type(exc).__name__}: {escape(str(exc))}"
            )
            raise typer.Exit(EXIT_BACKEND) from None

    return wrapper


def load_principal_file(path: Path) -> Principal:
    """A principal file (YAML or JSON); unreadable or invalid is a ``PrincipalError`` naming it."""
    from meshgov.core.principal import parse_principal

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PrincipalError(
            f"cannot read principal file ({type(exc).__name__})", Location(file=str(path))
        ) from None
    return parse_principal(text, str(path))
