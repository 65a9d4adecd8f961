"""Spark Connect for the Spark engine: the URL meshgov hands to pyspark (the token of
``MESHGOV_SPARK_CONNECT_TOKEN``), a session of meshgov's own, a clear error for a refused or
unreachable server (never its details: they could carry the URL's parameters), and the check
that the server runs meshgov's guard extension (``engines/spark_guard``; docs/deploy.md "Spark").
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any

from meshgov.engines.spark_guard import GUARD_CLASS, GUARD_CONDITION
from meshgov.errors import BackendUnavailable


def connect_session(builder: Any, settings: dict[str, str]) -> Any:
    """A Connect session of its own (``getOrCreate`` would reuse the process's default session,
    whatever server or token it was made with). The settings are sent after a first call has
    succeeded, so that a refused session is stopped here rather than left the active one."""
    for name in _CLIENT_LOGGERS:
        # pyspark's client logs a failing query's message (values included) to stderr.
        logging.getLogger(name).disabled = True
    try:
        session = builder.create()
    except Exception as exc:
        raise connect_unavailable(exc) from None
    try:
        session.conf.get("spark.sql.extensions", None)  # the first call that must succeed
        for key, value in settings.items():
            session.conf.set(key, value)
    except Exception as exc:
        with contextlib.suppress(Exception):
            session.stop()
        raise connect_unavailable(exc) from None
    return session


TOKEN_ENV = "MESHGOV_SPARK_CONNECT_TOKEN"
_CLIENT_LOGGERS = ("SQLQueryContextLogger", "DataFrameQueryContextLogger")
_LOOPBACK = frozenset({"127.0.0.1", "::1", "[::1]"})


def connect_url(url: str) -> str:
    """The ``sc://`` URL pyspark gets: the token of ``MESHGOV_SPARK_CONNECT_TOKEN`` when the URL
    carries none (so it stays out of process lists). pyspark sends a token over TLS, except to
    ``localhost`` (gRPC's local credentials): a loopback address becomes ``localhost`` when a
    token travels without ``use_ssl=true``."""
    address, _, tail = url[len("sc://") :].partition("/")
    params: dict[str, str] = {}
    for item in tail.lstrip(";").split(";"):
        if item:
            key, _, value = item.partition("=")
            params[key] = value
    token = params.get("token") or os.environ.get(TOKEN_ENV) or None
    if token is not None and "token" not in params:
        params["token"] = token
    token = token or os.environ.get("SPARK_CONNECT_AUTHENTICATE_TOKEN")
    host, _, port = address.rpartition(":") if not address.endswith("]") else (address, "", "")
    if token and params.get("use_ssl", "").lower() != "true" and host in _LOOPBACK:
        address = f"localhost:{port}" if port else "localhost"
    if not params:
        return f"sc://{address}"
    return f"sc://{address}/;" + ";".join(f"{k}={v}" for k, v in params.items())


def connect_unavailable(exc: BaseException) -> BackendUnavailable:
    """A failed first call to a Connect server, said without its details (they could carry the
    URL's parameters)."""
    text = f"{type(exc).__name__} {exc}".lower()
    if "unauthenticated" in text or "authentication" in text:
        return BackendUnavailable(
            "the Spark Connect server refused meshgov's credentials: a missing or wrong token "
            f'(set {TOKEN_ENV} to the server\'s token; see docs/deploy.md "Spark")'
        )
    return BackendUnavailable(
        f"cannot reach the Spark Connect server ({type(exc).__name__}; is it running, and does "
        'it expect TLS (use_ssl=true)? see docs/deploy.md "Spark")'
    )


def verify_guard(session: Any) -> None:
    """The server's sessions run the guard: it is configured, and it refuses a probe (a ``SET``
    of a locked setting to its locked value: harmless should it run)."""
    missing = BackendUnavailable(
        f"the Spark Connect server does not run meshgov's guard: start it with "
        f"--jars <the jar of `meshgov spark guard-jar`> --conf spark.sql.extensions={GUARD_CLASS} "
        '(see docs/deploy.md "Spark")'
    )
    try:
        extensions = str(session.conf.get("spark.sql.extensions", None) or "")
    except Exception:
        raise missing from None
    if GUARD_CLASS not in {name.strip() for name in extensions.split(",")}:
        raise missing
    try:
        session.sql("SET spark.sql.ansi.enabled=true")
    except Exception as exc:
        if error_condition(exc) == GUARD_CONDITION:
            return
        raise missing from None
    raise missing


def error_condition(exc: BaseException) -> str:
    getter = getattr(exc, "getCondition", None) or getattr(exc, "getErrorClass", None)
    if callable(getter):
        with contextlib.suppress(Exception):
            return str(getter() or "")
    return ""
