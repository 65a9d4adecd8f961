"""Pattern literals (regular expressions, LIKE patterns) checked when the query is validated.

A pattern function fails on a bad pattern. With a literal pattern that failure does not depend
on the data only if the engine compiles the pattern before reading a row; PostgreSQL compiles it
at the first row it evaluates, so whether an invalid literal fails would tell whether a row
reached it. So a literal pattern is checked here, before anything runs: one that is valid in the
common subset of the engines' regex flavours (RE2 for DuckDB and Spark, PostgreSQL's ARE) is
accepted and the function is then total; anything else is refused naming the pattern. The subset
is deliberately small: what the flavours read the same way.
"""

from __future__ import annotations

import re

from sqlglot import exp

from meshgov.errors import SqlUnsupportedError

MAX_PATTERN = 1000
MAX_REPEAT = 1000  # RE2's limit on {m,n}
# Escapes every flavour reads alike: classes, and escaped punctuation (a literal character).
_CLASS_ESCAPES = frozenset("dDwWsS")
_CONTROL_ESCAPES = frozenset("tnr")
_PUNCTUATION = frozenset(".^$|?*+()[]{}\\/-'\"")
_POSIX_CLASSES = frozenset(
    {"alnum", "alpha", "blank", "cntrl", "digit", "graph", "lower", "print", "punct", "space"}
    | {"upper", "xdigit"}
)
_QUANTIFIER = re.compile(r"\{(\d{1,4})(,(\d{0,4}))?\}")
# Flags of regexp_replace / regexp_matches the engines share: global, case-(in)sensitive.
ALLOWED_FLAGS = frozenset("gic")


class PatternRefused(SqlUnsupportedError):
    pass


def _refuse(pattern: str, why: str) -> PatternRefused:
    shown = pattern if len(pattern) <= 60 else pattern[:57] + "..."
    return PatternRefused(
        f"regular expression {shown!r} is not allowed: {why} (patterns must be valid in every "
        "engine's regex flavour: literals, ., classes [..] and \\d \\w \\s, anchors, groups "
        "(...) and (?:...), alternation and quantifiers)"
    )


def check_regex(pattern: str) -> None:
    """Raise ``PatternRefused`` unless ``pattern`` is in the common subset."""
    if len(pattern) > MAX_PATTERN:
        raise _refuse(pattern, f"longer than {MAX_PATTERN} characters")
    depth = 0
    can_repeat = False  # an atom precedes
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            if i + 1 >= len(pattern):
                raise _refuse(pattern, "it ends with a backslash")
            nxt = pattern[i + 1]
            if nxt not in _CLASS_ESCAPES | _CONTROL_ESCAPES | _PUNCTUATION:
                raise _refuse(pattern, f"the escape \\{nxt} means different things per engine")
            i += 2
            can_repeat = True
            continue
        if char == "[":
            i = _bracket(pattern, i)
            can_repeat = True
            continue
        if char == "(":
            if pattern.startswith("(?", i):
                if not pattern.startswith("(?:", i):
                    raise _refuse(pattern, "only (?:...) groups are allowed, not (?...) forms")
                i += 3
            else:
                i += 1
            depth += 1
            can_repeat = False
            continue
        if char == ")":
            if depth == 0:
                raise _refuse(pattern, "unbalanced parentheses")
            depth -= 1
            i += 1
            can_repeat = True
            continue
        if char == "|":
            can_repeat = False
            i += 1
            continue
        if char in "*+?{":
            if not can_repeat:
                raise _refuse(pattern, f"the quantifier {char!r} repeats nothing")
            if char == "{":
                match = _QUANTIFIER.match(pattern, i)
                if match is None:
                    raise _refuse(pattern, "a '{' that is not a quantifier {m}, {m,} or {m,n}")
                low, high = int(match.group(1)), match.group(3)
                if low > MAX_REPEAT or (high and (int(high) > MAX_REPEAT or int(high) < low)):
                    raise _refuse(pattern, f"a repetition outside 0..{MAX_REPEAT} or reversed")
                i = match.end()
            else:
                i += 1
            if i < len(pattern) and pattern[i] == "?":
                i += 1  # lazy
            can_repeat = False
            continue
        if char in "}]":
            raise _refuse(pattern, f"an unescaped {char!r}")
        can_repeat = char not in "^$"
        i += 1
    if depth:
        raise _refuse(pattern, "unbalanced parentheses")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise _refuse(pattern, str(exc)) from None


