"""pgJDBC (Debian's libpostgresql-jdbc-java on Java 17): DBeaver's and most BI tools' driver.

A small Java program (WireCheck.java), compiled in the test, walks ``DatabaseMetaData`` as a BI
navigator does and runs a prepared query; the test reads what it printed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from wire_server import WireServer

pytestmark = pytest.mark.postgres

JDBC_JARS = [Path("/usr/share/java/postgresql.jar")]
PROGRAM = Path(__file__).with_name("WireCheck.java")


def test_pgjdbc_metadata_and_prepared_queries(wire: WireServer, tmp_path: Path) -> None:
    javac, java = shutil.which("javac"), shutil.which("java")
    jar = next((j for j in JDBC_JARS if j.is_file()), None)
    if javac is None or java is None or jar is None:
        reason = (
            "needs javac, java and pgJDBC "
            "(apt-get install default-jdk-headless libpostgresql-jdbc-java)"
        )
        if os.environ.get("MESHGOV_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    (tmp_path / "WireCheck.java").write_text(PROGRAM.read_text(encoding="utf-8"), "utf-8")
    subprocess.run([javac, "WireCheck.java"], cwd=tmp_path, check=True, timeout=120)
    url = f"jdbc:postgresql://127.0.0.1:{wire.pg_port}/analytics"
    done = subprocess.run(
        [java, "-cp", f"{tmp_path}:{jar}", "WireCheck", url, "analyst-eu", "dev-analyst-eu"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "catalog analytics" in lines
    assert "schema customer" in lines and "schema marketing" in lines
    assert "table customer.customers" in lines
    columns = [line for line in lines if line.startswith("column ")]
    assert "column segment text" in columns
    assert not any("failed_payment_count" in line for line in columns)
    rows = [line.split() for line in lines if line.startswith("row ")]
    assert len(rows) == 3
    for _, email, region, consent in rows:
        assert re.fullmatch(r"[0-9a-f]{64}", email) and region == "EU"
        assert consent in {"true", "false"}
    assert "denied 42501" in lines
