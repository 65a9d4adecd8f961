"""Safe YAML (and JSON) loading that remembers where every key was written.

Manifests come from domain teams and from HTTP bodies, so the loader is defensive: it refuses
oversized documents and alias bombs (expansion is counted, not trusted), and it records the line of
every mapping key so that a validation error can name the place in the file.

Values are what JSON can hold, since everything read ends up as a Rego input or a JSON answer:
booleans are YAML 1.2's (``true``/``false``; ``NO``, ``yes``, ``on`` and ``off`` stay text); an
unquoted date or timestamp is checked (``2099-02-30`` and ``T25:00`` are errors naming the line)
and kept as its ISO 8601 text; binary values, ``.inf`` and ``.nan`` are refused. Any scalar that
cannot be constructed is an ``InputError`` with the file, line and column, never a Python
exception.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError

from meshgov.errors import InputError, Location

MAX_DOCUMENT_BYTES = 5 * 1024 * 1024
# A manifest with 10,000 columns has ~150,000 nodes; an alias bomb expands to billions.
MAX_EXPANDED_NODES = 2_000_000
# Nodes that aliases may add beyond the document's own: a reused column definition or list costs
# a few hundred; constructing 100,000 takes ~0.1 s, so a refused document costs no more than that.
MAX_ALIAS_NODES = 100_000
# Python refuses to print an integer of more than 4,300 decimal digits (~14,284 bits); such a
# value would fail later, in JSON or in a message, so it is refused where it is read.
_MAX_INT_BITS = 14_000

Path = tuple[str | int, ...]
_BOOL_TAG = "tag:yaml.org,2002:bool"


def _yaml12_booleans(loader: Any) -> Any:
    """``loader`` with YAML 1.2's booleans: only true/false (any of three casings) are booleans.

    PyYAML resolves plain scalars by YAML 1.1, where ``yes``, ``no``, ``on``, ``off`` (and their
    capitalised forms) are booleans too: a country code ``NO`` or a column named ``on`` would be
    read as false/true and reach policies and row filters as a boolean. An explicit ``!!bool``
    tag still makes a boolean.
    """

    class Yaml12Booleans(loader):  # type: ignore[misc]
        pass

    Yaml12Booleans.yaml_implicit_resolvers = {
        first: [(tag, pattern) for tag, pattern in resolvers if tag != _BOOL_TAG]
        for first, resolvers in loader.yaml_implicit_resolvers.items()
    }
    Yaml12Booleans.add_implicit_resolver(
        _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
    )
    return Yaml12Booleans


# libyaml's parser when PyYAML was built with it: ~20x faster, same nodes and marks. Tags are
# resolved (in Python) with YAML 1.2's booleans.
_COMPOSER: Any = _yaml12_booleans(getattr(yaml, "CSafeLoader", yaml.SafeLoader))


@dataclass
class SourceDocument:
    """A parsed document and the 1-based line of each path inside it."""

    data: Any
    source: str
    lines: dict[Path, int] = field(default_factory=dict)

    def line_of(self, path: Path) -> int | None:
        """Line of the deepest known prefix of ``path``."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None


