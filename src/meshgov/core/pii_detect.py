"""Detectors of personal data in column values, and the comparison with what a port declares.

Pure: values come in as a pyarrow array (or a list of strings), counts come out. Cheap regular
expressions run vectorised in pyarrow.compute (RE2 syntax); the checksums that a regular expression
cannot express (Luhn, IBAN mod-97, SSN ranges, IP address parsing) run in Python on the few
candidates the expressions let through. No value ever leaves this module, only counts and shares.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

EMAIL = "email"
PHONE = "phone"
CARD = "card"
IBAN = "iban"
NATIONAL_ID = "national_id"
IP = "ip"
CATEGORIES = (EMAIL, PHONE, CARD, IBAN, NATIONAL_ID, IP)

# A declared piiCategory that means the same thing as a detected one.
CATEGORY_ALIASES: Mapping[str, frozenset[str]] = {
    EMAIL: frozenset({"email", "email_address"}),
    PHONE: frozenset({"phone", "phone_number", "mobile", "telephone"}),
    CARD: frozenset({"card", "payment_card", "credit_card", "card_number", "pan"}),
    IBAN: frozenset({"iban", "bank_account", "account_number", "financial"}),
    NATIONAL_ID: frozenset({"national_id", "ssn", "tax_id", "passport", "government_id"}),
    IP: frozenset({"ip", "ip_address", "online_identifier"}),
}

DEFAULT_THRESHOLD = 0.2
DEFAULT_SAMPLE_SIZE = 1000

# An email anywhere in the value: free-text columns leak addresses too.
_EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
# Separators people type inside numbers; removed before the digit patterns run.
_SEPARATORS = r"[\s().\-/]"
_E164 = r"^\+[1-9]\d{7,14}$"
_PHONE_SHAPE = r"^\+?[\d\s().\-/]{7,22}$"
# National numbers: a trunk prefix 0 or a parenthesised area code, or the NANP 3-3-4 grouping.
_PHONE_NATIONAL = (
    r"^(\(0?\d{2,5}\)[\s.\-]?|0\d{1,4}[\s.\-/]?)\d{2,4}([\s.\-]?\d{2,4}){1,3}$"
    r"|^\(?\d{3}\)?[\s.\-]\d{3}[\s.\-]\d{4}$"
)
_CARD_SHAPE = r"^[\d\s\-]+$"
_CARD_DIGITS = r"^[2-6]\d{12,18}$"
_IBAN_SHAPE = r"^[A-Z]{2}\d{2}[A-Z0-9]{11,30}$"
_SSN = r"^\d{3}-\d{2}-\d{4}$"
_NINO = r"^[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]\d{6}[A-D]$"
_IPV4 = r"^\d{1,3}(\.\d{1,3}){3}$"
_IPV6 = r"^[0-9A-Fa-f]{0,4}(:[0-9A-Fa-f]{0,4}){2,7}(%\w+)?$"


def luhn_valid(digits: str) -> bool:
    """The payment card checksum.

    >>> luhn_valid("4111111111111111"), luhn_valid("4111111111111112")
    (True, False)
    """
    if not digits.isdigit():
        return False
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_valid(compact: str) -> bool:
    """ISO 13616 mod-97 check of an IBAN without spaces.

    >>> iban_valid("GB82WEST12345698765432"), iban_valid("GB82WEST12345698765433")
    (True, False)
    """
    if len(compact) < 15 or len(compact) > 34 or not compact.isalnum():
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged.upper())
    return int(number) % 97 == 1


def ssn_valid(text: str) -> bool:
    """US Social Security Number: no area 000, 666 or 9xx, no group 00, no serial 0000.

    >>> ssn_valid("123-45-6789"), ssn_valid("666-45-6789")
    (True, False)
    """
    parts = text.split("-")
    if (
        len(parts) != 3
        or [len(p) for p in parts] != [3, 2, 4]
        or not text.replace("-", "").isdigit()
    ):
        return False
    area, group, serial = parts
    return area not in {"000", "666"} and area[0] != "9" and group != "00" and serial != "0000"


_NINO_BAD_PREFIXES = {"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"}


def _national_id_valid(text: str) -> bool:
    if "-" in text:
        return ssn_valid(text)
    return text[:2] not in _NINO_BAD_PREFIXES


def ip_valid(text: str) -> bool:
    """An IPv4 or IPv6 address (a zone suffix is allowed).

    >>> ip_valid("192.168.0.1"), ip_valid("2001:db8::1"), ip_valid("300.1.1.1")
    (True, True, False)
    """
    try:
        ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class ColumnProfile:
    """How many of the sampled non-empty values of one column matched each category."""

    column: str
    sampled: int
    matches: Mapping[str, int]

    def share(self, category: str) -> float:
        return self.matches.get(category, 0) / self.sampled if self.sampled else 0.0


def _as_string_array(values: pa.Array | pa.ChunkedArray | Sequence[str | None]) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not isinstance(values, pa.Array):
        values = pa.array(list(values), type=pa.string())
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        values = values.cast(pa.string())
    return values


def _count_valid(
    candidates: pa.Array, mask: pa.Array, validate: Callable[[str], bool]
) -> tuple[int, pa.Array]:
    """Count values passing ``validate`` among those ``mask`` selects; also return the pass mask."""
    selected = pc.fill_null(mask, False)
    if not pc.any(selected).as_py():
        return 0, selected
    flags = [
        bool(ok) and value is not None and validate(value)
        for value, ok in zip(candidates.to_pylist(), selected.to_pylist(), strict=True)
    ]
    return sum(flags), pa.array(flags, type=pa.bool_())


def _true_count(mask: pa.Array) -> int:
    return int(pc.sum(pc.fill_null(mask, False).cast(pa.int64())).as_py() or 0)


def profile_values(column: str, values: pa.Array | Sequence[str | None]) -> ColumnProfile:
    """Count emails, phones, card numbers, IBANs, national ids and IPs among ``values``.

    >>> p = profile_values("c", ["ann@example.com", "+44 20 7946 0958", None, "plain text"])
    >>> p.sampled, p.matches["email"], p.matches["phone"]
    (3, 1, 1)
    """
    array = _as_string_array(values)
    trimmed = pc.utf8_trim_whitespace(array)
    trimmed = pc.filter(trimmed, pc.fill_null(pc.greater(pc.utf8_length(trimmed), 0), False))
    sampled = len(trimmed)
    matches = dict.fromkeys(CATEGORIES, 0)
    if sampled == 0:
        return ColumnProfile(column, 0, matches)
    compact = pc.replace_substring_regex(trimmed, _SEPARATORS, "")
    upper_compact = pc.utf8_upper(compact)

    matches[EMAIL] = _true_count(pc.match_substring_regex(trimmed, _EMAIL))

    phone_shape = pc.match_substring_regex(trimmed, _PHONE_SHAPE)
    e164 = pc.and_(phone_shape, pc.match_substring_regex(compact, _E164))
    national = pc.match_substring_regex(trimmed, _PHONE_NATIONAL)
    phone = pc.or_(e164, national)

    card_shape = pc.and_(
        pc.match_substring_regex(trimmed, _CARD_SHAPE),
        pc.match_substring_regex(compact, _CARD_DIGITS),
    )
    matches[CARD], card = _count_valid(compact, card_shape, luhn_valid)
    # A Luhn-valid card number is not also a phone number.
    matches[PHONE] = _true_count(pc.and_(phone, pc.invert(card)))

    iban_shape = pc.match_substring_regex(upper_compact, _IBAN_SHAPE)
    matches[IBAN], _ = _count_valid(upper_compact, iban_shape, iban_valid)

    national_shape = pc.or_(
        pc.match_substring_regex(trimmed, _SSN),
        pc.match_substring_regex(upper_compact, _NINO),
    )
    ssn_or_nino = pc.if_else(pc.match_substring_regex(trimmed, _SSN), trimmed, upper_compact)
    matches[NATIONAL_ID], _ = _count_valid(ssn_or_nino, national_shape, _national_id_valid)

    ip_shape = pc.or_(
        pc.match_substring_regex(trimmed, _IPV4), pc.match_substring_regex(trimmed, _IPV6)
    )
    matches[IP], _ = _count_valid(trimmed, ip_shape, ip_valid)
    return ColumnProfile(column, sampled, matches)


@dataclass(frozen=True)
class DeclaredColumn:
    """What the manifest says about a column: only what the comparison needs."""

    pii: bool
    category: str | None


@dataclass(frozen=True)
class UndeclaredPii:
    """A column whose values look like ``category`` but which does not declare it."""

    port: str
    column: str
    category: str
    share: float
    sampled: int
    declared_pii: bool
    declared_category: str | None

    def as_dict(self) -> dict[str, Any]:
        """What the policies see in ``input.scan``: counts and shares, never values."""
        return {
            "port": self.port,
            "column": self.column,
            "category": self.category,
            "share": self.share,
            "sampled": self.sampled,
            "declared_pii": self.declared_pii,
            "declared_category": self.declared_category,
        }


def declares(declared: DeclaredColumn | None, category: str) -> bool:
    if declared is None or not declared.pii or not declared.category:
        return False
    return declared.category.lower() in CATEGORY_ALIASES.get(category, frozenset({category}))


def undeclared_pii(
    port: str,
    profiles: Iterable[ColumnProfile],
    declared: Mapping[str, DeclaredColumn],
    threshold: float = DEFAULT_THRESHOLD,
) -> list[UndeclaredPii]:
    """Columns whose share of a category exceeds ``threshold`` without declaring it.

    Column names match case-insensitively; a snapshot column missing from the manifest counts as
    undeclared.
    """
    by_name = {name.lower(): value for name, value in declared.items()}
    found: list[UndeclaredPii] = []
    for profile in profiles:
        column = by_name.get(profile.column.lower())
        for category in CATEGORIES:
            share = profile.share(category)
            if share <= threshold or declares(column, category):
                continue
            found.append(
                UndeclaredPii(
                    port=port,
                    column=profile.column,
                    category=category,
                    share=round(share, 4),
                    sampled=profile.sampled,
                    declared_pii=column.pii if column else False,
                    declared_category=column.category if column else None,
                )
            )
    return found
