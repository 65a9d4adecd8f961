"""sqlglot's Spark dialect, where its generator writes what Spark 4 does not read.

Used wherever meshgov reads or writes the ``spark`` dialect (``parse._dialect``): the gateway's
rewrite, the final check's re-parse and the Spark engine's own generation agree on the text.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlglot import exp
from sqlglot.dialects.spark import Spark


class MeshgovSpark(Spark):
    class Generator(Spark.Generator):  # type: ignore[misc,valid-type]
        TRANSFORMS: ClassVar[dict[type[exp.Expr], Any]] = {
            **Spark.Generator.TRANSFORMS,
            # sqlglot writes bare ``LOCALTIMESTAMP``, which Spark reads as a column name (it
            # knows only ``localtimestamp()``); both read back as sqlglot's Localtimestamp.
            exp.Localtimestamp: lambda _self, _e: "LOCALTIMESTAMP()",
        }
