"""The Spark engine against a real Spark Connect server (``sc://``): the server that ships with
pyspark (``sbin/start-connect-server.sh``), started once for this module on loopback with the
lock-down settings of docs/deploy.md, meshgov's guard extension (``--jars`` the jar of ``meshgov
spark guard-jar``, ``spark.sql.extensions``) and a token; loaded with the example mesh (``meshgov
load``'s path).

- a governed query returns the rows DuckDB returns (hashed emails equal, EU rows only);
- a raw pyspark Connect client holding the token (what anyone with the server's address and the
  token could run, bypassing meshgov) is refused every command, file access and file column by
  the server itself, while a plain SELECT on a port table works;
- a missing or wrong token is a clear BackendUnavailable that does not contain the token;
- a server without the guard extension is refused by meshgov at start.

Every Connect client runs in a child process: pyspark allows no Connect session in a process
that holds a classic one (SESSION_ALREADY_EXIST), and the other Spark tests of the run hold one.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from adversarial_world import Secrets, keyed_hash
from spark_connect_server import connect_server
from test_adversarial import run
from test_spark_engine import _normalised

from meshgov.engines.base import QueryEngine
from meshgov.engines.spark_guard import GUARD_CLASS, GUARD_CONDITION

# pyspark's Connect client emits FutureWarnings under pandas 3 (spark.md), errors under -W error.
pytestmark = [pytest.mark.spark, pytest.mark.filterwarnings("ignore::FutureWarning")]

TOKEN = "mg-test-" + secrets.token_hex(12)
TESTS_DIR = str(Path(__file__).parent)


def _child(script: str, *args: str, env: dict[str, str] | None = None) -> str:
    """Run a client script in a child process; its stdout (it must exit 0)."""
    environment = {k: v for k, v in os.environ.items() if "CONNECT" not in k}
    done = subprocess.run(
        [sys.executable, "-c", script, TESTS_DIR, *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**environment, **(env or {})},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def guarded(spark_guard_jar: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """``(port, warehouse)`` of this module's guarded Connect server (stopped after)."""
    work = tmp_path_factory.mktemp("spark-connect")
    with connect_server(
        work,
        jars=[spark_guard_jar],
        conf={"spark.sql.extensions": GUARD_CLASS},
        token=TOKEN,
    ) as port:
        yield port, work / "warehouse"


CLIENT = """
import sys, warnings
warnings.simplefilter("ignore", FutureWarning)
tests_dir, url, sql, out = sys.argv[1:5]
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
    for probe in ("SELECT reflect('java.lang.System', 'getenv', 'HOME')",
                  "SELECT _metadata FROM customer.customers"):
        try:
            engine.execute(probe)
            print("ran")
        except MeshgovError:
            print("refused")
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
def over_connect(guarded: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The governed query's rows through meshgov over ``sc://127.0.0.1:<port>`` (the token from
    MESHGOV_SPARK_CONNECT_TOKEN), and the client's own report."""
    import pyarrow as pa

    port, _ = guarded
    out = tmp_path_factory.mktemp("connect-client") / "result.arrow"
    stdout = _child(
        CLIENT,
        f"sc://127.0.0.1:{port}",
        GOVERNED,
        str(out),
        env={"MESHGOV_SPARK_CONNECT_TOKEN": TOKEN},
    )
    with pa.memory_map(str(out)) as source:
        table = pa.ipc.open_file(source).read_all()
    return {"table": table, "stdout": stdout}


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


def test_the_connect_session_is_locked_and_refuses_reflection_and_file_columns(
    over_connect: dict[str, Any],
) -> None:
    # verify_locked passed in the client (it raises otherwise); both probes were refused.
    assert over_connect["stdout"].split()[:2] == ["refused", "refused"]


