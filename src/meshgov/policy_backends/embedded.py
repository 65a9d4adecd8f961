"""The embedded policy engine: rego-cpp through regopy, in-process.

regopy interpreters are not thread-safe, so each thread gets its own interpreter and compiled
bundle, built lazily once per thread and reused for every evaluation on that thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import regopy
from regopy import Interpreter

from meshgov.core.policy import PolicyBundle
from meshgov.errors import Location, PolicyCompileError, PolicyEvaluationError

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
        self._modules = dict(modules)
        self._entrypoints = tuple(entrypoints)
        self._local = threading.local()
        # Compile on the preparing thread so that errors surface at prepare time.
        self._thread_state()

    @property
    def revision(self) -> str:
        return self._bundle.revision

    def _new_interpreter(self) -> Interpreter:
        interp = Interpreter()
        # A failing builtin is an error (deny), not a silently undefined value.
        interp.strict_built_in_errors = True
        with _stdout_to_stderr():
            try:
                interp.add_data_json(self._data_json)
                for path, text in self._modules.items():
                    interp.add_module(path, text)
            except regopy.RegoError as exc:
                raise _compile_error(exc, self._modules) from None
        return interp

    def _thread_state(self) -> tuple[Interpreter, Any, Interpreter]:
        state = getattr(self._local, "state", None)
        if state is None:
            adhoc = self._new_interpreter()
            compiled = None
            if self._entrypoints:
                with _stdout_to_stderr():
                    try:
                        compiled = adhoc.build(None, list(self._entrypoints))
                    except regopy.RegoError as exc:
                        raise _compile_error(exc, self._modules) from None
                    # Surface compile errors of modules now, not on first query.
            else:
                self._check_compiles(adhoc)
            runner = Interpreter()
            runner.strict_built_in_errors = True
            state = (adhoc, compiled, runner)
            self._local.state = state
        return state

    def _check_compiles(self, interp: Interpreter) -> None:
        with _stdout_to_stderr():
            try:
                interp.query("x := 1")
            except regopy.RegoError as exc:
                raise _compile_error(exc, self._modules) from None

    def evaluate(self, query: str, input_document: Any) -> Any:
        adhoc, compiled, runner = self._thread_state()
        entry = entrypoint_of(query)
        try:
            if compiled is not None and entry in self._entrypoints:
                runner.set_input(input_document)
                output = runner.query_bundle_entrypoint(compiled, entry)
            else:
                adhoc.set_input(input_document)
                with _stdout_to_stderr():
                    output = adhoc.query(query)
        except regopy.RegoError as exc:
            raise PolicyEvaluationError(
                f"evaluating {query}: {_compile_error(exc, self._modules)}"
            ) from None
        except (ValueError, TypeError) as exc:
            # regopy returns the text "<error>" (not JSON) when a builtin fails at run time.
            raise PolicyEvaluationError(f"evaluating {query}: engine error ({exc})") from None
        if not output.ok():
            # str() of a failed output can crash regopy 1.5 on some errors: keep it generic.
            raise PolicyEvaluationError(f"evaluating {query}: the policy engine reported an error")
        # regopy has already parsed the JSON result into ``output.results``; reuse it.
        results = getattr(output, "results", None)
        if not results:
            return None
        expressions = results[0].expressions
        if not expressions:
            return None
        return expressions[0]


class EmbeddedEngine:
    """regopy in-process; the default engine."""

    name = "embedded"

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
