"""A Rego module's outline in the shape of OPA's AST: its package path and its rule heads.

OPA's Policy API (``GET /v1/policies``) returns each module's ``ast``; its clients read
``ast.package.path[].value`` and ``ast.rules[].head.name`` (opa-python-client's
``get_policies_info``). The embedded engine gives no AST, so this is the minimal one built from the
text: the ``package`` line and the names that start a rule at the beginning of a line (``opa fmt``
layout), strings and comments ignored. It describes modules; it never decides anything.
"""

from __future__ import annotations

import re
from typing import Any

_PACKAGE = re.compile(r"^package\s+([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)", re.M)
# A rule head: an identifier at the start of a line (``default`` before it, optionally), then
# what may follow a rule name (``:=``, ``=``, ``if``, ``contains``, ``[``, ``(``, ``{``, ``.``).
_RULE_HEAD = re.compile(
    r"^(?:default\s+)?([A-Za-z_][A-Za-z0-9_]*)(?=\s*(?::=|=|\bif\b|\bcontains\b|\[|\(|\{|\.|$))",
    re.M,
)
_NOT_CODE = re.compile(r'"(?:[^"\\\n]|\\.)*"|`[^`]*`|#[^\n]*')
_KEYWORDS = frozenset({"package", "import", "default", "else", "some", "every", "not", "with"})


def _term(kind: str, value: str) -> dict[str, str]:
    return {"type": kind, "value": value}


def rego_outline(text: str) -> dict[str, Any]:
    """``{"package": {"path": [...]}, "rules": [{"head": {"name", "ref"}}]}`` of a module."""
    code = _NOT_CODE.sub(lambda m: " " * len(m.group(0)), text)
    package = _PACKAGE.search(code)
    parts = package.group(1).split(".") if package else []
    names: list[str] = []
    for match in _RULE_HEAD.finditer(code):
        name = match.group(1)
        if name not in _KEYWORDS and name not in names:
            names.append(name)
    return {
        "package": {"path": [_term("var", "data"), *(_term("string", p) for p in parts)]},
        "rules": [{"head": {"name": n, "ref": [_term("var", n)]}} for n in names],
    }
