"""The structural lint of policy bundles (meshgov.core.policy_lint)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from regopy import Interpreter

from meshgov.core.policy_lint import (
    UNSUPPORTED_BUILTINS,
    LintFinding,
    crash_risks,
    lint_modules,
)

ROOT = Path(__file__).resolve().parents[2]

POLICY = """# METADATA
# title: Personal data
package meshgov.pii

import rego.v1

# METADATA
# title: PII violations
violations contains v if {
\tsome col in input.columns
\tv := _finding(col)
}

_finding(col) := {"rule": "pii/x", "column": col.name}
"""

POLICY_TEST = """package meshgov.pii_test

import rego.v1

import data.meshgov.pii

test_clean_input_has_no_violations if {
\tcount(pii.violations) == 0
}
"""

IDENTITY_HEAD = "# METADATA\n# title: x\npackage meshgov.identity\n\nimport rego.v1\n\n"


def _rules(findings: list[LintFinding]) -> list[str]:
    return [f.rule for f in findings]


def _lint(**changes: str) -> list[LintFinding]:
    modules = {"meshgov/pii/pii.rego": POLICY, "meshgov/pii/pii_test.rego": POLICY_TEST}
    modules.update(changes)
    return lint_modules(modules)


def test_conforming_bundle_is_clean() -> None:
    assert _lint() == []


def test_the_shipped_policies_lint_clean() -> None:
    policies = ROOT / "policies"
    modules = {
        path.relative_to(policies).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(policies.rglob("*.rego"))
    }
    assert modules
    assert lint_modules(modules) == []


def test_package_must_mirror_directory() -> None:
    findings = _lint(**{"meshgov/pii/pii.rego": POLICY.replace("meshgov.pii", "meshgov.privacy")})
    mismatch = [f for f in findings if f.rule == "directory-package-mismatch"]
    assert len(mismatch) == 1
    assert mismatch[0].path == "meshgov/pii/pii.rego"
    assert mismatch[0].line == 3
    assert "'meshgov.privacy'" in mismatch[0].message
    assert "'meshgov.pii'" in mismatch[0].message


def test_test_file_must_hold_test_package() -> None:
    wrong = POLICY_TEST.replace("package meshgov.pii_test", "package meshgov.pii")
    findings = _lint(**{"meshgov/pii/pii_test.rego": wrong})
    assert "test-package-name" in _rules(findings)


def test_test_package_must_live_in_test_file() -> None:
    modules = {
        "meshgov/pii/pii.rego": POLICY,
        "meshgov/pii/checks.rego": POLICY_TEST,
    }
    findings = lint_modules(modules)
    assert "file-missing-test-suffix" in _rules(findings)


def test_test_rule_outside_test_package_is_flagged() -> None:
    findings = _lint(**{"meshgov/pii/pii.rego": POLICY + "\ntest_inline if true\n"})
    [finding] = [f for f in findings if f.rule == "test-outside-test-package"]
    assert finding.line == 16
    assert "'test_inline'" in finding.message


def test_package_without_tests_is_flagged() -> None:
    findings = lint_modules({"meshgov/pii/pii.rego": POLICY})
    assert _rules(findings) == ["missing-test-package"]


def test_package_without_metadata_is_flagged() -> None:
    findings = _lint(
        **{"meshgov/pii/pii.rego": POLICY.replace("# METADATA\n# title: Personal data\n", "")}
    )
    [finding] = [f for f in findings if f.rule == "missing-metadata"]
    assert finding.line == 1
    assert "package 'meshgov.pii'" in finding.message


def test_public_rule_without_metadata_is_flagged_and_helpers_are_not() -> None:
    findings = _lint(**{"meshgov/pii/pii.rego": POLICY + "\ndecision := true\n\n_internal := 1\n"})
    flagged = [f for f in findings if f.rule == "missing-metadata"]
    assert [f.message.split("'")[1] for f in flagged] == ["decision"]


def test_metadata_on_one_definition_of_a_multi_definition_rule_is_enough() -> None:
    second = '\nviolations contains v if {\n\tv := {"rule": "pii/y"}\n}\n'
    assert _lint(**{"meshgov/pii/pii.rego": POLICY + second}) == []


def test_test_files_need_no_metadata() -> None:
    assert "missing-metadata" not in _rules(_lint())


@pytest.mark.parametrize(
    "call", ["rego.metadata.chain()", "rego.metadata.rule()", "http.send({})", "print(col)"]
)
def test_unsupported_builtins_are_flagged(call: str) -> None:
    body = POLICY.replace("\tv := _finding(col)", f"\tx := {call}\n\tv := _finding(col)")
    [finding] = [
        f for f in _lint(**{"meshgov/pii/pii.rego": body}) if f.rule == "unsupported-builtin"
    ]
    assert call.split("(")[0] in finding.message
    assert finding.line == 11


def test_builtin_names_inside_strings_and_comments_are_ignored() -> None:
    body = POLICY.replace(
        "\tv := _finding(col)", '\t# http.send(x) would be nice\n\tv := {"text": "print(x)"}'
    )
    assert "unsupported-builtin" not in _rules(_lint(**{"meshgov/pii/pii.rego": body}))


def test_some_key_value_in_is_flagged() -> None:
    body = POLICY.replace("some col in input.columns", "some name, col in input.columns")
    assert "unsupported-syntax" in _rules(_lint(**{"meshgov/pii/pii.rego": body}))


def test_with_input_as_is_a_warning() -> None:
    body = POLICY_TEST.replace(
        "count(pii.violations) == 0", "count(pii.violations) == 0 with input as {}"
    )
    [finding] = [f for f in _lint(**{"meshgov/pii/pii_test.rego": body}) if f.rule == "with-input"]
    assert finding.severity == "warning"


def test_function_arity_clash_across_packages_is_a_crash_risk() -> None:
    other = IDENTITY_HEAD + "_finding(a, b) := [a, b]\n"
    findings = _lint(**{"meshgov/identity/identity.rego": other})
    clashes = [f for f in findings if f.rule == "function-arity-clash"]
    assert {f.path for f in clashes} == {"meshgov/pii/pii.rego", "meshgov/identity/identity.rego"}
    assert crash_risks(findings) == clashes


def test_same_arity_in_two_packages_is_fine() -> None:
    other = IDENTITY_HEAD + "_finding(col) := col\n"
    findings = _lint(**{"meshgov/identity/identity.rego": other})
    assert "function-arity-clash" not in _rules(findings)


def test_missing_package_line_is_flagged() -> None:
    findings = _lint(**{"meshgov/pii/extra.rego": "import rego.v1\n"})
    assert "package-missing" in _rules(findings)


def test_findings_are_sorted_and_describe_their_place() -> None:
    findings = lint_modules({"meshgov/pii/pii.rego": "package meshgov.other\n"})
    assert [f.line for f in findings] == sorted(f.line for f in findings)
    assert findings[0].describe().startswith("meshgov/pii/pii.rego:1: error ")


def test_unsupported_builtins_are_really_missing_in_regopy() -> None:
    interpreter = Interpreter()
    # opa.runtime exists in regopy but answers differently from OPA: banned for portability.
    present = {name for name in UNSUPPORTED_BUILTINS if interpreter.is_builtin(name)}
    assert present <= {"opa.runtime"}


def test_builtins_the_policies_rely_on_exist_in_regopy() -> None:
    interpreter = Interpreter()
    used = [
        "regex.match",
        "object.get",
        "object.union",
        "object.remove",
        "concat",
        "sprintf",
        "split",
        "to_number",
        "is_string",
        "is_array",
        "is_object",
        "lower",
        "sort",
        "count",
    ]
    assert [name for name in used if not interpreter.is_builtin(name)] == []


def test_regal_capabilities_ban_the_same_builtins() -> None:
    config = yaml.safe_load((ROOT / "policies" / ".regal" / "config.yaml").read_text())
    banned = {builtin["name"] for builtin in config["capabilities"]["minus"]["builtins"]}
    assert banned == set(UNSUPPORTED_BUILTINS)


def test_metadata_that_is_not_yaml_is_flagged() -> None:
    body = POLICY.replace("# title: PII violations", "# title: PII: the violations: all")
    [finding] = [f for f in _lint(**{"meshgov/pii/pii.rego": body}) if f.rule == "invalid-metadata"]
    assert finding.line == 8  # the title's line, inside the METADATA block starting on line 7
    assert "not YAML" in finding.message


def test_metadata_with_an_impossible_date_is_flagged_not_a_crash() -> None:
    """yaml.safe_load raised ValueError for `2020-02-30`: `meshgov policy lint` exited 4."""
    body = POLICY.replace(
        "# title: PII violations", "# title: PII violations\n# reviewed: 2020-02-30"
    )
    [finding] = [f for f in _lint(**{"meshgov/pii/pii.rego": body}) if f.rule == "invalid-metadata"]
    assert finding.line == 9
    assert "day is out of range for month" in finding.message


def test_metadata_that_is_not_a_mapping_is_flagged() -> None:
    body = POLICY.replace("# title: PII violations", "# just words")
    assert "invalid-metadata" in _rules(_lint(**{"meshgov/pii/pii.rego": body}))


def test_long_line_is_a_warning() -> None:
    body = POLICY.replace("import rego.v1", "import rego.v1\n\n# " + "x" * 130)
    [finding] = [f for f in _lint(**{"meshgov/pii/pii.rego": body}) if f.rule == "line-too-long"]
    assert finding.severity == "warning"
    assert finding.line == 7


def _engines_disagree_findings(body: str) -> list[LintFinding]:
    module = POLICY + "\n# METADATA\n# title: r\n" + body
    return [
        f
        for f in _lint(**{"meshgov/pii/pii.rego": module})
        if f.rule in {"some-after-loop", "sprintf-precision"}
    ]


@pytest.mark.parametrize(
    "body",
    [
        # An index loop (an earlier bare `some`), then a bare `some`: regorus fails on it.
        "pairs := [[i, j] |\n\tsome i\n\trow := input.rows[i]\n\tsome j\n\tv := row[j]\n]\n",
        # A wildcard loop, then a bare `some`.
        "cells contains [v, j] if {\n\trow := input.rows[_]\n\tsome j\n\tv := row[j]\n}\n",
    ],
)
def test_some_after_a_loop_is_an_error(body: str) -> None:
    (finding,) = _engines_disagree_findings(body)
    assert finding.rule == "some-after-loop"
    assert finding.severity == "error"
    assert "declare every `some` at the top" in finding.message
    assert finding.line == POLICY.count("\n") + 4 + body.split("\n").index("\tsome j")


@pytest.mark.parametrize(
    "body",
    [
        # Declared together at the top of the body: both engines agree.
        "pairs := [[i, j] |\n\tsome i, j\n\trow := input.rows[i]\n\tv := row[j]\n]\n",
        # `some x in` loops are not affected, nor adjacent declarations.
        "cells contains [j, v] if {\n\tsome row in input.rows\n\tsome j\n\tv := row[j]\n}\n",
        "cells contains [i, j] if {\n\tsome i\n\tsome j\n\tinput.rows[i][j]\n}\n",
    ],
)
def test_some_declared_before_the_loops_is_clean(body: str) -> None:
    assert _engines_disagree_findings(body) == []


def test_sprintf_with_a_float_precision_is_an_error() -> None:
    (finding,) = _engines_disagree_findings('share := sprintf("%.1f%%", [input.share])\n')
    assert finding.rule == "sprintf-precision"
    assert _engines_disagree_findings('share := sprintf("%v %d", [input.a, 3])\n') == []
