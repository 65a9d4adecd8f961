"""The YAML loader measures alias expansion over the composed graph before constructing."""

from __future__ import annotations

from typing import Any

import pytest

from meshgov.core import yaml_source
from meshgov.core.yaml_source import MAX_ALIAS_NODES, load_yaml
from meshgov.errors import InputError


def bomb(levels: int, fan_out: int) -> str:
    lines = ["a0: &a0 [x]"]
    for level in range(1, levels + 1):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * fan_out)}]")
    return "\n".join(lines) + "\n"


def test_a_bomb_is_refused_before_construction_naming_the_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def never(*_: Any) -> Any:
        raise AssertionError("constructed")

    monkeypatch.setattr(yaml_source, "_construct", never)
    with pytest.raises(InputError, match="alias bomb") as info:
        load_yaml(bomb(9, 10), "bomb.yaml")
    location = info.value.location
    assert location is not None and (location.file, location.line) == ("bomb.yaml", 6)


def test_a_self_containing_alias_is_refused() -> None:
    with pytest.raises(InputError, match="recursive alias"):
        load_yaml("a: &a [1, *a]\n", "loop.yaml")


def test_reuse_within_the_budget_is_expanded() -> None:
    # a4 expands to 21,111 nodes: aliases that add fewer than the budget are served as written.
    text = bomb(4, 10)
    assert MAX_ALIAS_NODES > 21_111
    data = load_yaml(text, "ok.yaml").data
    assert len(data["a4"]) == 10 and data["a4"][0][0][0] == [["x"]] * 10


def test_the_alias_budget_counts_nodes_added_not_written(monkeypatch: pytest.MonkeyPatch) -> None:
    """A large document without aliases is not an alias bomb; one alias of a large node is."""
    monkeypatch.setattr(yaml_source, "MAX_ALIAS_NODES", 1_000)
    rows = "".join(f"- [{i}, {i}]\n" for i in range(1_000))  # 3,001 nodes, no alias
    assert len(load_yaml(rows, "plain.yaml").data) == 1_000
    shared = "big: &big\n" + "".join(f"  - {i}\n" for i in range(600)) + "copies: [*big, *big]\n"
    with pytest.raises(InputError, match="alias bomb"):
        load_yaml(shared, "shared.yaml")