class _NodeBudget:
    def __init__(self, source: str) -> None:
        self.left = MAX_EXPANDED_NODES
        self.source = source
        # SafeLoader's scalar resolution (ints, bools, dates) without its alias expansion.
        self.scalars = yaml.SafeLoader("")

    def spend(self, node: yaml.Node) -> None:
        self.left -= 1
        if self.left < 0:
            raise InputError(
                "document expands to too many nodes (YAML alias bomb?)",
                Location(file=self.source, line=node.start_mark.line + 1),
            )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def check_expansion(root: yaml.Node, source: str) -> int:
    """Refuse a document whose aliases expand it too far, before constructing anything.

    The composed graph shares an anchored node between its aliases, so the expanded size of each
    node is computed once (memoised by identity) in one iterative post-order pass: linear in the
    document, whatever the expansion. An alias to one of its own ancestors (a cycle) is refused
    too. Returns the expanded node count.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()  # nodes whose subtree is being summed: the current ancestors
    distinct = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            on_path.discard(key)
            total = 1 + sum(sizes[id(child)] for child in _children(node))
            sizes[key] = total
            distinct += 1
            if total > MAX_EXPANDED_NODES or total - distinct > MAX_ALIAS_NODES:
                raise InputError(
                    "the YAML aliases of this node expand the document past the limit of "
                    f"{MAX_ALIAS_NODES:,} aliased nodes ({MAX_EXPANDED_NODES:,} in all): "
                    "alias bomb?",
                    Location(
                        file=source,
                        line=node.start_mark.line + 1,
                        column_number=node.start_mark.column + 1,
                    ),
                )
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise InputError(
                "a YAML alias refers to a node that contains it (recursive alias)",
                Location(file=source, line=node.start_mark.line + 1),
            )
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
    return sizes[id(root)]


def _construct(node: yaml.Node, path: Path, doc: SourceDocument, budget: _NodeBudget) -> Any:
    budget.spend(node)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise InputError(
                    "mapping keys must be plain strings",
                    Location(file=doc.source, line=key_node.start_mark.line + 1),
                )
            key = str(key_node.value)
            if key == "<<":
                raise InputError(
                    "YAML merge keys ('<<') are not supported; write the keys out",
                    Location(file=doc.source, line=key_node.start_mark.line + 1),
                )
            if key in out:
                raise InputError(
                    f"duplicate key '{key}'",
                    Location(file=doc.source, line=key_node.start_mark.line + 1),
                )
            child = (*path, key)
            doc.lines.setdefault(child, key_node.start_mark.line + 1)
            out[key] = _construct(value_node, child, doc, budget)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            child = (*path, index)
            doc.lines.setdefault(child, item.start_mark.line + 1)
            items.append(_construct(item, child, doc, budget))
        return items
    return _scalar(node, doc.source, budget)


def _scalar(node: yaml.Node, source: str, budget: _NodeBudget) -> Any:
    """Resolve one scalar (int, float, bool, date, timestamp…), naming its place when it fails.

    The YAML resolver recognises a value by its shape (``2099-02-30`` looks like a date), and the
    constructor then raises whatever Python raises for an impossible value: ``ValueError`` (a day
    out of range, an hour of 25, an offset of 99 hours, a decimal integer of more than 4,300
    digits), ``OverflowError``, or ``KeyError``/``AttributeError`` for an explicit tag on a value
    of another shape (``!!bool maybe``, ``!!timestamp soon``). All of them are bad input, as are
    binary values (nothing in meshgov takes bytes) and integers too large to print in decimal.
    """
    where = Location(
        file=source, line=node.start_mark.line + 1, column_number=node.start_mark.column + 1
    )
    try:
        value = budget.scalars.construct_object(node, deep=True)
    except yaml.MarkedYAMLError as exc:
        raise InputError(f"invalid YAML value: {exc.problem or exc.context}", where) from None
    except (ValueError, ArithmeticError, KeyError, AttributeError, TypeError) as exc:
        text = str(node.value)
        shown = text if len(text) <= 40 else text[:37] + "..."
        kind = node.tag.removeprefix("tag:yaml.org,2002:").replace("timestamp", "date or time")
        detail = f" ({exc})" if isinstance(exc, ValueError | ArithmeticError) else ""
        raise InputError(
            f"invalid YAML value {shown!r}: not a valid {kind}{detail}; "
            "quote it if it is meant as text",
            where,
        ) from None
    if isinstance(value, dt.date):
        # JSON, hence Rego, has no dates: a date is kept as its ISO text (a datetime too, in
        # ISO 8601 with 'T'), as OPA keeps YAML timestamps as strings. Its validity is checked.
        return value.isoformat()
    if isinstance(value, bytes):
        raise InputError("binary values (!!binary) are not supported", where)
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{node.value!r} (infinity or NaN) cannot be represented in JSON", where)
    if isinstance(value, int) and value.bit_length() > _MAX_INT_BITS:
        raise InputError(f"integer of {value.bit_length()} bits is too large", where)
    return value


def decode_text(raw: bytes, source: str) -> str:
    """Decode UTF-8 input, naming the byte offset of the first bad byte."""
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise InputError(
            f"file is {len(raw) / 1e6:.1f} MB, over the {MAX_DOCUMENT_BYTES / 1e6:.0f} MB limit",
            Location(file=source),
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(
            f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
            Location(file=source, line=line),
        ) from None


def load_yaml(text: str, source: str) -> SourceDocument:
    """Parse one YAML (or JSON) document into plain Python values with key lines.

    >>> load_yaml("a:\\n  b: 1\\n", "x.yaml").lines[("a", "b")]
    2
    """
    if len(text) > MAX_DOCUMENT_BYTES:
        raise InputError(
            f"document is {len(text) / 1e6:.1f} MB, "
            f"over the {MAX_DOCUMENT_BYTES / 1e6:.0f} MB limit",
            Location(file=source),
        )
    doc = SourceDocument(data=None, source=source)
    try:
        nodes = list(yaml.compose_all(text, Loader=_COMPOSER))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        col = mark.column + 1 if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise InputError(
            f"invalid YAML: {problem}", Location(file=source, line=line, column_number=col)
        ) from None
    except yaml.YAMLError as exc:
        raise InputError(f"invalid YAML: {exc}", Location(file=source)) from None
    if not nodes or nodes[0] is None:
        raise InputError("empty document", Location(file=source))
    if len(nodes) > 1:
        raise InputError(
            "several YAML documents in one file; put one product per file",
            Location(file=source, line=nodes[1].start_mark.line + 1),
        )
    if "*" in text:  # without the alias indicator there is no alias, so nothing to expand
        check_expansion(nodes[0], source)
    try:
        doc.data = _construct(nodes[0], (), doc, _NodeBudget(source))
    except yaml.YAMLError as exc:
        raise InputError(f"invalid YAML value: {exc}", Location(file=source)) from None
    except RecursionError:
        raise InputError("document is nested too deeply", Location(file=source)) from None
    return doc


def located_validation_error(
    exc: ValidationError, doc: SourceDocument, prefix: Path = ()
) -> tuple[str, Location]:
    """The first error of a pydantic validation of ``doc`` as a message and its place.

    Unknown and missing keys are named as written; other errors give the offending value when it
    is short. Lines are the YAML loader's, recorded for the key paths as written (aliases, not
    field names).
    """
    first = exc.errors()[0]
    loc: Path = (*prefix, *first["loc"])
    dotted = ".".join(str(p) for p in loc) or "(document)"
    if first["type"] == "extra_forbidden":
        message = f"unknown key '{loc[-1]}' at {dotted}"
    elif first["type"] == "missing":
        message = f"missing required key '{dotted}'"
    else:
        shown = first.get("input")
        detail = first["msg"]
        if isinstance(shown, str | int | float | bool) and len(str(shown)) < 60:
            detail += f" (got {shown!r})"
        message = f"{dotted}: {detail}"
    more = len(exc.errors()) - 1
    if more:
        message += f" (and {more} more error{'s' if more > 1 else ''})"
    return message, Location(file=doc.source, line=doc.line_of(loc))
