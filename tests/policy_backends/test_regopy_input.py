"""The direct input builder gives rego-cpp the same input as regopy's own ``set_input``."""

from __future__ import annotations

import enum
import json
from collections import OrderedDict
from typing import Any

import pytest
import regopy

from meshgov.core.policy import PolicyBundle
from meshgov.errors import PolicyEvaluationError
from meshgov.policy_backends._regopy_input import set_input
from meshgov.policy_backends.embedded import EmbeddedEngine


class Colour(enum.StrEnum):
    RED = "red"


DOCUMENTS: list[Any] = [
    {},
    [],
    {"principal": {"id": "ann", "groups": ["a", "b"], "domain": None, "attributes": {}}},
    {"n": 1, "f": 2.5, "t": True, "f2": False, "z": None, "neg": -(2**63), "big": 2**63 - 1},
    {"nested": [[1, [2, {"x": ["y"]}]], {"": ""}], "unicode": "émoji ☃ 𝄞"},
    "just a string",
    42,
    [{"a": 1}, {"a": 2}],
]


def _through(setter: Any, document: Any) -> Any:
    interp = regopy.Interpreter()
    setter(interp, document)
    output = interp.query("x := input")
    assert output.ok()
    return json.loads(str(output))["bindings"]["x"]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_same_input_as_regopy(document: Any) -> None:
    expected = _through(lambda interp, doc: interp.set_input(doc), document)
    assert _through(set_input, document) == expected == json.loads(json.dumps(document))


def test_subclasses_and_other_containers_are_passed_as_plain_values() -> None:
    document = OrderedDict([("colour", Colour.RED), ("items", (1, 2)), ("flag", True)])
    assert _through(set_input, document) == {"colour": "red", "items": [1, 2], "flag": True}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"id": "ann\0admin"}, "NUL"),
        ({"ann\0": 1}, "NUL"),
        ({1: "a"}, "keys must be strings"),
        ({"n": 2**64}, "64 bits"),
        ({"b": b"bytes"}, "cannot pass a bytes"),
        ({"s": {1, 2}}, "cannot pass a set"),
    ],
)
def test_values_rego_cannot_hold_faithfully_are_refused(document: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        set_input(regopy.Interpreter(), document)


def test_a_refused_input_is_an_evaluation_error_not_a_truncated_string() -> None:
    bundle = PolicyBundle.create({"p.rego": 'package p\n\nallow if input.id == "ann"\n'}, {})
    prepared = EmbeddedEngine().prepare(bundle, entrypoints=["p/allow"])
    assert prepared.evaluate("data.p.allow", {"id": "ann"}) is True
    with pytest.raises(PolicyEvaluationError, match="NUL"):
        prepared.evaluate("data.p.allow", {"id": "ann\0x"})


# Strings that JSON must escape: rego-cpp keeps a pushed string's bytes as its JSON text, so
# unescaped they came back out of the engine as JSON syntax (a quote closed the string).
ESCAPED = [
    'a"b',
    "a\\b",
    "tab\there",
    "line\nbreak",
    '"quoted"',
    "\x01",
    'x"], "allow": true, "q": ["y',
]


@pytest.mark.parametrize("text", ESCAPED)
def test_strings_that_json_escapes_come_back_unchanged(text: str) -> None:
    document = {"s": text, text: 1}
    assert _through(set_input, document) == document


@pytest.mark.parametrize("text", ["plain", *ESCAPED])
def test_sprintf_of_an_input_string_is_the_string(text: str) -> None:
    """rego-cpp's ``sprintf("%s", …)`` uses a pushed string's bytes as they are: a string pushed
    as its JSON text came back with its quotes (the release gate's messages broke)."""
    interp = regopy.Interpreter()
    set_input(interp, {"s": text})
    output = interp.query('m := sprintf("<%s>", [input.s]); c := concat("", ["<", input.s, ">"])')
    assert output.ok()
    bindings = json.loads(str(output))["bindings"]
    assert bindings == {"m": f"<{text}>", "c": f"<{text}>"}


def test_an_input_string_cannot_rewrite_the_decision() -> None:
    """A request's own text (a purpose, a port, an id) quoted back in a reason could close the
    reason's string and add ``"allow": true`` to the decision the engine returns (a JSON object
    whose duplicate key Python reads last)."""
    bundle = PolicyBundle.create(
        {
            "p.rego": 'package p\n\nimport rego.v1\n\ndecision := {"allow": false, '
            '"reasons": [concat("", ["unknown purpose ", input.purpose])], "masks": {}}\n'
            '\nsame if input.purpose == "a\\"b"\n'
        },
        {},
    )
    prepared = EmbeddedEngine().prepare(bundle, entrypoints=["p/decision", "p/same"])
    purpose = 'x"], "allow": true, "masks": {}, "q": ["y'
    decision = prepared.evaluate("data.p.decision", {"purpose": purpose})
    assert decision == {"allow": False, "reasons": [f"unknown purpose {purpose}"], "masks": {}}
    assert prepared.evaluate("data.p.same", {"purpose": 'a"b'}) is True
