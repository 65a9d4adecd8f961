"""Start pyspark's own Spark Connect server (``sbin/start-connect-server.sh``) in a process group
of its own, on loopback, with the lock-down settings of docs/deploy.md, for a test module.

Skips with the reason when the server cannot start here (no pyspark, no Java, no listening port
within the wait), unless MESHGOV_REQUIRE_SPARK=1.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# The static settings a Connect client cannot set (docs/deploy.md), and loopback only.
SERVER_CONF = {
    "spark.sql.restrictedMode.enabled": "true",
    "spark.sql.reflect.allowList": "(?!)",
    "spark.sql.runSQLOnFiles": "false",
    "spark.sql.variable.substitute": "false",
    "spark.sql.scripting.enabled": "false",
    "spark.sql.ansi.enabled": "true",
    "spark.sql.parser.quotedRegexColumnNames": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.enabled": "false",
    "spark.eventLog.enabled": "false",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.connect.grpc.binding.address": "127.0.0.1",
    "spark.sql.shuffle.partitions": "2",
}
START_WAIT_S = 120


def unavailable(problem: str) -> None:
    if os.environ.get("MESHGOV_REQUIRE_SPARK") == "1":
        pytest.fail(problem)
    pytest.skip(problem)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 1):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def connect_server(
    work: Path,
    *,
    jars: list[Path] | None = None,
    conf: dict[str, str] | None = None,
    token: str | None = None,
) -> Iterator[int]:
    """The port of a running Connect server (stopped after). ``token`` goes to the server by its
    environment (``SPARK_CONNECT_AUTHENTICATE_TOKEN``), not its command line."""
    if importlib.util.find_spec("pyspark") is None:
        unavailable("pyspark is not installed (pip install 'meshgov[spark]')")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        unavailable("no Java runtime (Spark needs Java 17)")
    import pyspark

    home = Path(pyspark.__file__).parent
    script = home / "sbin" / "start-connect-server.sh"
    if not script.is_file():
        unavailable(f"pyspark ships no {script.name} here")
    port = _free_port()
    settings = {
        **SERVER_CONF,
        "spark.connect.grpc.binding.port": str(port),
        "spark.sql.warehouse.dir": str(work / "warehouse"),
        **(conf or {}),
    }
    command = ["bash", str(script), "--wait", "--master", "local[2]"]
    if jars:
        command += ["--jars", ",".join(str(j) for j in jars)]
    for key, value in settings.items():
        command += ["--conf", f"{key}={value}"]
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(work / "logs"),
        "SPARK_PID_DIR": str(work),
        "PYSPARK_PYTHON": sys.executable,
    }
    env.pop("SPARK_CONNECT_AUTHENTICATE_TOKEN", None)
    if token is not None:
        env["SPARK_CONNECT_AUTHENTICATE_TOKEN"] = token
    log = (work / "server.out").open("wb")
    server = subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + START_WAIT_S
        while not _listening(port):
            if server.poll() is not None or time.monotonic() > deadline:
                unavailable(
                    f"the Spark Connect server did not listen on 127.0.0.1:{port} within "
                    f"{START_WAIT_S} s (exit status {server.poll()}; log: {work / 'server.out'})"
                )
            time.sleep(0.5)
        yield port
    finally:
        # The server and its JVM run in a process group of their own (started above).
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(10)
        log.close()