# A raw pyspark Connect client: no meshgov between it and the server.
RAW = """
import json, sys, warnings
warnings.simplefilter("ignore")
tests_dir, url, files = sys.argv[1:4]
from pyspark.sql import SparkSession
from pyspark.sql.functions import udf
spark = SparkSession.builder.remote(url).create()
port = "customer.customers"
attempts = {
    "set": lambda: spark.sql("SET spark.sql.runSQLOnFiles=true"),
    "add jar": lambda: spark.sql("ADD JAR /tmp/meshgov-absent.jar"),
    "create table": lambda: spark.sql("CREATE TABLE customer.stolen (a INT) USING parquet"),
    "create table as select": lambda: spark.sql(
        f"CREATE TABLE customer.stolen USING parquet AS SELECT * FROM {port}"),
    "create table with location": lambda: spark.sql(
        f"CREATE TABLE customer.stolen USING parquet LOCATION '{files}'"),
    "insert": lambda: spark.sql(f"INSERT INTO {port} SELECT * FROM {port}"),
    "insert overwrite directory": lambda: spark.sql(
        f"INSERT OVERWRITE DIRECTORY '/tmp/meshgov-out' USING parquet SELECT * FROM {port}"),
    "cache table": lambda: spark.sql(f"CACHE TABLE {port}"),
    "declare": lambda: spark.sql("DECLARE meshgov_v INT"),
    "temp view": lambda: spark.sql("CREATE TEMPORARY VIEW v AS SELECT 1"),
    "show tables": lambda: spark.sql("SHOW TABLES"),
    "input_file_name": lambda: spark.sql(f"SELECT input_file_name() FROM {port}"),
    "_metadata": lambda: spark.sql(f"SELECT _metadata.file_path FROM {port}"),
    "_metadata in a subquery": lambda: spark.sql(
        f"SELECT m.file_path FROM (SELECT _metadata AS m FROM {port})"),
    "parquet path": lambda: spark.sql(f"SELECT * FROM parquet.`{files}`"),
    "read.parquet": lambda: spark.read.parquet(files),
    "read.text": lambda: spark.read.text("/etc/hostname"),
    "python udf": lambda: spark.range(1).select(udf(lambda x: 1)("id")),
}
report = {}
for label, attempt in attempts.items():
    try:
        attempt().toArrow()
        report[label] = "ran"
    except Exception as exc:
        report[label] = str(getattr(exc, "getCondition", lambda: None)() or type(exc).__name__)
# Runtime settings change through the Config RPC, without SQL: then every plan is refused.
spark.conf.set("spark.sql.runSQLOnFiles", "true")
try:
    spark.sql(f"SELECT * FROM parquet.`{files}`").toArrow()
    report["parquet path after a config change"] = "ran"
except Exception as exc:
    report["parquet path after a config change"] = str(exc.getCondition())
spark.conf.set("spark.sql.runSQLOnFiles", "false")
report["select"] = spark.sql(f"SELECT count(*) AS n FROM {port}").toArrow().to_pylist()[0]["n"]
report["cte and subquery"] = spark.sql(
    f"WITH c AS (SELECT customer_id FROM {port}) SELECT count(*) AS n FROM c "
    f"WHERE customer_id IN (SELECT customer_id FROM {port})").toArrow().to_pylist()[0]["n"]
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def raw_client(guarded: Any, over_connect: dict[str, Any]) -> dict[str, Any]:
    """What a raw client with the token got for each attempt (after meshgov loaded the ports)."""
    port, warehouse = guarded
    files = warehouse / "customer.db" / "customers"
    assert files.is_dir()  # the port's Parquet files, as meshgov load wrote them
    stdout = _child(
        RAW,
        f"sc://localhost:{port}",
        str(files),
        env={"SPARK_CONNECT_AUTHENTICATE_TOKEN": TOKEN},
    )
    report: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return report


@pytest.mark.parametrize(
    "attempt",
    [
        "set",
        "add jar",
        "create table",
        "create table as select",
        "create table with location",
        "insert",
        "insert overwrite directory",
        "cache table",
        "declare",
        "temp view",
        "show tables",
        "input_file_name",
        "_metadata",
        "_metadata in a subquery",
        "read.parquet",
        "read.text",
        "python udf",
        "parquet path after a config change",
    ],
)
def test_the_server_refuses_a_raw_client(raw_client: dict[str, Any], attempt: str) -> None:
    assert raw_client[attempt] == GUARD_CONDITION


def test_a_path_as_table_is_refused_by_the_static_setting(raw_client: dict[str, Any]) -> None:
    # runSQLOnFiles=false makes the path an unknown table (and once a client turns the setting
    # on, the guard refuses every plan: above).
    assert raw_client["parquet path"] == "TABLE_OR_VIEW_NOT_FOUND"


def test_a_raw_client_still_reads_a_port_table(raw_client: dict[str, Any]) -> None:
    assert raw_client["select"] > 0
    assert raw_client["cte and subquery"] == raw_client["select"]


TOKENS = """
import json, sys, warnings
warnings.simplefilter("ignore")
tests_dir, port, token = sys.argv[1:4]
import os
sys.path.insert(0, tests_dir)
from adversarial_world import HASH_KEY, MESH
from meshgov.catalog import load_catalog
from meshgov.engines.spark import SparkEngine
from meshgov.errors import MeshgovError
catalog = load_catalog(MESH)
cases = {
    "missing": (f"sc://127.0.0.1:{port}", None),
    "wrong in the url": (f"sc://127.0.0.1:{port}/;token=wrong-{token}", None),
    "wrong in the environment": (f"sc://127.0.0.1:{port}", f"wrong-{token}"),
    "right in the environment": (f"sc://127.0.0.1:{port}", token),
    "right in the url": (f"sc://localhost:{port}/;token={token}", None),
}
report = {}
for label, (url, env_token) in cases.items():
    os.environ.pop("MESHGOV_SPARK_CONNECT_TOKEN", None)
    if env_token is not None:
        os.environ["MESHGOV_SPARK_CONNECT_TOKEN"] = env_token
    try:
        engine = SparkEngine.from_catalog(catalog, HASH_KEY, url=url, load=False)
        n = engine.execute("SELECT count(*) AS n FROM customer.customers").to_pylist()[0]["n"]
        engine.close()
        report[label] = {"rows": n}
    except MeshgovError as exc:
        report[label] = {"error": type(exc).__name__, "message": str(exc)}
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def token_cases(guarded: Any, over_connect: dict[str, Any]) -> dict[str, Any]:
    port, _ = guarded
    stdout = _child(TOKENS, str(port), TOKEN)
    report: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return report