def _bracket(pattern: str, start: int) -> int:
    """The index after the bracket expression opening at ``start``."""
    i = start + 1
    if i < len(pattern) and pattern[i] == "^":
        i += 1
    first = True
    while i < len(pattern):
        char = pattern[i]
        if char == "]" and not first:
            return i + 1
        first = False
        if char == "[":
            if pattern.startswith("[:", i):
                end = pattern.find(":]", i + 2)
                if end < 0 or pattern[i + 2 : end] not in _POSIX_CLASSES:
                    raise _refuse(pattern, "an unknown [:class:] in a bracket expression")
                i = end + 2
                continue
            if pattern.startswith(("[=", "[."), i):
                raise _refuse(pattern, "collating elements [= =] and [. .] are not allowed")
            i += 1
            continue
        if char == "\\":
            if i + 1 >= len(pattern):
                raise _refuse(pattern, "it ends with a backslash")
            nxt = pattern[i + 1]
            # PostgreSQL refuses \D \S \W inside brackets.
            if nxt not in frozenset("dws") | _CONTROL_ESCAPES | _PUNCTUATION:
                raise _refuse(pattern, f"the escape \\{nxt} in [...] differs per engine")
            i += 2
            continue
        i += 1
    raise _refuse(pattern, "an unclosed '['")


def check_flags(flags: str) -> None:
    unknown = sorted(set(flags) - ALLOWED_FLAGS)
    if unknown:
        raise PatternRefused(
            f"regular expression flags {flags!r} are not allowed: only "
            f"{''.join(sorted(ALLOWED_FLAGS))} mean the same on every engine"
        )


def check_like(pattern: str, escape: str | None = None) -> None:
    """A LIKE pattern fails on every engine only when it ends in its escape character."""
    escape = "\\" if escape is None else escape
    if len(escape) > 1:
        raise PatternRefused(f"LIKE escape {escape!r} must be one character")
    if escape:
        trailing = len(pattern) - len(pattern.rstrip(escape))
        if trailing % 2:
            raise PatternRefused(
                f"LIKE pattern {pattern[:60]!r} ends with its escape character {escape!r}"
            )


# sqlglot's regular-expression nodes: the pattern is ``expression``; flags are in these args.
_FLAG_ARGS = ("flag", "modifiers", "parameters", "options")


def check_pattern_node(node: exp.Expr, pattern_arg: exp.Expr | None) -> bool:
    """Check a pattern function's literal pattern (and literal flags); True when the pattern is
    a literal (the function is then total), False when it is computed (fallible)."""
    if isinstance(node, exp.Like | exp.ILike):
        if not (isinstance(pattern_arg, exp.Literal) and pattern_arg.is_string):
            return False
        escape = node.parent if isinstance(node.parent, exp.Escape) else None
        escape_char = escape.expression if escape is not None else None
        if escape is not None and not (
            isinstance(escape_char, exp.Literal) and escape_char.is_string
        ):
            return False
        check_like(pattern_arg.name, escape_char.name if escape_char is not None else None)
        return True
    if not (isinstance(pattern_arg, exp.Literal) and pattern_arg.is_string):
        return False
    check_regex(pattern_arg.name)
    for key in _FLAG_ARGS:
        flags = node.args.get(key)
        if flags is None:
            continue
        if not (isinstance(flags, exp.Literal) and flags.is_string):
            return False
        check_flags(flags.name)
    return True
