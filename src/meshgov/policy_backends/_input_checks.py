"""The input every policy engine accepts: the same checks on each, so a request gets the same
decision whichever engine evaluates it.

rego-cpp refuses a string holding a NUL byte (C strings would cut it) and integers outside 64 bits;
regorus and OPA accepted both, so the embedded engine denied what they allowed. Non-finite floats
are not JSON: regorus and OPA refused them while rego-cpp's C API took them. All three are refused
here with ``ValueError`` (which each backend turns into a denial).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

INT64 = 2**63


def plain_input(value: Any) -> Any:
    """``value`` as plain JSON values (str, int, float, bool, None, dict, list), checked."""
    if isinstance(value, str):
        if "\0" in value:
            raise ValueError("input strings cannot contain NUL bytes")
        return str(value)
    if isinstance(value, bool) or value is None:
        return value if value is None else bool(value)
    if isinstance(value, int):
        if not -INT64 <= value < INT64:
            raise ValueError("input integers must fit in 64 bits")
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("input numbers must be finite")
        return float(value)
    if isinstance(value, Mapping):
        plain = {}
        for key, item in value.items():
            if type(key) is not str:
                raise ValueError(f"input object keys must be strings, not {type(key).__name__}")
            plain[plain_input(key)] = plain_input(item)
        return plain
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        return [plain_input(item) for item in value]
    raise ValueError(f"cannot pass a {type(value).__name__} to the policy engine")
