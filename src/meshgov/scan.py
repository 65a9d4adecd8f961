"""Reading a port's data snapshot (Parquet or CSV) and scanning it for undeclared personal data.

The detectors are pure (``meshgov.core.pii_detect``); this module only reads files. Parquet is read
column-pruned (string columns only); CSV columns are all read as text, since a CSV has no types and
inference would drop the leading zeros and plus signs that make phone numbers recognisable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from meshgov.core.manifest import Manifest, OutputPort
from meshgov.core.pii_detect import (
    DEFAULT_SAMPLE_SIZE,
    DEFAULT_THRESHOLD,
    DeclaredColumn,
    UndeclaredPii,
    profile_values,
    undeclared_pii,
)
from meshgov.errors import InputError, Location

PARQUET_SUFFIXES = {".parquet", ".pq"}
# Bounds on what a scan reads: a sample needs spread, not the whole of a large snapshot.
MAX_ROW_GROUPS = 8
MAX_CSV_ROWS = 100_000
CSV_SUFFIXES = {".csv", ".tsv"}


@dataclass(frozen=True)
class ScanSettings:
    sample_size: int = DEFAULT_SAMPLE_SIZE
    threshold: float = DEFAULT_THRESHOLD


def _is_text(data_type: pa.DataType) -> bool:
    if pa.types.is_dictionary(data_type):
        data_type = data_type.value_type
    return bool(pa.types.is_string(data_type) or pa.types.is_large_string(data_type))


def read_text_columns(path: Path) -> pa.Table:
    """The text columns of a snapshot file.

    Raises:
        InputError: the file is missing, unreadable or not Parquet/CSV.
    """
    suffixes = [s.lower() for s in path.suffixes]
    if not path.is_file():
        raise InputError("snapshot file not found", Location(file=str(path)))
    try:
        if suffixes and suffixes[-1] in PARQUET_SUFFIXES:
            return _read_parquet(path)
        if suffixes and (suffixes[-1] in CSV_SUFFIXES or suffixes[-2:-1] == [".csv"]):
            return _read_csv(path, delimiter="\t" if ".tsv" in suffixes else ",")
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"cannot read snapshot: {exc}", Location(file=str(path))) from None
    raise InputError(
        "snapshot must be a Parquet (.parquet) or CSV (.csv) file", Location(file=str(path))
    )


def _read_parquet(path: Path) -> pa.Table:
    """Text columns of at most ``MAX_ROW_GROUPS`` row groups spread over the file."""
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as parquet:
        names = [f.name for f in parquet.schema_arrow if _is_text(f.type)]
        groups = parquet.metadata.num_row_groups
        if groups <= MAX_ROW_GROUPS:
            return parquet.read(columns=names)
        step = groups / MAX_ROW_GROUPS
        chosen = sorted({int(i * step) for i in range(MAX_ROW_GROUPS)})
        return parquet.read_row_groups(chosen, columns=names)


def _read_csv(path: Path, delimiter: str) -> pa.Table:
    """Every column as text (no type inference), the first ``MAX_CSV_ROWS`` rows."""
    import pyarrow.csv as pcsv

    parse = pcsv.ParseOptions(delimiter=delimiter)
    header = pcsv.open_csv(path, parse_options=parse).schema.names
    convert = pcsv.ConvertOptions(column_types=dict.fromkeys(header, pa.string()))
    batches = []
    rows = 0
    with pcsv.open_csv(path, parse_options=parse, convert_options=convert) as reader:
        for batch in reader:
            batches.append(batch)
            rows += batch.num_rows
            if rows >= MAX_CSV_ROWS:
                break
    if not batches:
        return pa.table({name: pa.array([], type=pa.string()) for name in header})
    return pa.Table.from_batches(batches).slice(0, MAX_CSV_ROWS)


def sample_rows(table: pa.Table, size: int) -> pa.Table:
    """Up to ``size`` rows spread evenly over the table: deterministic, and not just the head."""
    if table.num_rows <= size:
        return table
    step = table.num_rows / size
    indices = pa.array([int(i * step) for i in range(size)], type=pa.int64())
    return table.take(indices)


def scan_port(
    port: OutputPort, path: Path, settings: ScanSettings = ScanSettings()
) -> list[UndeclaredPii]:
    """Undeclared PII in the snapshot of ``port`` stored at ``path``."""
    table = sample_rows(read_text_columns(path), settings.sample_size)
    declared = {c.name: DeclaredColumn(c.pii, c.pii_category) for c in port.columns}
    profiles = []
    for name in table.column_names:
        column = table.column(name)
        if column.null_count == len(column):
            continue
        profiles.append(profile_values(name, pc.cast(column, pa.string())))
    return undeclared_pii(port.name, profiles, declared, settings.threshold)


def snapshot_path(manifest: Manifest, data: str) -> Path:
    """Snapshots are relative to the manifest file (or the working directory without one)."""
    base = Path(manifest.source).parent if manifest.source else Path.cwd()
    return base / data


def scan_manifest(
    manifest: Manifest,
    settings: ScanSettings = ScanSettings(),
    data_lines: Mapping[str, int] | None = None,
) -> list[UndeclaredPii]:
    """Scan every port that declares a ``data`` snapshot.

    Raises:
        InputError: a declared snapshot is missing or unreadable; names the manifest, its line and
            the file.
    """
    found: list[UndeclaredPii] = []
    for port in manifest.spec.output_ports:
        if not port.data:
            continue
        path = snapshot_path(manifest, port.data)
        try:
            found.extend(scan_port(port, path, settings))
        except InputError as exc:
            raise InputError(
                f"port '{port.name}': {exc.message} ({port.data} → {path})",
                Location(
                    file=manifest.source,
                    line=(data_lines or {}).get(port.name),
                    product=manifest.id,
                    port=port.name,
                ),
            ) from None
    return found
