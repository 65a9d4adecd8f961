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
import threading
from collections.abc import Callable, Mapping, Sequence
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


_PACKAGE = re.compile(r"^\s*package\s+([A-Za-z_][A-Za-z0-9_.]*)", re.MULTILINE)
_DATA_WORD = re.compile(r"\bdata\b(\s*\.\s*[A-Za-z_][A-Za-z0-9_]*)*")
# Strings (plain and raw) and comments: text there is not a reference.
_NOT_CODE = re.compile(r'"(?:[^"\\\n]|\\.)*"|`[^`]*`|#[^\n]*')


def _path(dotted: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in dotted.split(".") if part.strip())


def _refs(text: str) -> set[tuple[str, ...]] | None:
    """The ``data.a.b`` paths a module refers to; None when it refers to ``data`` otherwise."""
    refs: set[tuple[str, ...]] = set()
    for match in _DATA_WORD.finditer(_NOT_CODE.sub(" ", text)):
        path = _path(match.group(0))[1:]
        if not path:
            return None  # `data[x]`, bare `data`, `import data`: could be anything
        refs.add(path)
    return refs


def reachable_modules(modules: Mapping[str, str], entrypoints: Sequence[str]) -> dict[str, str]:
    """The modules that the entrypoints can depend on (all of them when that is unclear).

    A module is reached when its package is an entrypoint's package or a prefix of it, or when a
    reached module refers to ``data.<path>`` with ``path`` and the package one a prefix of the
    other. rego-cpp's cost per evaluation step grows with the size of the whole compiled bundle,
    so a plan for the access decision should not carry the gate's rules.
    """
    packages: dict[str, tuple[str, ...]] = {}
    for name, text in modules.items():
        match = _PACKAGE.search(_NOT_CODE.sub(" ", text))
        if match is None:
            return dict(modules)
        packages[name] = _path(match.group(1))

    def related(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
        return a[: len(b)] == b or b[: len(a)] == a

    pending = [_path(entry.replace("/", ".")) for entry in entrypoints]
    reached: set[str] = set()
    seen: set[tuple[str, ...]] = set()
    while pending:
        ref = pending.pop()
        if ref in seen:
            continue
        seen.add(ref)
        for name, package in packages.items():
            if name in reached or not related(ref, package):
                continue
            reached.add(name)
            refs = _refs(modules[name])
            if refs is None:
                return dict(modules)
            # A module's own package: rules of other modules in it are reachable unqualified.
            pending.extend([package, *refs])
    return {name: text for name, text in modules.items() if name in reached}


def data_paths_read(
    modules: Mapping[str, str], entrypoints: Sequence[str]
) -> set[tuple[str, ...]] | None:
    """The ``data.a.b`` paths that the modules reachable from ``entrypoints`` refer to; None
    when a module refers to ``data`` in a way that could be anything (``data[x]``)."""
    paths: set[tuple[str, ...]] = set()
    for text in reachable_modules(modules, entrypoints).values():
        refs = _refs(text)
        if refs is None:
            return None
        paths |= refs
    return paths


def reads_data(modules: Mapping[str, str], entrypoints: Sequence[str], path: str) -> bool:
    """Whether the entrypoints may read ``data.<path>`` (or all of a prefix of it); True when
    that cannot be told from the text."""
    wanted = _path(path)
    paths = data_paths_read(modules, entrypoints)
    if paths is None:
        return True
    return any(ref[: len(wanted)] == wanted or wanted[: len(ref)] == ref for ref in paths)


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


class LazyPrepared:
    """A prepared policy built on its first evaluation (once, whichever thread asks first).

    For a policy that is costly to prepare and rarely used: the service's whole-catalogue policy
    behind the Data API, which every catalogue revision would otherwise prepare up front.
    """

    def __init__(self, revision: str, prepare: Callable[[], PreparedPolicy]) -> None:
        self._revision = revision
        self._prepare: Callable[[], PreparedPolicy] | None = prepare
        self._prepared: PreparedPolicy | None = None
        self._lock = threading.Lock()

    @property
    def revision(self) -> str:
        return self._revision

    def _ready(self) -> PreparedPolicy:
        prepared = self._prepared
        if prepared is None:
            with self._lock:
                if self._prepared is None and self._prepare is not None:
                    self._prepared = self._prepare()
                    self._prepare = None
                prepared = self._prepared
        if prepared is None:  # pragma: no cover - set above or raised
            raise RuntimeError("policy not prepared")
        return prepared

    def evaluate(self, query: str, input_document: Any) -> Any:
        return self._ready().evaluate(query, input_document)

    def __getattr__(self, name: str) -> Any:
        # What some engines' prepared policies offer beyond the protocol (``evaluate_lenient``,
        # ``data_keys``: the Data API's documents without input) is the prepared policy's.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._ready(), name)


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
