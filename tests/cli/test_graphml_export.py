"""GraphML export: valid ids (unique edge ids, the kind as data) that networkx reads back whole."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import networkx as nx
from typer.testing import CliRunner

from meshgov.cli import app

ROOT = Path(__file__).resolve().parents[2]
NS = {"g": "http://graphml.graphdrawing.org/xmlns"}


def assert_valid_graphml(text: str, nodes: int, edges: int, kinds: Counter[str]) -> None:
    root = ET.fromstring(text)
    edge_ids = [e.get("id") for e in root.iterfind(".//g:edge", NS)]
    node_ids = [n.get("id") for n in root.iterfind(".//g:node", NS)]
    assert len(edge_ids) == edges and None not in edge_ids
    assert len(set(edge_ids)) == len(edge_ids), "GraphML edge ids must be unique"
    assert len(set(node_ids)) == len(node_ids) == nodes
    # The kind survives as a data attribute.
    kind_key = next(
        k.get("id")
        for k in root.iterfind("g:key", NS)
        if k.get("for") == "edge" and k.get("attr.name") == "kind"
    )
    written = Counter(d.text for d in root.iterfind(f".//g:edge/g:data[@key='{kind_key}']", NS))
    assert written == kinds
    read = nx.read_graphml(io.BytesIO(text.encode()), force_multigraph=True)
    assert read.number_of_nodes() == nodes
    assert read.number_of_edges() == edges
    assert Counter(kind for _, _, kind in read.edges(data="kind")) == kinds


def _export(fmt: str, *extra: str) -> str:
    result = CliRunner().invoke(
        app,
        [
            "graph",
            "--catalog",
            str(ROOT / "examples" / "mesh"),
            "--policies",
            str(ROOT / "policies"),
            "export",
            "-f",
            fmt,
            *extra,
        ],
    )
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_cli_graphml_of_the_example_mesh(tmp_path: Path) -> None:
    target = tmp_path / "mesh.graphml"
    _export("graphml", "-o", str(target))
    # The node-link JSON export lists every node and edge of the same graph, with its kind.
    source = json.loads(_export("json"))
    kinds = Counter(edge["kind"] for edge in source["edges"])
    assert kinds["exposes"] > 1  # many edges of one kind: the kind used to be the edge id
    assert_valid_graphml(target.read_text(), len(source["nodes"]), len(source["edges"]), kinds)
