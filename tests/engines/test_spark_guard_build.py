"""meshgov's Spark guard jar (``meshgov spark guard-jar``) and the Spark Connect URL meshgov hands
to pyspark (the token from MESHGOV_SPARK_CONNECT_TOKEN, never shown)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meshgov.cli import app
from meshgov.engines.spark_connect import connect_url
from meshgov.engines.spark_guard import GUARD_CLASS, build_guard_jar, jar_name
from meshgov.errors import BackendUnavailable


@pytest.mark.spark
def test_the_cli_builds_the_guard_jar(spark_guard_jar: Path) -> None:
    # The session's jar was built into its directory: the command finds it there (cached by the
    # source's digest) and prints its path.
    result = CliRunner().invoke(app, ["spark", "guard-jar", "-o", str(spark_guard_jar.parent)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(spark_guard_jar)
    with zipfile.ZipFile(spark_guard_jar) as jar:
        assert GUARD_CLASS.replace(".", "/") + ".class" in jar.namelist()


def test_without_a_jdk_the_build_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(BackendUnavailable, match=r"needs a JDK.*javac"):
        build_guard_jar(tmp_path / "out")
    result = CliRunner().invoke(app, ["spark", "guard-jar", "-o", str(tmp_path / "out")])
    assert result.exit_code == 4
    assert "javac" in result.output
    assert not (tmp_path / "out" / jar_name()).exists()


@pytest.mark.parametrize(
    ("url", "env", "expected"),
    [
        ("sc://spark.internal:15002", None, "sc://spark.internal:15002"),
        (
            "sc://spark.internal:15002/;use_ssl=true",
            "s3cret",
            "sc://spark.internal:15002/;use_ssl=true;token=s3cret",
        ),
        # pyspark sends a token without TLS only to "localhost" (gRPC's local credentials).
        ("sc://127.0.0.1:15002", "s3cret", "sc://localhost:15002/;token=s3cret"),
        ("sc://127.0.0.1:15002/;token=inline", "other", "sc://localhost:15002/;token=inline"),
        (
            "sc://127.0.0.1:15002/;use_ssl=true",
            "s3cret",
            "sc://127.0.0.1:15002/;use_ssl=true;token=s3cret",
        ),
        ("sc://127.0.0.1:15002", None, "sc://127.0.0.1:15002"),
    ],
)
def test_the_connect_url_takes_the_token_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, url: str, env: str | None, expected: str
) -> None:
    monkeypatch.delenv("SPARK_CONNECT_AUTHENTICATE_TOKEN", raising=False)
    if env is None:
        monkeypatch.delenv("MESHGOV_SPARK_CONNECT_TOKEN", raising=False)
    else:
        monkeypatch.setenv("MESHGOV_SPARK_CONNECT_TOKEN", env)
    assert connect_url(url) == expected
