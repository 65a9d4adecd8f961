"""`meshgov policy test|lint`: Rego tests like `opa test`, lint and compile, exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meshgov.cli import app
from meshgov.cli.policy import format_duration

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"

POLICY = """# METADATA
# title: Example
package meshgov.example

import rego.v1

# METADATA
# title: Allowed when the input says so
allow if input.ok == true
"""

PASSING_TESTS = """package meshgov.example_test

import rego.v1

import data.meshgov.example

test_allow_is_undefined_without_input if {
\tnot example.allow
}

test_arithmetic_holds if {
\t1 + 1 == 2
}
"""

FAILING_TEST = """
test_deliberately_wrong if {
\t1 == 2
}
"""

ERRORING_TEST = """
test_conversion_fails if {
\tn := to_number("not a number")
\tn == 1
}
"""

runner = CliRunner()


def _policies(tmp_path: Path, tests: str = PASSING_TESTS, policy: str = POLICY) -> Path:
    root = tmp_path / "policies"
    package_dir = root / "meshgov" / "example"
    package_dir.mkdir(parents=True)
    (package_dir / "example.rego").write_text(policy)
    (package_dir / "example_test.rego").write_text(tests)
    return root


def test_shipped_policies_pass_their_tests() -> None:
    result = runner.invoke(app, ["policy", "test", str(POLICIES)])
    assert result.exit_code == 0, result.output
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith("PASS: ")
    passed, total = summary.removeprefix("PASS: ").split("/")
    assert passed == total
    assert int(total) > 50


def test_verbose_prints_every_test_like_opa(tmp_path: Path) -> None:
    result = runner.invoke(app, ["policy", "test", str(_policies(tmp_path)), "-v"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "meshgov/example/example_test.rego:"
    assert lines[1].startswith(
        "data.meshgov.example_test.test_allow_is_undefined_without_input: PASS ("
    )
    assert lines[2].startswith("data.meshgov.example_test.test_arithmetic_holds: PASS (")
    assert lines[-1] == "PASS: 2/2"


def test_quiet_run_prints_only_the_summary(tmp_path: Path) -> None:
    result = runner.invoke(app, ["policy", "test", str(_policies(tmp_path))])
    assert result.exit_code == 0
    assert "test_arithmetic_holds" not in result.stdout
    assert result.stdout.strip().endswith("PASS: 2/2")


def test_failing_test_exits_1_with_its_location(tmp_path: Path) -> None:
    policies = _policies(tmp_path, PASSING_TESTS + FAILING_TEST)
    result = runner.invoke(app, ["policy", "test", str(policies)])
    assert result.exit_code == 1
    assert "data.meshgov.example_test.test_deliberately_wrong: FAIL (" in result.stdout
    assert "meshgov/example/example_test.rego:15: evaluated to undefined" in result.stdout
    assert "PASS: 2/3" in result.stdout
    assert "FAIL: 1/3" in result.stdout


def test_erroring_test_is_reported_as_error(tmp_path: Path) -> None:
    policies = _policies(tmp_path, PASSING_TESTS + ERRORING_TEST)
    result = runner.invoke(app, ["policy", "test", str(policies)])
    assert result.exit_code == 1
    assert "data.meshgov.example_test.test_conversion_fails: ERROR (" in result.stdout
    assert "ERROR: 1/3" in result.stdout


def test_run_filter_selects_tests(tmp_path: Path) -> None:
    policies = _policies(tmp_path, PASSING_TESTS + FAILING_TEST)
    result = runner.invoke(app, ["policy", "test", str(policies), "-v", "--run", "arithmetic"])
    assert result.exit_code == 0
    assert result.stdout.strip().endswith("PASS: 1/1")


def test_invalid_run_filter_is_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["policy", "test", str(_policies(tmp_path)), "--run", "("])
    assert result.exit_code == 2
    assert "--run" in result.stderr


def test_no_tests_exits_1(tmp_path: Path) -> None:
    policies = _policies(tmp_path, "package meshgov.example_test\n")
    result = runner.invoke(app, ["policy", "test", str(policies)])
    assert result.exit_code == 1
    assert "no tests found" in result.stderr


@pytest.mark.parametrize(
    ("command", "where"),
    [
        # regopy names the incomplete expression's line; regorus the token where one was expected.
        (["test", "--policy-engine", "embedded"], "meshgov/example/example.rego:10"),
        (["test", "--policy-engine", "regorus"], "meshgov/example/example.rego:11:1"),
        (["lint"], "meshgov/example/example.rego:10"),
    ],
)
def test_compile_error_exits_4_with_file_and_line(
    tmp_path: Path, command: list[str], where: str
) -> None:
    broken = POLICY.replace("allow if input.ok == true", "allow if {\n\tinput.ok ==\n}")
    policies = _policies(tmp_path, policy=broken)
    result = runner.invoke(app, ["policy", command[0], str(policies), *command[1:]])
    assert result.exit_code == 4, (command, result.output)
    assert where in result.stderr
    assert "expecting expression" in result.stderr or command[-1] != "regorus"


def test_missing_directory_exits_2(tmp_path: Path) -> None:
    for command in ("test", "lint"):
        result = runner.invoke(app, ["policy", command, str(tmp_path / "absent")])
        assert result.exit_code == 2
        assert "policy directory not found" in result.stderr


def test_arity_clash_is_refused_before_regopy_can_crash(tmp_path: Path) -> None:
    policies = _policies(tmp_path, policy=POLICY + "\n_helper(a) := a\n")
    other = policies / "meshgov" / "other"
    other.mkdir()
    (other / "other.rego").write_text(
        "# METADATA\n# title: o\npackage meshgov.other\n\n_helper(a, b) := a\n"
    )
    for command in ("test", "lint"):
        result = runner.invoke(app, ["policy", command, str(policies)])
        assert result.exit_code == 4
        assert "function '_helper' is defined with different arities" in result.stderr


def test_lint_of_shipped_policies_is_clean() -> None:
    result = runner.invoke(app, ["policy", "lint", str(POLICIES)])
    assert result.exit_code == 0, result.output
    assert " error " not in result.stdout
    assert "0 error(s)" in result.stderr


def test_lint_reports_conventions_and_exits_1(tmp_path: Path) -> None:
    policies = _policies(tmp_path)
    misplaced = policies / "meshgov" / "elsewhere"
    shutil.move(policies / "meshgov" / "example", misplaced)
    result = runner.invoke(app, ["policy", "lint", str(policies)])
    assert result.exit_code == 1
    assert (
        "meshgov/elsewhere/example.rego:3: error directory-package-mismatch: "
        "package 'meshgov.example' lives in 'meshgov/elsewhere/example.rego'"
    ) in result.stdout


def test_lint_warnings_alone_pass(tmp_path: Path) -> None:
    tests = PASSING_TESTS.replace("not example.allow", "not example.allow with input as {}")
    result = runner.invoke(app, ["policy", "lint", str(_policies(tmp_path, tests))])
    assert result.exit_code == 0
    assert "warning with-input" in result.stdout


def test_lint_json_format(tmp_path: Path) -> None:
    policies = _policies(tmp_path, policy=POLICY.replace("# METADATA\n# title: Example\n", "", 1))
    result = runner.invoke(app, ["policy", "lint", str(policies), "--format", "json"])
    assert result.exit_code == 1
    [finding] = json.loads(result.stdout)
    assert finding == {
        "rule": "missing-metadata",
        "severity": "error",
        "message": "package 'meshgov.example' has no `# METADATA` block (title, description)",
        "file": "meshgov/example/example.rego",
        "line": 1,
    }


@pytest.mark.parametrize(
    ("seconds", "shown"), [(0.000042, "42µs"), (0.0123, "12.3ms"), (2.5, "2.50s")]
)
def test_durations_read_like_opa(seconds: float, shown: str) -> None:
    assert format_duration(seconds) == shown
