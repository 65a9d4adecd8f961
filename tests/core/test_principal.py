"""Principal files: the model, clearances, the cache key and errors that name the place."""

from __future__ import annotations

import pytest

from meshgov.core.principal import Principal, parse_principal
from meshgov.errors import PrincipalError


def test_parse_yaml_principal() -> None:
    principal = parse_principal(
        "id: ann\ngroups: [analysts]\ndomain: sales\nattributes:\n  region: EU\n"
        "  clearances: [pii]\npurpose: analytics\n",
        "ann.yaml",
    )
    assert principal.id == "ann"
    assert principal.groups == ("analysts",)
    assert principal.clearances == ("pii",)
    assert principal.purpose == "analytics"
    assert principal.policy_document()["attributes"]["region"] == "EU"


def test_parse_json_principal() -> None:
    principal = parse_principal('{"id": "bob", "groups": [], "attributes": {}}', "bob.json")
    assert principal.domain is None
    assert principal.clearances == ()


def test_cache_key_depends_on_attributes_not_on_order() -> None:
    one = Principal(id="a", groups=("x", "y"), attributes={"region": "EU"})
    same = Principal(id="a", groups=("y", "x"), attributes={"region": "EU"})
    other = Principal(id="a", groups=("x", "y"), attributes={"region": "US"})
    assert one.cache_key() == same.cache_key()
    assert one.cache_key() != other.cache_key()


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("id: a\nteam: x\n", "unknown key 'team'", 2),
        ("groups: [a]\n", "missing required key 'id'", None),
        ("id: a\nattributes:\n  clearances: pii\n", "clearances must be a list", 2),
        ("id: a\nattributes:\n  nested: {a: 1}\n", "attributes.nested", 3),
        ("- a\n- b\n", "must be a mapping", 1),
        ("id: [\n", "invalid YAML", 2),
    ],
)
def test_errors_name_file_and_line(text: str, message: str, line: int | None) -> None:
    with pytest.raises(PrincipalError) as caught:
        parse_principal(text, "p.yaml")
    assert message in str(caught.value)
    assert caught.value.location is not None
    assert caught.value.location.file == "p.yaml"
    if line is not None:
        assert caught.value.location.line == line
