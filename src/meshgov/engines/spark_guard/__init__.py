"""meshgov's guard extension for Spark (``spark.sql.extensions``): its Java source ships with
meshgov and is compiled here, with the JDK's ``javac`` against pyspark's own jars (no download).

The extension is a check rule run on every analysed plan of every session of the JVM that loads
it, a Spark Connect server's included: only read-only queries over catalogue tables pass (see the
Java source for the list). ``meshgov spark guard-jar -o DIR`` builds the jar an operator starts a
Connect server with (docs/deploy.md "Spark").
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

from meshgov.errors import BackendUnavailable

GUARD_CLASS = "meshgov.spark.MeshgovGuardExtension"
SOURCE_NAME = "MeshgovGuardExtension.java"
# The error condition the guard's refusals carry.
GUARD_CONDITION = "MESHGOV_GUARD_REFUSED"
BUILD_TIMEOUT_S = 300


def guard_source() -> bytes:
    return resources.files(__package__).joinpath(SOURCE_NAME).read_bytes()


def jar_name() -> str:
    """The jar's file name, with a digest of the source (a changed source is a new jar)."""
    return f"meshgov-spark-guard-{hashlib.sha256(guard_source()).hexdigest()[:12]}.jar"


def pyspark_jars() -> Path:
    try:
        import pyspark
    except ImportError:
        raise BackendUnavailable(
            "building the Spark guard needs pyspark: pip install 'meshgov[spark]'"
        ) from None
    jars = Path(pyspark.__file__).parent / "jars"
    if not jars.is_dir():
        raise BackendUnavailable(f"pyspark has no jars directory at {jars}")
    return jars


def _tool(name: str) -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / name).is_file():
        return str(Path(home) / "bin" / name)
    found = shutil.which(name)
    if found is None:
        raise BackendUnavailable(
            f"building the Spark guard needs a JDK ({name} not found on PATH or in JAVA_HOME; "
            "a Java runtime alone has no compiler)"
        )
    return found


def build_guard_jar(directory: Path) -> Path:
    """Compile the guard against pyspark's jars into ``directory`` (kept if already built)."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / jar_name()
    if target.is_file():
        return target
    javac, jar = _tool("javac"), _tool("jar")
    classpath = str(pyspark_jars() / "*")
    with tempfile.TemporaryDirectory(prefix="meshgov-guard-") as work:
        source = Path(work) / SOURCE_NAME
        source.write_bytes(guard_source())
        classes = Path(work) / "classes"
        built = str(Path(work) / target.name)
        compile_options = ["-nowarn", "--release", "17", "-d", str(classes), "-cp", classpath]
        steps = [
            [javac, *compile_options, str(source)],
            [jar, "--create", "--file", built, "-C", str(classes), "."],
        ]
        for step in steps:
            try:
                done = subprocess.run(
                    step, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise BackendUnavailable(
                    f"cannot build the Spark guard ({Path(step[0]).name}: {type(exc).__name__})"
                ) from None
            if done.returncode != 0:
                detail = (done.stderr or done.stdout).strip().splitlines()[:5]
                raise BackendUnavailable(
                    f"cannot build the Spark guard ({Path(step[0]).name} failed: "
                    + " / ".join(detail)
                    + ")"
                )
        # Atomic: a concurrent builder sees a whole jar or none.
        os.replace(Path(work) / target.name, target)
    return target
