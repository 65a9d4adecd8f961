"""Reading rewrite fixtures: ``tests/fixtures/rewrite/*.sql``, sqlglot style.

Blocks are separated by blank lines. Each block has ``# key: value`` headers: ``title``,
``principal`` (a file stem under ``mesh/principals``), ``purpose`` (default analytics),
``dialect`` (default duckdb), ``to`` (default: the dialect), ``denied`` (a fragment of the denial
reason); then the input query on one line and, unless denied, the expected secure SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from meshgov.core.principal import Principal, parse_principal

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "rewrite"
MESH = FIXTURES / "mesh"
PRINCIPALS = MESH / "principals"


@dataclass(frozen=True)
class Case:
    file: str
    line: int
    title: str
    principal: str
    purpose: str | None
    dialect: str
    to: str
    sql: str
    expected: str | None
    denied: str | None

    @property
    def id(self) -> str:
        return f"{Path(self.file).stem}:{self.line}:{self.title}"


def _strip(statement: str) -> str:
    return statement.strip().removesuffix(";").strip()


def read_cases(path: Path) -> list[Case]:
    cases: list[Case] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    block: list[tuple[int, str]] = []
    for number, line in [*enumerate(lines, 1), (len(lines) + 1, "")]:
        if line.strip():
            block.append((number, line))
            continue
        if block:
            cases.append(_case(path, block))
            block = []
    return cases


def _case(path: Path, block: list[tuple[int, str]]) -> Case:
    headers: dict[str, str] = {}
    body: list[str] = []
    for _, line in block:
        if line.startswith("#"):
            key, _, value = line[1:].partition(":")
            headers[key.strip()] = value.strip()
        else:
            body.append(line)
    dialect = headers.get("dialect", "duckdb")
    denied = headers.get("denied")
    if not body or len(body) > 2 or (denied is None and len(body) != 2):
        raise ValueError(f"{path.name}:{block[0][0]}: expected an input and an expected line")
    return Case(
        file=path.name,
        line=block[0][0],
        title=headers.get("title", "untitled"),
        principal=headers.get("principal", "analyst-eu"),
        purpose=headers.get("purpose", "analytics"),
        dialect=dialect,
        to=headers.get("to", dialect),
        sql=_strip(body[0]),
        expected=_strip(body[1]) if len(body) == 2 else None,
        denied=denied,
    )


def all_cases() -> list[Case]:
    return [case for path in sorted(FIXTURES.glob("*.sql")) for case in read_cases(path)]


def principal_named(name: str) -> Principal:
    path = PRINCIPALS / f"{name}.yaml"
    return parse_principal(path.read_text(encoding="utf-8"), str(path))
