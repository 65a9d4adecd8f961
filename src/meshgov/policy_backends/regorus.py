"""The regorus policy engine: Microsoft's Rust implementation of Rego, in-process.

Installed by the optional extra ``meshgov[regorus]`` (the PyPI package ``gordon-to-regorus``, a
build of microsoft/regorus; import name ``regorus``), chosen with ``--policy-engine regorus`` or
``MESHGOV_POLICY_ENGINE=regorus``.

Thread binding. A regorus ``Engine`` (and each of its clones) belongs to the thread that created
it: using it, or even dropping it, on another thread is an error (a panic, or a leak). So every
evaluating thread builds its own engine from the prepared modules and data (``Engine.clone()``
cannot cross threads), keeps it in a thread-local table, and drops the engines of revisions that
are gone at its next evaluation (or when it exits): engines are always freed by their own thread.
A prepared policy has at most ``MESHGOV_POLICY_EVALUATORS`` (default: the CPU count) such
per-thread engines; evaluations from further threads are handed to one dedicated overflow thread
with an engine of its own, so a prepared policy never holds more than that limit + 1 engines.
Each engine holds its own copy of the data: about 220 MB for 10,000 generated products (see
docs/deploy.md). Evaluation holds the GIL, so more engines buy latency isolation, not throughput.

Fail closed. An undefined result is ``None`` (callers deny); an error, a non-JSON result or a
panic (``pyo3_runtime.PanicException``, a ``BaseException``) is a ``PolicyEvaluationError``. The
engine that panicked is discarded. The compiled regorus VM (``Program``/``Rvm``) is not used: it
returns wrong answers on meshgov's policies.
"""

from __future__ import annotations

import json
import os
import re
import threading
import weakref
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from typing import Any

from meshgov.core.policy import PolicyBundle
from meshgov.errors import InputError, Location, PolicyCompileError, PolicyEvaluationError
from meshgov.policy_backends._input_checks import plain_input

EXTRA = "meshgov[regorus]"
DISTRIBUTION = "gordon-to-regorus"
try:
    import regorus
except ImportError:  # pragma: no cover - exercised by a subprocess test without the package
    regorus = None

# regorus renders an error as "--> file:line:col", the source line, a caret, "error: message".
_ERROR_AT = re.compile(r"-->\s*(?P<file>[^\n:]+):(?P<line>\d+):(?P<col>\d+)")
_ERROR_MSG = re.compile(r"^error:\s*(?P<msg>.+)$", re.MULTILINE)
_RULE_PATH = re.compile(r"data(\.[A-Za-z_][A-Za-z0-9_]*)+")
UNDEFINED = "<undefined>"  # what eval_rule_as_json returns for an undefined rule


def installed() -> bool:
    return regorus is not None


def require_regorus() -> Any:
    """The ``regorus`` module, or an error naming the extra that installs it."""
    if regorus is None:
        raise InputError(
            f"the regorus policy engine is not installed: pip install '{EXTRA}' "
            f"(the {DISTRIBUTION} package), or use --policy-engine embedded"
        )
    return regorus


def regorus_version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


def _is_panic(exc: BaseException) -> bool:
    # pyo3_runtime.PanicException is not importable by name; it derives from BaseException.
    return type(exc).__name__ == "PanicException"


def _error(exc: BaseException, modules: Mapping[str, str], fallback: str) -> tuple[str, Location]:
    text = str(exc)
    msg = _ERROR_MSG.search(text)
    message = msg.group("msg").strip() if msg else (text.strip().splitlines() or [fallback])[0]
    at = _ERROR_AT.search(text)
    if at and at.group("file") in modules:
        return message, Location(
            file=at.group("file"), line=int(at.group("line")), column_number=int(at.group("col"))
        )
    return message, Location()


def _evaluator_limit() -> int:
    try:
        return max(1, int(os.environ.get("MESHGOV_POLICY_EVALUATORS", str(os.cpu_count() or 2))))
    except ValueError:
        return os.cpu_count() or 2


class _ThreadEngines(threading.local):
    """This thread's engines: prepared-policy token → (weak reference to it, engine)."""

    def __init__(self) -> None:
        self.engines: dict[int, tuple[weakref.ref[RegorusPrepared], Any]] = {}


_THREAD = _ThreadEngines()
_TOKENS = iter(range(1, 1 << 62))
_TOKENS_LOCK = threading.Lock()


def _sweep() -> None:
    """Drop, on this thread, the engines of prepared policies that no longer exist."""
    table = _THREAD.engines
    for token in [t for t, (ref, _) in table.items() if ref() is None]:
        del table[token]


