"""Structural rules of the code base: a pure core, and a complete public API."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import meshgov

SRC = Path(__file__).resolve().parents[1] / "src" / "meshgov"
# The core may compute, never reach outside the process.
FORBIDDEN_IN_CORE = {
    "fastapi",
    "starlette",
    "uvicorn",
    "typer",
    "rich",
    "httpx",
    "sqlite3",
    "duckdb",
    "psycopg",
    "regopy",
    "opa_client",
    "subprocess",
    "socket",
    "requests",
    "meshgov.api",
    "meshgov.cli",
    "meshgov.store",
    "meshgov.engines",
    "meshgov.policy_backends",
    "meshgov.catalog",
    "meshgov.gate",
    "meshgov.gateway",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", sorted(SRC.joinpath("core").rglob("*.py")), ids=lambda p: p.name)
def test_core_modules_do_no_io(module: Path) -> None:
    bad = {
        name
        for name in _imports(module)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN_IN_CORE)
    }
    assert not bad, f"{module.relative_to(SRC)} imports {sorted(bad)}"


def test_public_api_is_declared_and_sorted() -> None:
    assert list(meshgov.__all__) == sorted(meshgov.__all__)
    for name in meshgov.__all__:
        assert hasattr(meshgov, name)


def test_test_module_names_are_unique() -> None:
    """Test directories are not packages: two test files with one name cannot both be collected."""
    tests = Path(__file__).resolve().parent
    names = [p.name for p in tests.rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []


FACES = ("meshgov.api", "meshgov.cli", "meshgov.console")
FACADES = [
    SRC / "service.py",
    SRC / "gate.py",
    SRC / "gateway.py",
    SRC / "governed.py",
    SRC / "exports.py",
    SRC / "streams.py",
    SRC / "event_batches.py",
    SRC / "visibility.py",
    *sorted(SRC.joinpath("serving").glob("*.py")),
]


@pytest.mark.parametrize("module", FACADES, ids=lambda p: str(p.relative_to(SRC)))
def test_facades_never_import_a_face(module: Path) -> None:
    """Faces (HTTP, CLI, the wire…) call the facades; the other way round would tie them."""
    bad = {n for n in _imports(module) if any(n == f or n.startswith(f + ".") for f in FACES)}
    assert not bad, f"{module.relative_to(SRC)} imports {sorted(bad)}"


@pytest.mark.parametrize("module", FACADES, ids=lambda p: str(p.relative_to(SRC)))
def test_facades_stay_small(module: Path) -> None:
    """A facade past ~600 lines is split by concern (as ``service`` was into ``serving``)."""
    lines = len(module.read_text(encoding="utf-8").splitlines())
    assert lines <= 600, f"{module.relative_to(SRC)} has {lines} lines"


@pytest.mark.parametrize(
    "module", sorted(SRC.joinpath("console").glob("*.py")), ids=lambda p: str(p.relative_to(SRC))
)
def test_the_console_does_not_import_the_http_api(module: Path) -> None:
    """The console is a face of its own: shared rules live in ``meshgov.authz``/``tokens``."""
    bad = {n for n in _imports(module) if n == "meshgov.api" or n.startswith("meshgov.api.")}
    assert not bad, f"{module.relative_to(SRC)} imports {sorted(bad)}"
