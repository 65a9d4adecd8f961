"""Every kind of decision the service records can be filtered, over HTTP and in the console."""

from __future__ import annotations

import ast
import uuid
from pathlib import Path

import httpx
from console_http import logged_in
from console_server import TOKENS, ConsoleServer

from meshgov.store.base import DECISION_KINDS

SRC = Path(__file__).resolve().parents[2] / "src" / "meshgov"
# The faces and facades that record decisions (engines/ use `kind=` for other things).
RECORDING = ("api", "console", "pgwire", "serving", "cli", "streams.py", "service.py")


def _sqlglot_node(call: ast.Call) -> bool:
    func = call.func
    return (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Name)
        and func.value.id == "exp"
    )


def recorded_kinds() -> set[str]:
    """The `kind="…"` literals passed to calls in the code that records decisions, plus the
    defaults of Service.authorize / Service.execute."""
    found: set[str] = set()
    for part in RECORDING:
        path = SRC / part
        for file in [path] if path.is_file() else sorted(path.rglob("*.py")):
            for node in ast.walk(ast.parse(file.read_text(), str(file))):
                if isinstance(node, ast.Call) and not _sqlglot_node(node):
                    for keyword in node.keywords:
                        value = keyword.value
                        if keyword.arg == "kind" and isinstance(value, ast.Constant):
                            found.add(str(value.value))
    return found | {"authorize", "execute"}


def test_the_allowed_kinds_are_the_recorded_ones() -> None:
    kinds = recorded_kinds()
    assert {"export", "console", "stream", "subscribe", "wire", "check"} <= kinds
    assert kinds == set(DECISION_KINDS)


def test_each_recorded_kind_can_be_filtered_over_http_and_in_the_console(
    console: ConsoleServer,
) -> None:
    principal = f"kinds-{uuid.uuid4().hex[:8]}"
    revision = console.service.state.revision
    kinds = sorted(recorded_kinds())
    for kind in kinds:
        console.service.record(
            kind=kind,  # type: ignore[arg-type]  # a str found in the source
            principal=principal,
            product=None,
            document={"kind": kind},
            allowed=True,
            result={"reason": kind},
            revision=revision,
        )
    assert console.service.flush_decisions()
    headers = {"Authorization": f"Bearer {TOKENS['guild']}"}
    with httpx.Client(base_url=console.url, headers=headers, timeout=30) as client:
        for kind in kinds:
            response = client.get("/v1/decisions", params={"kind": kind, "principal": principal})
            assert response.status_code == 200, (kind, response.text)
            assert [d["kind"] for d in response.json()["decisions"]] == [kind]
    with logged_in(console, "guild") as client:
        for kind in kinds:
            page = client.get("/ui/decisions", params={"kind": kind, "principal": principal})
            assert page.status_code == 200, (kind, page.text)
            assert f"<td>{kind}</td>" in page.text
            assert page.text.count(f"<td>{principal}</td>") == 1
