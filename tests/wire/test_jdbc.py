"""pgJDBC (Debian's libpostgresql-jdbc-java on Java 17): DBeaver's and most BI tools' driver.

A small Java program, compiled in the test, walks ``DatabaseMetaData`` as a BI navigator does and
runs a prepared query; the test reads what it printed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import WireServer

pytestmark = pytest.mark.postgres

JDBC_JARS = [Path("/usr/share/java/postgresql.jar")]
PROGRAM = r"""
import java.sql.*;

public class WireCheck {
    public static void main(String[] args) throws Exception {
        try (Connection c = DriverManager.getConnection(args[0], args[1], args[2])) {
            DatabaseMetaData md = c.getMetaData();
            System.out.println("product " + md.getDatabaseProductName());
            try (ResultSet rs = md.getCatalogs()) {
                while (rs.next()) System.out.println("catalog " + rs.getString(1));
            }
            try (ResultSet rs = md.getSchemas()) {
                while (rs.next()) System.out.println("schema " + rs.getString("TABLE_SCHEM"));
            }
            try (ResultSet rs = md.getTables(null, null, "%", new String[] {"TABLE"})) {
                while (rs.next()) {
                    System.out.println("table " + rs.getString("TABLE_SCHEM") + "." + rs.getString("TABLE_NAME"));
                }
            }
            try (ResultSet rs = md.getColumns(null, "marketing", "customer_360", "%")) {
                while (rs.next()) {
                    System.out.println("column " + rs.getString("COLUMN_NAME") + " " + rs.getString("TYPE_NAME"));
                }
            }
            try (ResultSet rs = md.getPrimaryKeys(null, "customer", "customers")) {
                int keys = 0;
                while (rs.next()) keys++;
                System.out.println("primary_keys " + keys);
            }
            for (int i = 0; i < 6; i++) {  // named server-side statements from the 5th run
                try (PreparedStatement ps = c.prepareStatement(
                        "SELECT c.email, c.region, m.marketing_consent FROM customer.customers c "
                        + "JOIN marketing.customer_360 m USING (customer_id) WHERE c.region = ? LIMIT 3")) {
                    ps.setString(1, "EU");
                    try (ResultSet rs = ps.executeQuery()) {
                        while (rs.next()) {
                            if (i == 5) {
                                System.out.println("row " + rs.getString(1) + " " + rs.getString(2)
                                    + " " + rs.getBoolean(3));
                            }
                        }
                    }
                }
            }
            try (Statement st = c.createStatement()) {
                st.executeQuery("SELECT failed_payment_count FROM marketing.customer_360");
            } catch (SQLException e) {
                System.out.println("denied " + e.getSQLState());
            }
        }
    }
}
"""


def test_pgjdbc_metadata_and_prepared_queries(wire: WireServer, tmp_path: Path) -> None:
    javac, java = shutil.which("javac"), shutil.which("java")
    jar = next((j for j in JDBC_JARS if j.is_file()), None)
    if javac is None or java is None or jar is None:
        reason = "needs javac, java and pgJDBC (apt-get install default-jdk-headless libpostgresql-jdbc-java)"
        if os.environ.get("MESHGOV_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    (tmp_path / "WireCheck.java").write_text(PROGRAM, encoding="utf-8")
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
