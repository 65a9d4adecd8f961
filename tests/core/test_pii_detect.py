"""The PII detectors: what they recognise, what they leave alone, and what they report."""

from __future__ import annotations

import pyarrow as pa
import pytest

from meshgov.core.pii_detect import (
    CARD,
    EMAIL,
    IBAN,
    IP,
    NATIONAL_ID,
    PHONE,
    DeclaredColumn,
    iban_valid,
    luhn_valid,
    profile_values,
    ssn_valid,
    undeclared_pii,
)


def _categories(value: str) -> set[str]:
    profile = profile_values("c", [value])
    return {category for category, count in profile.matches.items() if count}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ann.lee@example.com", {EMAIL}),
        ("contact me at ann.lee@example.co.uk please", {EMAIL}),
        ("+442079460958", {PHONE}),
        ("+44 20 7946 0958", {PHONE}),
        ("020 7946 0958", {PHONE}),
        ("(555) 123-4567", {PHONE}),
        ("555.123.4567", {PHONE}),
        ("4111 1111 1111 1111", {CARD}),
        ("4111-1111-1111-1111", {CARD}),
        ("378282246310005", {CARD}),
        ("GB82 WEST 1234 5698 7654 32", {IBAN}),
        ("DE89370400440532013000", {IBAN}),
        ("123-45-6789", {NATIONAL_ID}),
        ("AB 12 34 56 C", {NATIONAL_ID}),
        ("192.168.10.1", {IP}),
        ("2001:db8::8a2e:370:7334", {IP}),
    ],
)
def test_recognises_personal_data(value: str, expected: set[str]) -> None:
    assert _categories(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "hello world",
        "2024-01-15",
        "12:30:45",
        "4111111111111112",  # Luhn fails
        "GB82WEST12345698765433",  # mod-97 fails
        "666-45-6789",  # never issued
        "900-12-3456",
        "300.1.1.1",  # not an address
        "C0001234",
        "12345",
        "1.5",
        "EU",
        "@handle",
    ],
)
def test_leaves_ordinary_values_alone(value: str) -> None:
    assert _categories(value) == set()


def test_validators() -> None:
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")
    assert not luhn_valid("41111a")
    assert iban_valid("GB82WEST12345698765432")
    assert not iban_valid("GB82WEST1234569876543X")
    assert not iban_valid("GB82")
    assert ssn_valid("123-45-6789")
    assert not ssn_valid("900-45-6789")
    assert not ssn_valid("123-00-6789")
    assert not ssn_valid("123-45-0000")


def test_profile_counts_non_empty_values_only() -> None:
    profile = profile_values("email", ["a@example.com", None, "", "  ", "b@example.org", "n/a"])
    assert profile.sampled == 3
    assert profile.matches[EMAIL] == 2
    assert profile.share(EMAIL) == pytest.approx(2 / 3)


def test_profile_accepts_arrow_arrays_of_any_string_kind() -> None:
    values = ["a@example.com", "b@example.com", "x"]
    for array in (
        pa.array(values),
        pa.array(values, type=pa.large_string()),
        pa.array(values).dictionary_encode(),
        pa.chunked_array([values[:1], values[1:]]),
    ):
        assert profile_values("c", array).matches[EMAIL] == 2


def test_empty_column_has_no_share() -> None:
    profile = profile_values("c", [None, ""])
    assert profile.sampled == 0
    assert profile.share(EMAIL) == 0.0


def _profile(column: str, values: list[str]) -> list:  # type: ignore[type-arg]
    return [profile_values(column, values)]


def test_undeclared_pii_reports_share_and_never_values() -> None:
    values = ["ann@example.com", "bob@example.com", "carl@example.com", "none"]
    found = undeclared_pii("main", _profile("contact", values), {})
    assert [f.as_dict() for f in found] == [
        {
            "port": "main",
            "column": "contact",
            "category": EMAIL,
            "share": 0.75,
            "sampled": 4,
            "declared_pii": False,
            "declared_category": None,
        }
    ]
    assert "example.com" not in repr(found)


def test_declared_category_and_its_aliases_are_not_reported() -> None:
    values = ["+442079460958"] * 5
    assert not undeclared_pii(
        "main", _profile("Mobile", values), {"mobile": DeclaredColumn(True, "phone")}
    )
    assert not undeclared_pii(
        "main", _profile("mobile", values), {"mobile": DeclaredColumn(True, "phone_number")}
    )


def test_wrong_declared_category_is_reported() -> None:
    found = undeclared_pii(
        "main",
        _profile("contact", ["+442079460958"] * 5),
        {"contact": DeclaredColumn(True, "email")},
    )
    assert [(f.category, f.declared_pii, f.declared_category) for f in found] == [
        (PHONE, True, "email")
    ]


def test_share_must_exceed_threshold() -> None:
    values = ["a@example.com"] + ["x"] * 9
    assert not undeclared_pii("p", _profile("c", values), {}, threshold=0.1)
    assert undeclared_pii("p", _profile("c", values), {}, threshold=0.09)
