"""``Authorization`` tells invalid input (exit 2 / HTTP 400) from a denial (exit 3 / 403)."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshgov.core.principal import Principal
from meshgov.errors import (
    AccessDenied,
    SqlDialectError,
    SqlParseError,
    SqlUnsupportedError,
)
from meshgov.gateway import Authorization, Gateway, load_gateway, sql_dialect

ROOT = Path(__file__).resolve().parents[1]
ANALYST = Principal(id="a", groups=("analysts",), domain="analytics", attributes={"region": "EU"})


@pytest.fixture(scope="module")
def gateway() -> Gateway:
    return load_gateway(str(ROOT / "examples" / "mesh"), str(ROOT / "policies"))


@pytest.mark.parametrize(
    ("code", "error", "invalid"),
    [
        ("invalid_sql", SqlParseError, True),
        ("invalid_dialect", SqlDialectError, True),
        ("unsupported_sql", SqlUnsupportedError, False),
        ("access_denied", AccessDenied, False),
        ("internal_error", AccessDenied, False),  # anything unexpected fails closed
        ("no_such_code", AccessDenied, False),
        (None, AccessDenied, False),
    ],
)
def test_a_refusal_is_the_error_its_code_names(
    code: str | None, error: type[Exception], invalid: bool
) -> None:
    refused = Authorization(allowed=False, sql=None, reason="why", code=code)
    assert refused.invalid_input is invalid
    assert type(refused.refusal()) is error
    assert str(refused.refusal()) == "why"


def test_an_allowed_authorization_is_not_invalid_input() -> None:
    assert not Authorization(allowed=True, sql="SELECT 1", reason=None).invalid_input


def test_sql_dialect_names_the_place_and_the_choices() -> None:
    assert sql_dialect("PostgreSQL") == "postgres"
    assert sql_dialect("DuckDB") == "duckdb"
    with pytest.raises(SqlDialectError, match=r"^--to: unknown SQL dialect 'klingon'; use one of"):
        sql_dialect("klingon", "--to")


def test_the_gateway_refuses_unknown_dialects_as_invalid_input(gateway: Gateway) -> None:
    for read, write in (("klingon", "duckdb"), ("duckdb", "klingon")):
        refused = gateway.authorize("SELECT 1", ANALYST, "analytics", read, write)
        assert not refused.allowed
        assert refused.code == "invalid_dialect"
        assert refused.invalid_input
    unparseable = gateway.authorize("SELEC 1", ANALYST, "analytics")
    assert unparseable.code == "invalid_sql"
    assert unparseable.invalid_input