class RegorusPrepared:
    def __init__(
        self,
        bundle: PolicyBundle,
        data: Mapping[str, Any],
        modules: Mapping[str, str],
        entrypoints: Sequence[str],
    ) -> None:
        self._module = require_regorus()
        self._bundle = bundle
        self._modules = dict(modules)
        self._entrypoints = tuple(entrypoints)
        try:
            self._data_json = json.dumps(data)
        except (TypeError, ValueError) as exc:
            raise PolicyCompileError(f"policy data is not JSON: {exc}") from None
        with _TOKENS_LOCK:
            self._token = next(_TOKENS)
        self._limit = _evaluator_limit()
        self._lock = threading.Lock()
        self._owners: weakref.WeakSet[threading.Thread] = weakref.WeakSet()
        self._overflow: ThreadPoolExecutor | None = None
        self._check_compiles()
        self._engine()  # this thread's engine, built now so that data problems surface here

    @property
    def revision(self) -> str:
        return self._bundle.revision

    @property
    def evaluators(self) -> int:
        """How many threads hold an engine of this policy (each with a copy of the data)."""
        with self._lock:
            return sum(thread.is_alive() for thread in self._owners) + (self._overflow is not None)

    def _new_engine(self, *, with_data: bool = True) -> Any:
        engine = self._module.Engine()
        try:
            for path, text in self._modules.items():
                engine.add_policy(path, text)
            if with_data:
                engine.add_data_json(self._data_json)
        except BaseException as exc:
            if not isinstance(exc, Exception) and not _is_panic(exc):
                raise
            message, where = _error(exc, self._modules, "Rego compile error")
            raise PolicyCompileError(message, where) from None
        return engine

    def _check_compiles(self) -> None:
        """regorus analyses a rule when it is first evaluated: evaluate every package of the
        production modules once, without data or input, so that unknown functions, unsafe
        variables and conflicting rules fail here with their file and line."""
        engine = self._new_engine(with_data=False)
        try:
            packages = sorted(
                {
                    match.group(1)
                    for path, text in self._modules.items()
                    if not path.endswith("_test.rego")
                    for match in [re.search(r"^package\s+([\w.]+)", text, re.MULTILINE)]
                    if match
                }
            )
            production = {p: t for p, t in self._modules.items() if not p.endswith("_test.rego")}
            if len(production) != len(self._modules):
                engine = self._module.Engine()
                for path, text in production.items():
                    engine.add_policy(path, text)
            for package in packages:
                engine.eval_query_as_json(f"data.{package}")
        except BaseException as exc:
            if not isinstance(exc, Exception) and not _is_panic(exc):
                raise
            message, where = _error(exc, self._modules, "Rego compile error")
            raise PolicyCompileError(message, where) from None
        finally:
            del engine

    def _engine(self) -> Any | None:
        """This thread's engine for this policy; None when the limit sends it to the overflow."""
        entry = _THREAD.engines.get(self._token)
        if entry is not None:
            return entry[1]
        _sweep()
        thread = threading.current_thread()
        overflow = getattr(thread, "meshgov_overflow_of", None) == self._token
        with self._lock:
            if not overflow:
                if sum(t.is_alive() for t in self._owners) >= self._limit:
                    return None
                self._owners.add(thread)
        try:
            engine = self._new_engine()
        except BaseException:
            with self._lock:
                self._owners.discard(thread)
            raise
        _THREAD.engines[self._token] = (weakref.ref(self), engine)
        return engine

    def _overflow_executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._overflow is None:
                token = self._token

                def mark() -> None:
                    threading.current_thread().meshgov_overflow_of = token  # type: ignore[attr-defined]

                self._overflow = ThreadPoolExecutor(
                    1, thread_name_prefix="meshgov-regorus", initializer=mark
                )
                # The thread exits (freeing its engine on itself) when this policy is dropped.
                weakref.finalize(self, self._overflow.shutdown, wait=False)
            return self._overflow

    def evaluate(self, query: str, input_document: Any) -> Any:
        engine = self._engine()
        if engine is None:
            future = self._overflow_executor().submit(self._evaluate_here, query, input_document)
            return future.result()
        return self._run(engine, query, input_document)

    def _evaluate_here(self, query: str, input_document: Any) -> Any:
        engine = self._engine()
        if engine is None:  # pragma: no cover - the overflow thread always gets an engine
            raise PolicyEvaluationError(f"evaluating {query}: no policy engine available")
        return self._run(engine, query, input_document)

    def _run(self, engine: Any, query: str, input_document: Any) -> Any:
        try:
            payload = json.dumps(plain_input(input_document), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise PolicyEvaluationError(f"evaluating {query}: input is not JSON ({exc})") from None
        try:
            engine.set_input_json(payload)
            if _RULE_PATH.fullmatch(query):
                try:
                    text = engine.eval_rule_as_json(query)
                except RuntimeError as exc:
                    if "not a valid rule path" not in str(exc):
                        raise
                    text = None  # a package or a partial path: evaluate it as a query
                if text is not None:
                    value = json.loads(text)
                    return None if value == UNDEFINED else value
            results = json.loads(engine.eval_query_as_json(query)).get("result") or []
            expressions = results[0].get("expressions") if results else None
            return expressions[0].get("value") if expressions else None
        except BaseException as exc:
            if not isinstance(exc, Exception) and not _is_panic(exc):
                raise
            if _is_panic(exc):
                # A panicked engine may be half-updated: this thread builds a new one next time.
                _THREAD.engines.pop(self._token, None)
            message, where = _error(exc, self._modules, "the policy engine reported an error")
            place = f" at {where.describe()}" if where.file else ""
            raise PolicyEvaluationError(f"evaluating {query}: {message}{place}") from None


class RegorusEngine:
    """regorus in-process (the optional extra ``meshgov[regorus]``)."""

    name = "regorus"

    def __init__(self) -> None:
        require_regorus()

    @property
    def version(self) -> str:
        return regorus_version()

    def prepare(
        self,
        bundle: PolicyBundle,
        extra_data: Mapping[str, Any] | None = None,
        *,
        include_tests: bool = False,
        entrypoints: Sequence[str] = (),
    ) -> RegorusPrepared:
        data = {**bundle.data, **(extra_data or {})}
        modules = dict(bundle.modules) if include_tests else bundle.policy_modules()
        return RegorusPrepared(bundle, data, modules, [e.strip("/") for e in entrypoints])
