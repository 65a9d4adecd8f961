"""The Spark engine against a real Spark Connect server (``sc://``): the server that ships with
pyspark (``sbin/start-connect-server.sh``), started once for this module on loopback with the
lock-down settings of docs/deploy.md, loaded with the example mesh (``meshgov load``'s path); a
governed query returns the rows DuckDB returns (hashed emails equal, EU rows only).

Skips with the reason when the server cannot start here (no pyspark, no Java, no listening port
within the wait), unless MESHGOV_REQUIRE_SPARK=1.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from adversarial_world import Secrets, keyed_hash
from test_adversarial import run
from test_spark_engine import _normalised

from meshgov.engines.base import QueryEngine

# pyspark's Connect client emits FutureWarnings under pandas 3 (spark.md), errors under -W error.
pytestmark = [pytest.mark.spark, pytest.mark.filterwarnings("ignore::FutureWarning")]

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


def _unavailable(problem: str) -> None:
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


@pytest.fixture(scope="module")
def connect_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``sc://127.0.0.1:<port>`` of a Connect server of this module's own (stopped after)."""
    import importlib.util
    import shutil

    if importlib.util.find_spec("pyspark") is None:
        _unavailable("pyspark is not installed (pip install 'meshgov[spark]')")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        _unavailable("no Java runtime (Spark needs Java 17)")
    import pyspark

    home = Path(pyspark.__file__).parent
    script = home / "sbin" / "start-connect-server.sh"
    if not script.is_file():
        _unavailable(f"pyspark ships no {script.name} here")
    work = tmp_path_factory.mktemp("spark-connect")
    port = _free_port()
    conf = {
        **SERVER_CONF,
        "spark.connect.grpc.binding.port": str(port),
        "spark.sql.warehouse.dir": str(work / "warehouse"),
    }
    command = ["bash", str(script), "--wait", "--master", "local[2]"]
    for key, value in conf.items():
        command += ["--conf", f"{key}={value}"]
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(work / "logs"),
        "SPARK_PID_DIR": str(work),
        "PYSPARK_PYTHON": sys.executable,
    }
    log = (work / "server.out").open("wb")
    server = subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + START_WAIT_S
        while not _listening(port):
            if server.poll() is not None or time.monotonic() > deadline:
                _unavailable(
                    f"the Spark Connect server did not listen on 127.0.0.1:{port} within "
                    f"{START_WAIT_S} s (exit status {server.poll()}; log: {work / 'server.out'})"
                )
            time.sleep(0.5)
        yield f"sc://127.0.0.1:{port}"
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


# pyspark allows no Connect session in a process that holds a classic one (SESSION_ALREADY_EXIST),
# and the other Spark tests of the run hold one: the Connect client runs in a child process of
# its own, which writes the governed query's result as Arrow IPC.
CLIENT = """
import sys, warnings
warnings.simplefilter("ignore", FutureWarning)
url, tests_dir, sql, out = sys.argv[1:5]
sys.path.insert(0, tests_dir)
import pyarrow as pa
from adversarial_world import HASH_KEY, MESH, ROOT, principal
from meshgov.catalog import load_catalog
from meshgov.engines.spark import SparkEngine, verify_locked
from meshgov.errors import MeshgovError
from meshgov.execution import execute_query
from meshgov.gateway import Gateway
from meshgov.policy_backends import load_bundle_dir

catalog = load_catalog(MESH)
gateway = Gateway(catalog, load_bundle_dir(ROOT / "policies"))
# Connect: the tables are written into the server's session catalogue (meshgov load's path).
engine = SparkEngine.from_catalog(catalog, HASH_KEY, url=url, load=True)
try:
    verify_locked(engine.session)
    try:
        engine.execute("SELECT reflect('java.lang.System', 'getenv', 'HOME')")
        print("reflect ran")
    except MeshgovError:
        print("reflect refused")
    result = execute_query(gateway, engine, sql, principal("analyst-eu"), "analytics", "duckdb")
    with pa.OSFile(out, "wb") as sink, pa.ipc.new_file(sink, result.table.schema) as writer:
        writer.write_table(result.table)
finally:
    engine.close()
"""

GOVERNED = (
    "SELECT c.email, c.region, sum(o.amount) AS spend FROM customer.customers c "
    "JOIN commerce.orders o ON o.customer_id = c.customer_id GROUP BY c.email, c.region "
    "ORDER BY spend DESC, c.email LIMIT 25"
)


@pytest.fixture(scope="module")
def over_connect(connect_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The governed query's rows over ``connect_url``, and the client's own report."""
    import pyarrow as pa

    out = tmp_path_factory.mktemp("connect-client") / "result.arrow"
    client = subprocess.run(
        [sys.executable, "-c", CLIENT, connect_url, str(Path(__file__).parent), GOVERNED, str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert client.returncode == 0, client.stderr[-3000:]
    with pa.memory_map(str(out)) as source:
        table = pa.ipc.open_file(source).read_all()
    return {"table": table, "stdout": client.stdout}


def test_a_governed_query_over_spark_connect_equals_duckdb(
    over_connect: dict[str, Any], duckdb_engine: QueryEngine, gateway: Any, secrets: Secrets
) -> None:
    on_duckdb = run(gateway, duckdb_engine, GOVERNED)
    assert on_duckdb.table is not None, on_duckdb.error
    table = over_connect["table"]
    rows = table.to_pylist()
    assert rows
    assert {r["region"] for r in rows} == {"EU"}
    assert {r["email"] for r in rows} <= {keyed_hash(e) for e in secrets.eu_emails}
    assert _normalised(table) == _normalised(on_duckdb.table)


def test_the_connect_session_is_locked_and_refuses_reflection(over_connect: dict[str, Any]) -> None:
    # verify_locked passed in the client (it raises otherwise), and reflection was refused.
    assert "reflect refused" in over_connect["stdout"]
