"""Governed exports: a port's snapshot written as only what one principal may see.

The snapshot is opened as a pyarrow dataset and scanned by DuckDB batch by batch through the
port's secure SQL (``meshgov.governed``): rows outside the row filter never leave the scan, masked
columns are masked by the same functions as SQL, hidden columns are not in the output at all.
Batches are encoded as they come (Parquet, CSV or Arrow IPC stream), so neither the snapshot nor
the export is ever held whole in memory. Parquet key-value metadata and the Arrow schema metadata
carry the decision id, the policy revision and the product version.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from meshgov.errors import InputError, Location, ManifestError

if TYPE_CHECKING:
    import pyarrow as pa

    from meshgov.core.principal import Principal
    from meshgov.gateway import Gateway
    from meshgov.governed import GovernedPort, GovernedRunner

BATCH_ROWS = 65_536


class ExportFormat(StrEnum):
    parquet = "parquet"
    csv = "csv"
    arrow = "arrow"


MEDIA_TYPES = {
    ExportFormat.parquet: "application/vnd.apache.parquet",
    ExportFormat.csv: "text/csv",
    ExportFormat.arrow: "application/vnd.apache.arrow.stream",
}


def parse_export_format(value: str) -> ExportFormat:
    try:
        return ExportFormat(value.lower())
    except ValueError:
        known = ", ".join(f.value for f in ExportFormat)
        raise InputError(f"unknown export format {value!r}: use {known}") from None


@dataclass(frozen=True)
class ExportPlan:
    """What an export will write: the governed port, its snapshot and the metadata to stamp."""

    governed: GovernedPort
    snapshot: Path
    decision_id: str
    principal: str
    purpose: str | None

    def metadata(self) -> dict[str, str]:
        """The key-value metadata of the exported file (also the HTTP response headers)."""
        return {
            "meshgov.decision_id": self.decision_id,
            "meshgov.policy_revision": self.governed.policy_revision,
            "meshgov.product": self.governed.product,
            "meshgov.port": self.governed.port,
            "meshgov.product_version": self.governed.version,
            "meshgov.principal": self.principal,
            "meshgov.purpose": self.purpose or "",
        }


def plan_export(
    gateway: Gateway,
    principal: Principal,
    purpose: str | None,
    product: str,
    port: str,
    decision_id: str,
) -> ExportPlan:
    """Decide (raises ``AccessDenied`` naming the reason) and locate the port's snapshot."""
    from meshgov.governed import find_port, governed_port

    manifest, declared = find_port(gateway.catalog, product, port)
    if not declared.data:
        raise InputError(f"{product}:{port} has no snapshot (`data:`) to export")
    governed = governed_port(gateway, principal, purpose, product, port)
    snapshot = gateway.catalog.resolve_data_path(manifest, declared.data, port)
    return ExportPlan(governed, snapshot, decision_id, principal.id, purpose)


def _dataset(plan: ExportPlan) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.dataset as ds

    path = plan.snapshot
    where = Location(file=str(path), product=plan.governed.product, port=plan.governed.port)
    suffix = path.suffix.lower()
    if suffix in {".parquet", ".pq"}:
        file_format: Any = "parquet"
    elif suffix in {".csv", ".tsv"}:
        delimiter = "\t" if suffix == ".tsv" else ","
        file_format = ds.CsvFileFormat(parse_options=pa_csv.ParseOptions(delimiter=delimiter))
    else:
        raise ManifestError("snapshot must be .parquet or .csv", where)
    try:
        return ds.dataset(path, format=file_format)
    except FileNotFoundError:
        raise ManifestError("snapshot file not found", where) from None
    except (OSError, pa.ArrowException) as exc:
        raise ManifestError(f"cannot read snapshot: {type(exc).__name__}", where) from None


class _Chunks:
    """A write-only file object collecting what a writer emits, drained between batches."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.closed = False
        self._position = 0

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def drain(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def _writer(fmt: ExportFormat, sink: Any, schema: pa.Schema) -> Any:
    import pyarrow.csv as pa_csv
    import pyarrow.ipc as ipc
    import pyarrow.parquet as pq

    if fmt is ExportFormat.parquet:
        return pq.ParquetWriter(sink, schema)
    if fmt is ExportFormat.arrow:
        return ipc.new_stream(sink, schema)
    return pa_csv.CSVWriter(sink, schema)


def export_chunks(plan: ExportPlan, runner: GovernedRunner, fmt: ExportFormat) -> Iterator[bytes]:
    """The export file as a sequence of byte chunks (one or more per batch): for streaming."""
    import pyarrow as pa

    sink = _Chunks()
    reader, cursor = runner.reader(plan.governed, _dataset(plan), BATCH_ROWS)
    metadata = {k.encode(): v.encode() for k, v in plan.metadata().items()}
    schema = reader.schema.with_metadata(metadata)
    try:
        writer = _writer(fmt, sink, schema)
        try:
            for batch in reader:
                writer.write_batch(pa.RecordBatch.from_arrays(batch.columns, schema=schema))
                data = sink.drain()
                if data:
                    yield data
        finally:
            writer.close()
        data = sink.drain()
        if data:
            yield data
    finally:
        cursor.close()


def export_to(
    plan: ExportPlan, runner: GovernedRunner, fmt: ExportFormat, out: BinaryIO | Path
) -> int:
    """Write the export to ``out`` (a file object, or a path: written natively by pyarrow,
    which is faster); returns the number of rows written."""
    import pyarrow as pa

    reader, cursor = runner.reader(plan.governed, _dataset(plan), BATCH_ROWS)
    metadata = {k.encode(): v.encode() for k, v in plan.metadata().items()}
    schema = reader.schema.with_metadata(metadata)
    rows = 0
    try:
        native = pa.OSFile(str(out), "wb") if isinstance(out, Path) else None
        writer = _writer(fmt, native if native is not None else out, schema)
        try:
            for batch in reader:
                writer.write_batch(pa.RecordBatch.from_arrays(batch.columns, schema=schema))
                rows += batch.num_rows
        finally:
            writer.close()
            if native is not None:
                native.close()
    finally:
        cursor.close()
    return rows
