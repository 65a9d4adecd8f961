"""What a PostgreSQL client's statement is: a query, or a session command answered without data.

Statements are split and classified on sqlglot's PostgreSQL tokens (never with regular
expressions): session commands (``SET``, ``SHOW``, ``BEGIN``…), cursor commands (``DECLARE``,
``FETCH``, ``CLOSE``), ``COPY (query) TO STDOUT`` and queries. The query text of a cursor or a
COPY is the source between two tokens, and goes through the gateway like any other query.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot.dialects.postgres import Postgres
from sqlglot.errors import TokenError
from sqlglot.tokenizer_core import Token, TokenType

TT = TokenType


class StatementError(Exception):
    """A statement the wire protocol cannot take; ``sqlstate`` says why."""

    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.message = message


@dataclass(frozen=True)
class Statement:
    """One statement: its ``kind`` and what the kind needs."""

    kind: str  # query | empty | begin | commit | rollback | savepoint | release | set | reset
    # | show | discard | deallocate | declare | fetch | move | close | copy
    text: str = ""  # the statement's source (a query's, a cursor's or a COPY's query)
    name: str = ""  # setting, cursor or statement name
    value: str = ""  # a SET value
    count: int | None = None  # FETCH/MOVE count (None = ALL)
    binary: bool = False  # BINARY cursor, COPY … (FORMAT binary)
    options: dict[str, str] = field(default_factory=dict)  # COPY options


_TOKENIZER = Postgres.Tokenizer()
# Keywords after which sqlglot's tokenizer keeps the rest of the statement as one string.
COMMAND_TOKENS = {TT.COMMAND, TT.FETCH}


def tokenize(sql: str) -> list[Token]:
    """sqlglot's tokens of ``sql``; a command keyword's rest (which sqlglot keeps as one string
    token: ``DECLARE``, ``FETCH``…) is tokenized too, with offsets into ``sql``."""
    try:
        found = list(_TOKENIZER.tokenize(sql))
        if (
            len(found) == 2
            and found[0].token_type in COMMAND_TOKENS
            and (found[1].token_type == TT.STRING)
        ):
            offset = found[0].end + 1  # right after the keyword
            rest = list(_TOKENIZER.tokenize(sql[offset:]))
            for token in rest:
                token.start += offset
                token.end += offset
            found = [found[0], *rest]
        return found
    except TokenError as exc:
        raise StatementError("42601", f"syntax error: {exc}") from None


def split(sql: str) -> list[str]:
    """The statements of a simple Query message, split at top-level semicolons."""
    found: list[str] = []
    start = 0
    for token in tokenize(sql):
        if token.token_type == TT.SEMICOLON:
            found.append(sql[start : token.start])
            start = token.end + 1
    found.append(sql[start:])
    texts = [text for text in found if text.strip()]
    return texts or [""]


def _word(token: Token) -> str:
    return str(token.text).upper()


def _value_text(items: list[Token]) -> str:
    return ", ".join(t.text for t in items if t.token_type != TT.COMMA).strip()


def classify(sql: str) -> Statement:
    """The kind of one statement (already split)."""
    toks = tokenize(sql)
    if not toks:
        return Statement("empty")
    first = _word(toks[0])
    words = [_word(t) for t in toks]
    if first in {"BEGIN", "START"}:
        return Statement("begin")
    if first in {"COMMIT", "END"}:
        return Statement("commit")
    if first in {"ROLLBACK", "ABORT"}:
        return Statement("rollback", name="TO" if "TO" in words else "")
    if first == "SAVEPOINT":
        return Statement("savepoint")
    if first == "RELEASE":
        return Statement("release")
    if first == "SET":
        return _set(toks)
    if first == "RESET":
        return Statement("reset", name=" ".join(t.text.lower() for t in toks[1:]) or "all")
    if first == "SHOW":
        if len(toks) < 2:
            raise StatementError("42601", "SHOW needs a setting name")
        return Statement("show", name=" ".join(t.text.lower() for t in toks[1:]))
    if first == "DISCARD":
        return Statement("discard", name=" ".join(words[1:]))
    if first == "DEALLOCATE":
        rest = [t for t in toks[1:] if _word(t) != "PREPARE"]
        return Statement("deallocate", name=rest[0].text if rest else "")
    if first == "DECLARE":
        return _declare(sql, toks)
    if first in {"FETCH", "MOVE"}:
        return _fetch(first.lower(), toks)
    if first == "CLOSE":
        if len(toks) != 2:
            raise StatementError("42601", "CLOSE takes one cursor name or ALL")
        return Statement("close", name=toks[1].text if words[1] != "ALL" else "")
    if first == "COPY":
        return _copy(sql, toks)
    if first in {"LISTEN", "UNLISTEN", "NOTIFY", "PREPARE", "EXECUTE"}:
        raise StatementError("0A000", f"{first} is not supported by the meshgov gateway")
    return Statement("query", text=sql)


# Settings a client may change; each only changes what this session is told back (SHOW,
# current_setting), except statement_timeout, which bounds this session's queries.
SETTABLE = {
    "application_name", "client_encoding", "datestyle", "timezone", "extra_float_digits",
    "search_path", "statement_timeout", "intervalstyle", "client_min_messages",
    "default_transaction_isolation", "default_transaction_read_only", "bytea_output",
    "standard_conforming_strings", "lock_timeout", "idle_in_transaction_session_timeout",
    "jit", "lc_messages", "lc_monetary", "lc_numeric", "lc_time", "transaction_isolation",
    "transaction_read_only", "work_mem", "geqo", "enable_seqscan", "row_security",
    "max_parallel_workers_per_gather", "default_transaction_deferrable",
}  # fmt: skip


def _set(toks: list[Token]) -> Statement:
    rest = toks[1:]
    if rest and _word(rest[0]) in {"SESSION", "LOCAL"}:
        rest = rest[1:]
    if not rest:
        raise StatementError("42601", "SET needs a setting")
    head = _word(rest[0])
    if head in {"TRANSACTION", "CHARACTERISTICS", "CONSTRAINTS"}:
        return Statement("set", name="transaction")
    if head == "TIME" and len(rest) > 2 and _word(rest[1]) == "ZONE":
        return Statement("set", name="timezone", value=_value_text(rest[2:]))
    if head in {"ROLE", "SESSION_AUTHORIZATION"} or (
        head == "SESSION" and len(rest) > 1 and _word(rest[1]) == "AUTHORIZATION"
    ):
        raise StatementError("42501", "a wire session cannot change its role")
    name = rest[0].text.lower()
    if len(rest) < 3 or (rest[1].token_type != TT.EQ and _word(rest[1]) != "TO"):
        raise StatementError("42601", f"SET {name}: expected '=' or TO and a value")
    if name not in SETTABLE:
        raise StatementError("0A000", f"setting {name!r} cannot be changed through meshgov")
    return Statement("set", name=name, value=_value_text(rest[2:]))


def _declare(sql: str, toks: list[Token]) -> Statement:
    words = [_word(t) for t in toks]
    if len(toks) < 4 or "CURSOR" not in words or "FOR" not in words:
        raise StatementError("42601", "DECLARE name [BINARY] CURSOR [WITH HOLD] FOR query")
    cursor_at, for_at = words.index("CURSOR"), words.index("FOR")
    modifiers = set(words[2:cursor_at])
    holdability = set(words[cursor_at + 1 : for_at])
    if not modifiers <= {"BINARY", "INSENSITIVE", "NO", "SCROLL", "ASENSITIVE"} or not (
        holdability <= {"WITH", "WITHOUT", "HOLD"}
    ):
        raise StatementError("42601", f"unexpected DECLARE options {sorted(modifiers)}")
    if for_at + 1 >= len(toks):
        raise StatementError("42601", "DECLARE … FOR needs a query")
    return Statement(
        "declare",
        name=toks[1].text,
        text=sql[toks[for_at + 1].start :],
        binary="BINARY" in modifiers,
    )


def _fetch(kind: str, toks: list[Token]) -> Statement:
    rest = toks[1:]
    if not rest:
        raise StatementError("42601", f"{kind.upper()} needs a cursor name")
    name = rest[-1].text
    words = [_word(t) for t in rest[:-1] if _word(t) not in {"FROM", "IN"}]
    count: int | None = 1
    for word in words:
        if word in {"ALL"}:
            count = None
        elif word in {"NEXT", "FORWARD"}:
            continue
        elif word.isdigit():
            count = int(word)
        else:
            raise StatementError("0A000", f"{kind.upper()} {word} is not supported (forward only)")
    return Statement(kind, name=name, count=count)


def _copy(sql: str, toks: list[Token]) -> Statement:
    """``COPY (query) TO STDOUT [WITH] [(FORMAT x, HEADER …)] | [BINARY|CSV [HEADER]]``."""
    if len(toks) < 2 or toks[1].token_type != TT.L_PAREN:
        raise StatementError("0A000", "only COPY (query) TO STDOUT is supported")
    depth, close_at = 0, -1
    for index, token in enumerate(toks[1:], start=1):
        if token.token_type == TT.L_PAREN:
            depth += 1
        elif token.token_type == TT.R_PAREN:
            depth -= 1
            if depth == 0:
                close_at = index
                break
    tail = [_word(t) for t in toks[close_at + 1 :]]
    if close_at < 0 or tail[:2] != ["TO", "STDOUT"]:
        raise StatementError("0A000", "only COPY (query) TO STDOUT is supported")
    options: dict[str, str] = {}
    words = [w for w in tail[2:] if w not in {"WITH", "(", ")", ","}]
    index = 0
    while index < len(words):
        word = words[index]
        if word in {"BINARY", "CSV", "TEXT"} and (index == 0 or words[index - 1] != "FORMAT"):
            options["format"] = word.lower()
        elif word == "FORMAT" and index + 1 < len(words):
            options["format"] = words[index + 1].lower()
            index += 1
        elif word == "HEADER":
            following = words[index + 1] if index + 1 < len(words) else ""
            options["header"] = "false" if following in {"FALSE", "OFF", "0"} else "true"
            if following in {"TRUE", "FALSE", "ON", "OFF", "1", "0"}:
                index += 1
        else:
            raise StatementError("0A000", f"COPY option {word} is not supported")
        index += 1
    fmt = options.get("format", "text")
    if fmt not in {"text", "csv", "binary"}:
        raise StatementError("0A000", f"COPY format {fmt} is not supported")
    query = sql[toks[1].end + 1 : toks[close_at].start]
    return Statement("copy", text=query, binary=fmt == "binary", options=options)
