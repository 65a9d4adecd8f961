"""Scalars the YAML resolver recognises but Python cannot build are located input errors.

An unquoted ``2099-02-30`` looks like a date to YAML; constructing it raised ``ValueError`` out of
the loader, which every caller reported as an internal error (exit 4, HTTP 500). These tests hold
the loader, and each kind of input that goes through it, to a located ``InputError``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meshgov.cli import app
from meshgov.core.principal import parse_principal
from meshgov.core.waivers import parse_waivers
from meshgov.core.yaml_source import load_yaml
from meshgov.errors import InputError, PrincipalError

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "check"
GOOD = (FIXTURES / "mesh" / "shop" / "customers.yaml").read_text()

IMPOSSIBLE = {
    "2099-02-30": "day is out of range",
    "2099-13-01": "month must be in 1..12",
    "2020-01-01T25:00:00": "hour must be in 0..23",
    "2020-01-01 10:61:00": "minute must be in 0..59",
    "2020-01-01 10:00:00 +99:00": "offset",
    "!!int abc": "not a valid int",
    "!!int 0b": "not a valid int",
    "!!float abc": "not a valid float",
    "!!bool maybe": "not a valid bool",
    "!!timestamp soon": "not a valid date or time",
    "!!binary aGVsbG8=": "binary values",
    "!!python/name:os.system": "could not determine a constructor",
    "!custom 1": "could not determine a constructor",
    ".inf": "infinity or NaN",
    "-.inf": "infinity or NaN",
    ".nan": "infinity or NaN",
    "1" + "0" * 5000: "not a valid int",
    "0x" + "f" * 5000: "too large",
}


@pytest.mark.parametrize("value", sorted(IMPOSSIBLE), ids=lambda v: v[:24])
def test_impossible_scalar_is_an_input_error_naming_line_and_column(value: str) -> None:
    with pytest.raises(InputError) as caught:
        load_yaml(f"a: 1\nb:\n  c: {value}\n", "f.yaml")
    assert IMPOSSIBLE[value] in caught.value.message
    location = caught.value.location
    assert location is not None
    assert (location.file, location.line, location.column_number) == ("f.yaml", 3, 6)
    assert str(caught.value).startswith("f.yaml:3:6: ")


def test_impossible_date_in_a_flow_sequence_names_its_line() -> None:
    with pytest.raises(InputError) as caught:
        load_yaml("a:\n  - [2020-01-01,\n     2020-02-31]\n", "f.yaml")
    assert caught.value.location is not None
    assert caught.value.location.line == 3


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2099-02-28", "2099-02-28"),
        ("2020-02-29", "2020-02-29"),
        ("2020-01-01T23:59:59", "2020-01-01T23:59:59"),
        ("2001-12-14 21:59:43.10 -5", "2001-12-14T21:59:43.100000-05:00"),
        ("2020-01-01T10:00:00Z", "2020-01-01T10:00:00+00:00"),
        ("'2099-02-30'", "2099-02-30"),
        ("12345678901234567890123456789", 12345678901234567890123456789),
        ("1_000", 1000),
        ("1.5e+3", 1500.0),
    ],
)
def test_valid_scalars_are_json_values(text: str, value: object) -> None:
    """Dates and timestamps are kept as ISO text: the loaded data is always JSON."""
    data = load_yaml(f"x: {text}\n", "f.yaml").data
    assert data == {"x": value}
    json.dumps(data, allow_nan=False)


def test_waiver_with_an_impossible_expiry_names_its_line() -> None:
    text = "- rule: r\n  product: a/b\n  justification: j\n  expires: 2099-13-01\n"
    with pytest.raises(InputError) as caught:
        parse_waivers(text, "w.yaml")
    assert str(caught.value).startswith("w.yaml:4:")
    assert "month must be in 1..12" in str(caught.value)


@pytest.mark.parametrize(
    ("expires", "year"),
    [("2099-12-31", 2099), ("2099-12-31T10:00:00", 2099), ("'2030-01-02'", 2030)],
)
def test_waiver_dates_still_parse(expires: str, year: int) -> None:
    text = f"- {{rule: r, product: a/b, justification: j, expires: {expires}}}\n"
    assert parse_waivers(text, "w.yaml")[0].expires.year == year


def test_principal_with_an_impossible_attribute_date_is_a_principal_error() -> None:
    with pytest.raises(PrincipalError) as caught:
        parse_principal("id: a\nattributes:\n  since: 2020-02-30\n", "p.yaml")
    assert str(caught.value).startswith("p.yaml:3:")


def test_principal_attribute_date_is_text() -> None:
    principal = parse_principal("id: a\nattributes:\n  since: 2020-02-28\n", "p.yaml")
    assert principal.attributes["since"] == "2020-02-28"


# --- the CLI -------------------------------------------------------------------------------------


def _with_end_of_support(value: str, name: str = "customers") -> str:
    return GOOD.replace(
        "      retention: 3y\n", f"      retention: 3y\n      endOfSupport: {value}\n"
    ).replace("name: customers\n  version", f"name: {name}\n  version")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_check_reports_the_bad_date_and_still_checks_the_others(
    fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    bad = tmp_path / "baddate.yaml"
    bad.write_text(_with_end_of_support("2099-02-30", name="others"))
    result = CliRunner().invoke(
        app, ["check", "--policies", str(FIXTURES / "policies"), "-f", fmt, str(good), str(bad)]
    )
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    # Named from the repository root (here the current directory), as every report names files.
    assert lines[0].startswith("error invalid_manifest baddate.yaml:16:")
    assert "day is out of range for month" in lines[0]
    assert "internal_error" not in result.stderr and "Traceback" not in result.stderr
    if fmt == "json":
        results = {r["file"]: r for r in json.loads(result.stdout)["results"]}
        assert results["good.yaml"]["product"] == "shop/customers"
        assert results["good.yaml"]["findings"] == []
        assert results["baddate.yaml"]["findings"][0]["kind"] == "invalid_input"
        assert results["baddate.yaml"]["findings"][0]["location"]["line"] == 16
    else:
        assert "shop/customers" in result.stdout and "passed" in result.stdout


def test_check_accepts_an_unquoted_end_of_support_date(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/policies.md recommends `endOfSupport: 2027-06-30`, unquoted; it is a string field."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "eos.yaml"
    path.write_text(_with_end_of_support("2027-06-30"))
    result = CliRunner().invoke(app, ["check", "--policies", str(FIXTURES / "policies"), str(path)])
    assert result.exit_code == 0, result.stderr


def test_check_with_an_impossible_waiver_date_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    mesh = tmp_path / "mesh"
    shutil.copytree(FIXTURES / "mesh", mesh)
    waivers = tmp_path / "w.yaml"
    waivers.write_text("- rule: r\n  product: a/b\n  justification: j\n  expires: 2099-13-01\n")
    result = CliRunner().invoke(
        app,
        ["check", "--policies", str(FIXTURES / "policies"), str(mesh), "--waivers", str(waivers)],
    )
    assert result.exit_code == 2
    assert f"{waivers}:4:" in result.stderr
    assert "internal_error" not in result.stderr


def test_query_with_an_impossible_principal_date_exits_2(tmp_path: Path) -> None:
    principal = tmp_path / "p.yaml"
    principal.write_text("id: a\ngroups: [analysts]\nattributes:\n  region: 2020-02-30\n")
    result = CliRunner().invoke(
        app,
        [
            "query",
            "--catalog",
            str(ROOT / "examples" / "mesh"),
            "--principal",
            str(principal),
            "SELECT 1",
        ],
    )
    assert result.exit_code == 2
    assert f"invalid_principal {principal}:4:" in result.stderr
    assert "internal_error" not in result.stderr