@pytest.mark.parametrize("case", ["missing", "wrong in the url", "wrong in the environment"])
def test_a_missing_or_wrong_token_is_refused_without_showing_it(
    token_cases: dict[str, Any], case: str
) -> None:
    outcome = token_cases[case]
    assert outcome["error"] == "BackendUnavailable"
    assert "token" in outcome["message"] and "MESHGOV_SPARK_CONNECT_TOKEN" in outcome["message"]
    assert TOKEN not in outcome["message"]


@pytest.mark.parametrize("case", ["right in the environment", "right in the url"])
def test_the_right_token_connects(token_cases: dict[str, Any], case: str) -> None:
    assert token_cases[case]["rows"] > 0


UNGUARDED = """
import json, sys, warnings
warnings.simplefilter("ignore")
tests_dir, url = sys.argv[1:3]
sys.path.insert(0, tests_dir)
from adversarial_world import HASH_KEY, MESH
from meshgov.catalog import load_catalog
from meshgov.engines.spark import SparkEngine
from meshgov.errors import MeshgovError
try:
    SparkEngine.from_catalog(load_catalog(MESH), HASH_KEY, url=url, load=True)
    print(json.dumps({"started": True}))
except MeshgovError as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
"""


@pytest.mark.parametrize("claims_the_guard", [False, True], ids=["no extension", "no jar"])
def test_a_server_without_the_guard_is_refused_at_start(
    tmp_path_factory: pytest.TempPathFactory, claims_the_guard: bool
) -> None:
    """Every static lock-down setting but no guard: meshgov does not start on it. With the
    extension configured but its jar absent, Spark starts without it (a warning): the probe
    statement, not the setting, is what proves the guard runs."""
    work = tmp_path_factory.mktemp("spark-connect-unguarded")
    conf = {"spark.sql.extensions": GUARD_CLASS} if claims_the_guard else {}
    with connect_server(work, conf=conf) as port:
        report = json.loads(_child(UNGUARDED, f"sc://127.0.0.1:{port}").strip().splitlines()[-1])
    assert report.get("error") == "BackendUnavailable", report
    assert "guard" in report["message"] and "docs/deploy.md" in report["message"]
