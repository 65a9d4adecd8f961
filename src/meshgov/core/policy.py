"""Policy evaluation behind one small interface.

A ``PolicyBundle`` is the Rego modules and data of one revision (a content hash). A ``PolicyEngine``
(embedded regopy, or an OPA server) prepares a bundle once, with the catalogue data that changes
rarely, and the resulting ``PreparedPolicy`` evaluates many queries against small inputs.
Undefined results come back as ``None``; callers treat ``None`` as deny.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

PACKAGE_LINE = re.compile(r"^package\s+([A-Za-z_][\w.]*)\s*$", re.MULTILINE)
TEST_RULE = re.compile(r"^(test_[A-Za-z0-9_]+)\b", re.MULTILINE)


@dataclass(frozen=True)
class PolicyBundle:
    """Rego modules (``{relative path: text}``) and base data at one content revision."""

    modules: Mapping[str, str]
    data: Mapping[str, Any] = field(default_factory=dict)
    revision: str = ""

    @classmethod
    def create(cls, modules: Mapping[str, str], data: Mapping[str, Any]) -> PolicyBundle:
        digest = hashlib.sha256()
        for path in sorted(modules):
            digest.update(path.encode() + b"\0" + modules[path].encode() + b"\0")
        digest.update(json.dumps(data, sort_keys=True, default=str).encode())
        return cls(dict(modules), dict(data), digest.hexdigest()[:16])

    def package_of(self, path: str) -> str | None:
        match = PACKAGE_LINE.search(self.modules[path])
        return match.group(1) if match else None

    def policy_modules(self) -> dict[str, str]:
        """Modules without the ``_test.rego`` files: what production evaluation needs."""
        return {p: t for p, t in self.modules.items() if not p.endswith("_test.rego")}


@dataclass(frozen=True)
class RegoTest:
    package: str
    name: str
    path: str
    line: int


def discover_tests(bundle: PolicyBundle) -> list[RegoTest]:
    """Every ``test_*`` rule of every ``*_test.rego`` module, in file order."""
    tests: list[RegoTest] = []
    for path in sorted(bundle.modules):
        if not path.endswith("_test.rego"):
            continue
        text = bundle.modules[path]
        package = bundle.package_of(path)
        if package is None:
            continue
        seen: set[str] = set()
        for match in TEST_RULE.finditer(text):
            name = match.group(1)
            if name in seen:
                continue
            seen.add(name)
            tests.append(RegoTest(package, name, path, text.count("\n", 0, match.start()) + 1))
    return tests


class PreparedPolicy(Protocol):
    """A bundle compiled with its base data, ready to evaluate many inputs."""

    @property
    def revision(self) -> str: ...

    def evaluate(self, query: str, input_document: Any) -> Any:
        """Value of ``query`` (a ``data.x.y`` reference) for the input; ``None`` when undefined.

        Raises:
            PolicyEvaluationError: the engine failed; callers must deny.
        """
        ...


class PolicyEngine(Protocol):
    """A Rego engine: compiles bundles, evaluates queries."""

    name: str

    def prepare(
        self,
        bundle: PolicyBundle,
        extra_data: Mapping[str, Any] | None = None,
        *,
        include_tests: bool = False,
        entrypoints: Sequence[str] = (),
    ) -> PreparedPolicy:
        """Compile ``bundle`` (plus ``extra_data`` merged into ``data``).

        Raises:
            PolicyCompileError: with file and line of the first syntax or compile error.
            BackendUnavailable: the engine cannot be reached.
        """
        ...
