"""The PostgreSQL dialect as the wire reads client SQL: sqlglot's, plus the arrays of object
identifier types that catalogue queries bind (``$1::oid[]``, asyncpg's type introspection), which
sqlglot's parser stops at (it reads ``oid`` and leaves ``[]``)."""

from __future__ import annotations

from typing import Any

from sqlglot import exp
from sqlglot.dialects.postgres import Postgres
from sqlglot.parsers.postgres import PostgresParser
from sqlglot.tokenizer_core import TokenType


class WirePostgres(Postgres):
    class Parser(PostgresParser):
        def _parse_types(self, *args: Any, **kwargs: Any) -> exp.Expr | None:
            parsed: exp.Expr | None = super()._parse_types(*args, **kwargs)
            if not isinstance(parsed, exp.ObjectIdentifier):
                return parsed
            while self._match_pair(TokenType.L_BRACKET, TokenType.R_BRACKET):
                parsed = exp.DataType(
                    this=exp.DataType.Type.ARRAY, expressions=[parsed], nested=True
                )
            return parsed


DIALECT = WirePostgres()
