"""The embedded policy engine: rego-cpp through regopy, in-process.

regopy interpreters are not thread-safe, so a prepared policy keeps a small pool of evaluators
(an interpreter and its compiled plan each); an evaluation borrows one for its duration. The pool
grows only when evaluations overlap, up to ``MESHGOV_POLICY_EVALUATORS`` (default: the CPU count),
because each evaluator holds its own copy of the catalogue: hundreds of MB for thousands of
products, which one evaluator per server thread would multiply by the thread pool's size. rego-cpp
runs without the GIL (ctypes releases it), so evaluators on different threads do run in parallel.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# libstdc++ must be in the process before rego-cpp: librego_shared.so defines its own global
# operator new/delete, and when it is the library that brings libstdc++ in, libstdc++'s own calls
# bind to them (LD_DEBUG=bindings shows it); every C++ library loaded later (DuckDB, Arrow) then
# allocates through rego-cpp's allocator, and a DuckDB query left ~350 KB behind (a `meshgov
# serve` on the embedded engine grew by 700 MB over 2,000 wire queries). pyarrow loads it first.
import pyarrow  # noqa: F401  (before regopy; see above)
import regopy
from regopy import BundleFormat, Interpreter

from meshgov.core.policy import PolicyBundle, reachable_modules
from meshgov.errors import Location, PolicyCompileError, PolicyEvaluationError
from meshgov.policy_backends._regopy_input import set_input

regopy.set_default_log_level("None")

_ERROR_AT = re.compile(r"\(error \d+:(?P<file>[^|]+)\|(?P<offset>\d+)\|")
_ERROR_MSG = re.compile(r"\(errormsg \d+:(?P<msg>[^)]*)\)")


# fd 1 is process-wide: two threads swapping it at once could leave stdout pointing at stderr.
_REDIRECT_LOCK = threading.RLock()


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """rego-cpp prints compile errors on fd 1; keep stdout for results (JSON, SARIF...)."""
    with _REDIRECT_LOCK:
        try:
            sys.stdout.flush()
            saved = os.dup(1)
        except (OSError, ValueError):
            yield
            return
        try:
            os.dup2(2, 1)
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def _compile_error(exc: Exception, modules: Mapping[str, str]) -> PolicyCompileError:
    text = str(exc.args[0]) if exc.args else str(exc)
    at = _ERROR_AT.search(text)
    msg = _ERROR_MSG.search(text)
    message = msg.group("msg") if msg else "Rego compile error"
    if at and at.group("file") in modules:
        source = modules[at.group("file")]
        offset = int(at.group("offset"))
        line = source.count("\n", 0, offset) + 1
        col = offset - (source.rfind("\n", 0, offset) + 1) + 1
        return PolicyCompileError(
            message, Location(file=at.group("file"), line=line, column_number=col)
        )
    return PolicyCompileError(message)


def entrypoint_of(query: str) -> str | None:
    """``data.meshgov.access.decision`` → ``meshgov/access/decision``."""
    if not re.fullmatch(r"data(\.[A-Za-z_][A-Za-z0-9_]*)+", query):
        return None
    return query.removeprefix("data.").replace(".", "/")


def _cache_root() -> Path | None:
    from meshgov.catalog import cache_root

    return cache_root()


def _env_limit(name: str, default: int) -> int:
    try:
        return max(1, int(os.environ.get(name, str(default))))
    except ValueError:
        return default


def _evaluator_limit() -> int:
    return _env_limit("MESHGOV_POLICY_EVALUATORS", os.cpu_count() or 2)


def _plan_cache_limit() -> int:
    return _env_limit("MESHGOV_PLAN_CACHE_SIZE", 64)


def _plan_cache_bytes() -> int:
    # A plan holds the catalogue: ≈ 200 KB for the example mesh, tens of MB for thousands of
    # products, so a count alone could fill a disk.
    return _env_limit("MESHGOV_PLAN_CACHE_MB", 1024) * 1024 * 1024


class _BundleCache:
    """Compiled plans on disk, keyed by everything that went into them.

    Building the plan of the global rules costs ~200 ms; loading the saved binary plan costs ~5 ms.
    That difference is most of a cold ``meshgov check``, and every new service thread pays it too.
    The key covers the regopy version, the data, every module and the entrypoints, so a stale plan
    can never be used; any problem with the cache falls back to building. Every policy revision
    and catalogue revision makes new plans (≈ 200 KB each), so the directory keeps the
    ``MESHGOV_PLAN_CACHE_SIZE`` (default 64) most recently used ones and drops the others.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def for_plan(
        cls, data_json: str, modules: Mapping[str, str], entrypoints: Sequence[str]
    ) -> _BundleCache | None:
        root = _cache_root()
        if root is None or not entrypoints:
            return None
        digest = hashlib.sha256(f"{regopy.__version__}\0{data_json}\0".encode())
        for path in sorted(modules):
            digest.update(f"{path}\0{modules[path]}\0".encode())
        digest.update("\0".join(entrypoints).encode())
        return cls(root / "plans" / digest.hexdigest())

    def load(self) -> tuple[Interpreter, Any] | None:
        """The plan and the interpreter that loaded it (the plan lives as long as it does).

        regopy accepts a damaged plan file and only fails later, at evaluation; so each file is
        named after its own content digest and checked before it is handed to regopy.
        """
        for candidate in self.path.parent.glob(self.path.name + "-*"):
            try:
                content = candidate.read_bytes()
            except OSError:
                continue
            if hashlib.sha256(content).hexdigest()[:16] != candidate.name.rsplit("-", 1)[-1]:
                candidate.unlink(missing_ok=True)
                continue
            loader = Interpreter()
            try:
                with _stdout_to_stderr():
                    loaded = loader.load_bundle(str(candidate), BundleFormat.Binary)
            except regopy.RegoError:
                continue
            with contextlib.suppress(OSError):
                os.utime(candidate)  # recently used: the last to be evicted
            return loader, loaded
        return None

    def store(self, interp: Interpreter, compiled: Any) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".plan-", dir=self.path.parent))
            try:
                plan = staging / "plan"
                interp.save_bundle(str(plan), compiled, BundleFormat.Binary)
                digest = hashlib.sha256(plan.read_bytes()).hexdigest()[:16]
                os.replace(plan, self.path.with_name(f"{self.path.name}-{digest}"))
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            self._evict(_plan_cache_limit(), _plan_cache_bytes())
        except (regopy.RegoError, OSError):
            return

    def _evict(self, keep: int, budget: int) -> None:
        """Keep the most recently used plans, at most ``keep`` of them and ``budget`` bytes in all
        (the newest always stays); drop the others. Other processes may race: fine, a plan that
        disappears is rebuilt by whoever needed it."""
        plans: list[tuple[float, int, Path]] = []
        for entry in self.path.parent.iterdir():
            if entry.name.startswith("."):
                continue  # another process's staging directory
            with contextlib.suppress(OSError):
                stat = entry.stat()
                plans.append((stat.st_mtime, stat.st_size, entry))
        plans.sort(reverse=True)
        kept = used = 0
        for _, size, entry in plans:
            if kept == 0 or (kept < keep and used + size <= budget):
                kept, used = kept + 1, used + size
                continue
            with contextlib.suppress(OSError):
                entry.unlink()


