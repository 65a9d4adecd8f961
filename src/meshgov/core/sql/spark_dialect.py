"""sqlglot's Spark dialect, where it reads or writes Spark 4 (ANSI on) differently from Spark.

Used wherever meshgov reads or writes the ``spark`` dialect (``parse._dialect``): the gateway's
rewrite, the final check's re-parse and the Spark engine's own generation agree on the text.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlglot import exp
from sqlglot.dialects.spark import Spark
from sqlglot.parsers.spark import SparkParser


class MeshgovSpark(Spark):
    class Parser(SparkParser):
        # Spark 4 runs with ANSI on (the engine locks it): CAST fails on bad input. sqlglot's
        # Spark reads CAST as a non-failing TryCast (Spark 3's default), which would let a cast
        # that can fail on a hidden row pass as one that cannot.
        STRICT_CAST = True

    class Generator(Spark.Generator):  # type: ignore[misc,valid-type]
        TRANSFORMS: ClassVar[dict[type[exp.Expr], Any]] = {
            **Spark.Generator.TRANSFORMS,
            # sqlglot writes bare ``LOCALTIMESTAMP``, which Spark reads as a column name (it
            # knows only ``localtimestamp()``); both read back as sqlglot's Localtimestamp.
            exp.Localtimestamp: lambda _self, _e: "LOCALTIMESTAMP()",
        }
