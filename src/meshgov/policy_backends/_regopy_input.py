"""Setting a regopy interpreter's input from a Python value, about twice as fast as ``set_input``.

regopy builds an input by pushing every scalar, item, object and array through rego-cpp's C API
(``regoInputString``, ``regoInputObjectItem``, …); its Python wrapper adds a function call, a
buffer copy and a return-code check per push, which made setting a small access request cost as
much as a quarter of the decision. This module makes the same C calls with the functions regopy
has already declared (argument types included), passing ``bytes`` directly. Anything that is not
JSON-like, a string holding a NUL byte (C strings would silently cut it), an integer outside 64
bits, a non-finite float (not JSON) or a failing push raises ``ValueError``: the caller turns it
into a denial (regorus and OPA make the same checks: ``_input_checks``).

Only strings JSON writes as they are (no quote, backslash or control character) are pushed this
way. rego-cpp writes a pushed string's bytes back out unescaped, so a raw quote in a request (a
purpose, a port) closed the string in the engine's output and could add ``"allow": true`` to an
access decision (regopy's own ``set_input`` pushes raw bytes too); pushing the JSON text instead
breaks ``sprintf("%s", …)``, which then keeps the quotes. An input holding any other string is
therefore set as JSON text with ``set_input_term``, which rego-cpp parses and escapes correctly
(slower, and rare: ids and purposes are plain).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from json.encoder import encode_basestring
from typing import Any

import pyarrow  # noqa: F401  (before regopy: see embedded.py)
from regopy import rego_shared

from meshgov.policy_backends._input_checks import INT64, plain_input

_lib: Any = rego_shared.rego
_string = _lib.regoInputString
_int = _lib.regoInputInt
_float = _lib.regoInputFloat
_bool = _lib.regoInputBoolean
_null = _lib.regoInputNull
_item = _lib.regoInputObjectItem
_object = _lib.regoInputObject
_array = _lib.regoInputArray


class _NeedsEscaping(Exception):
    """A string JSON escapes: the input goes through rego-cpp's JSON parser instead."""


def _text(value: str) -> bytes:
    if "\0" in value:
        raise ValueError("input strings cannot contain NUL bytes")
    if len(encode_basestring(value)) != len(value) + 2:
        raise _NeedsEscaping
    return value.encode()


def _push(handle: int, value: Any) -> int:
    """Push ``value``; returns rego-cpp's status (0 is OK)."""
    kind = type(value)
    if kind is str:
        return int(_string(handle, _text(value)))
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise ValueError(f"input object keys must be strings, not {type(key).__name__}")
            if _string(handle, _text(key)) or _push(handle, item) or _item(handle):
                return 1
        return int(_object(handle, len(value)))
    if kind is list or kind is tuple:
        for item in value:
            if _push(handle, item):
                return 1
        return int(_array(handle, len(value)))
    if value is None:
        return int(_null(handle))
    if kind is bool:
        return int(_bool(handle, value))
    if kind is int:
        if not -INT64 <= value < INT64:
            raise ValueError("input integers must fit in 64 bits")
        return int(_int(handle, value))
    if kind is float:
        if not math.isfinite(value):
            raise ValueError("input numbers must be finite")
        return int(_float(handle, value))
    # Rarer shapes (subclasses such as StrEnum, other mappings and sequences) as their plain form.
    if isinstance(value, str):
        return _push(handle, str(value))
    if isinstance(value, bool):
        return _push(handle, bool(value))
    if isinstance(value, int):
        return _push(handle, int(value))
    if isinstance(value, float):
        return _push(handle, float(value))
    if isinstance(value, Mapping):
        return _push(handle, dict(value))
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        return _push(handle, list(value))
    raise ValueError(f"cannot pass a {kind.__name__} to the policy engine")


def set_input(interpreter: Any, value: Any) -> None:
    """``interpreter.set_input(value)`` through the C API directly (through rego-cpp's JSON
    parser when a string needs escaping)."""
    handle = _lib.regoNewInput()
    try:
        try:
            pushed = _push(handle, value)
        except _NeedsEscaping:
            interpreter.set_input_term(json.dumps(plain_input(value), allow_nan=False))
            return
        if pushed:
            raise ValueError("the policy engine refused the input")
        if _lib.regoSetInput(interpreter._impl, handle):
            raise ValueError("the policy engine refused the input")
    finally:
        _lib.regoFreeInput(handle)