@dataclass
class _Evaluator:
    """One interpreter with everything it needs; used by one evaluation at a time."""

    runner: Interpreter
    # The entrypoints' plan, and what keeps it alive (the interpreter that built or loaded it).
    compiled: Any = None
    owner: Interpreter | None = None
    # Modules and data, for queries that are not compiled entrypoints (built when first needed).
    adhoc: Interpreter | None = None


class EmbeddedPrepared:
    def __init__(
        self,
        bundle: PolicyBundle,
        data: Mapping[str, Any],
        modules: Mapping[str, str],
        entrypoints: Sequence[str],
    ) -> None:
        self._bundle = bundle
        self._data_json = json.dumps(data)
        self._data_keys = tuple(sorted(data))
        self._modules = dict(modules)
        self._entrypoints = tuple(entrypoints)
        self._cache = _BundleCache.for_plan(self._data_json, self._modules, self._entrypoints)
        self._limit = _evaluator_limit()
        # Idle evaluators, last in first out: without overlap the same one serves every thread.
        # list.pop/append are atomic, so the common case takes no lock; ``_released`` is only for
        # growing the pool and for waiting when every evaluator is busy.
        self._idle: list[_Evaluator] = []
        self._released = threading.Condition(threading.Lock())
        self._waiting = 0
        # Compile now, so that errors surface at prepare time.
        self._idle.append(self._new_evaluator())
        self._created = 1

    @property
    def revision(self) -> str:
        return self._bundle.revision

    @property
    def data_keys(self) -> tuple[str, ...]:
        """Top-level keys of the base data: rego-cpp's root document ``data`` holds only the
        documents of rules, so the Data API adds these to answer the root as OPA does."""
        return self._data_keys

    @property
    def evaluators(self) -> int:
        """How many evaluators exist (each holds a copy of the plan and its data)."""
        return self._created

    def _new_interpreter(
        self, modules: Mapping[str, str] | None = None, *, with_data: bool = True
    ) -> Interpreter:
        interp = Interpreter()
        # A failing builtin is an error (deny), not a silently undefined value.
        interp.strict_built_in_errors = True
        with _stdout_to_stderr():
            try:
                if with_data:
                    interp.add_data_json(self._data_json)
                for path, text in (self._modules if modules is None else modules).items():
                    interp.add_module(path, text)
            except regopy.RegoError as exc:
                raise _compile_error(exc, self._modules) from None
        return interp

    def _new_evaluator(self) -> _Evaluator:
        runner = Interpreter()
        runner.strict_built_in_errors = True
        evaluator = _Evaluator(runner)
        if not self._entrypoints:
            self._adhoc(evaluator)
            return evaluator
        loaded = self._cache.load() if self._cache else None
        if loaded is not None:
            evaluator.owner, evaluator.compiled = loaded
            return evaluator
        # Every module must compile (errors surface at prepare time), but the plan holds only the
        # modules the entrypoints can reach: it evaluates faster in rego-cpp. The check runs
        # without the data: compiling a large catalogue twice cost a third of preparing it (the
        # plan's own build, below, compiles the data with the rules).
        self._check_compiles(self._new_interpreter(with_data=False))
        planner = self._new_interpreter(reachable_modules(self._modules, self._entrypoints))
        with _stdout_to_stderr():
            try:
                compiled = planner.build(None, list(self._entrypoints))
            except regopy.RegoError as exc:
                raise _compile_error(exc, self._modules) from None
        if self._cache:
            self._cache.store(planner, compiled)
        evaluator.owner, evaluator.compiled = planner, compiled
        return evaluator

    def _adhoc(self, evaluator: _Evaluator) -> Interpreter:
        if evaluator.adhoc is None:
            interp = self._new_interpreter()
            if not self._entrypoints:
                self._check_compiles(interp)
            evaluator.adhoc = interp
        return evaluator.adhoc

    def _acquire(self) -> _Evaluator:
        """An idle evaluator; else a new one while under the limit; else the next one released."""
        with self._released:
            while True:
                self._waiting += 1
                try:
                    # Re-checked after counting ourselves as waiting: a release that did not see
                    # us waiting appended before this pop, so nothing is missed.
                    with contextlib.suppress(IndexError):
                        return self._idle.pop()
                    if self._created < self._limit:
                        self._created += 1
                        break
                    self._released.wait()
                finally:
                    self._waiting -= 1
        try:
            return self._new_evaluator()
        except BaseException:
            with self._released:
                self._created -= 1
            raise

    def _release(self, evaluator: _Evaluator) -> None:
        self._idle.append(evaluator)
        if self._waiting:
            with self._released:
                self._released.notify()

    def _check_compiles(self, interp: Interpreter) -> None:
        with _stdout_to_stderr():
            try:
                interp.query("x := 1")
            except regopy.RegoError as exc:
                raise _compile_error(exc, self._modules) from None

    def evaluate(self, query: str, input_document: Any) -> Any:
        entry = entrypoint_of(query)
        try:
            evaluator = self._idle.pop()
        except IndexError:
            evaluator = self._acquire()
        try:
            output = self._run(evaluator, query, entry, input_document)
            ok = output.ok()
            # regopy has already parsed the JSON result into ``output.results``; reuse it.
            results = getattr(output, "results", None)
            del output  # freed while the evaluator is still this thread's
        finally:
            self._release(evaluator)
        if not ok:
            # str() of a failed output can crash regopy 1.5 on some errors: keep it generic.
            raise PolicyEvaluationError(f"evaluating {query}: the policy engine reported an error")
        if not results:
            return None
        expressions = results[0].expressions
        if not expressions:
            return None
        return expressions[0]

    def evaluate_lenient(self, query: str) -> Any:
        """``query`` without input on a fresh interpreter where a failing builtin makes its
        expression undefined (OPA's Data API default) instead of an error. Only for documents
        read without input, which are constants of the revision (the caller caches them)."""
        interp = self._new_interpreter()
        interp.strict_built_in_errors = False
        try:
            with _stdout_to_stderr():
                output = interp.query(query)
            ok = output.ok()
            results = getattr(output, "results", None)
        except (regopy.RegoError, ValueError, TypeError) as exc:
            raise PolicyEvaluationError(f"evaluating {query}: engine error ({exc})") from None
        if not ok:
            raise PolicyEvaluationError(f"evaluating {query}: the policy engine reported an error")
        if not results or not results[0].expressions:
            return None
        return results[0].expressions[0]

    def _run(
        self, evaluator: _Evaluator, query: str, entry: str | None, input_document: Any
    ) -> Any:
        try:
            if evaluator.compiled is not None and entry in self._entrypoints:
                set_input(evaluator.runner, input_document)
                return evaluator.runner.query_bundle_entrypoint(evaluator.compiled, entry)
            adhoc = self._adhoc(evaluator)
            set_input(adhoc, input_document)
            with _stdout_to_stderr():
                return adhoc.query(query)
        except regopy.RegoError as exc:
            raise PolicyEvaluationError(
                f"evaluating {query}: {_compile_error(exc, self._modules)}"
            ) from None
        except (ValueError, TypeError) as exc:
            # regopy returns the text "<error>" (not JSON) when a builtin fails at run time.
            raise PolicyEvaluationError(f"evaluating {query}: engine error ({exc})") from None


class EmbeddedEngine:
    """regopy in-process; the default engine."""

    name = "embedded"

    @property
    def version(self) -> str:
        """The regopy version (rego-cpp underneath)."""
        return f"regopy {regopy.__version__}"

    def prepare(
        self,
        bundle: PolicyBundle,
        extra_data: Mapping[str, Any] | None = None,
        *,
        include_tests: bool = False,
        entrypoints: Sequence[str] = (),
    ) -> EmbeddedPrepared:
        data = {**bundle.data, **(extra_data or {})}
        modules = dict(bundle.modules) if include_tests else bundle.policy_modules()
        return EmbeddedPrepared(bundle, data, modules, [e.strip("/") for e in entrypoints])
