"""Writing output tables (CSV, JSONL, Parquet, or JSONL to stdout), atomically: rows go to a temporary
file beside the target, which is renamed into place only when complete; an abort leaves the previous
output untouched."""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from llmbulk.errors import UsageError

PARQUET_BATCH_ROWS = 10_000  # rows buffered per Parquet write


class TableWriter:
    """Writes rows to CSV, JSONL or Parquet (or JSONL to stdout), atomically via tmp + rename."""

    def __init__(self, path: Path | None, fmt: str, columns: Sequence[str], arrow_schema: Any = None) -> None:
        self.path = path
        self.format = fmt
        self.columns = list(columns)
        self.rows_written = 0
        self._arrow_schema = arrow_schema
        self._pending: list[dict[str, Any]] = []
        self._parquet_writer: Any = None
        if path is None:
            self._tmp = None
            self._fh: IO[Any] = sys.stdout.buffer if fmt == "jsonl" else sys.stdout
        else:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
                self._fh = open(self._tmp, "wb" if fmt != "csv" else "w", newline="" if fmt == "csv" else None)  # noqa: SIM115 - closed in close/abort
            except OSError as exc:
                raise UsageError(f"cannot write output {path}: {exc.strerror}", hint="choose another --out") from exc
        if fmt == "csv":
            self._csv = csv.writer(self._fh)  # type: ignore[arg-type]  # opened in text mode for CSV
            self._csv.writerow(self.columns)

    def write(self, row: dict[str, Any]) -> None:
        self.rows_written += 1
        if self.format == "csv":
            cells = list(map(row.get, self.columns))
            if not _NESTED.isdisjoint(map(type, cells)):  # rare: JSON input or structured output columns
                cells = [_csv_cell(value) for value in cells]
            self._csv.writerow(cells)  # the csv module writes None as an empty field
        elif self.format == "jsonl":
            self._fh.write(orjson.dumps(row, default=str) + b"\n")
        else:
            self._pending.append(row)
            if len(self._pending) >= PARQUET_BATCH_ROWS:
                self._flush_parquet()

    def flush(self) -> None:
        if self.format == "parquet":
            return
        self._fh.flush()

    def _flush_parquet(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._pending:
            return
        columns = {c: [r.get(c) for r in self._pending] for c in self.columns}
        if self._parquet_writer is None:
            schema = self._arrow_schema or _nullable_strings(pa.table(columns).schema)
            self._arrow_schema = schema
            self._parquet_writer = pq.ParquetWriter(self._fh, schema)
        table = pa.Table.from_pydict(columns, schema=self._arrow_schema)
        self._parquet_writer.write_table(table)
        self._pending = []

    def close(self) -> None:
        """Finish the file and move it into place."""
        if self.format == "parquet":
            self._flush_parquet()
            if self._parquet_writer is None:
                import pyarrow as pa
                import pyarrow.parquet as pq

                schema = self._arrow_schema or pa.schema([(c, pa.string()) for c in self.columns])
                pq.write_table(schema.empty_table(), self._fh)
            else:
                self._parquet_writer.close()
        if self._tmp is None:
            self._fh.flush()
            return
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        assert self.path is not None
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Drop a partial file; the previous output, if any, stays."""
        if self._tmp is None:
            return
        self._fh.close()
        self._tmp.unlink(missing_ok=True)


_NESTED = frozenset({dict, list})


def _csv_cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return "" if value is None else value


def _nullable_strings(schema: Any) -> Any:
    """Columns whose first batch was all null are written as strings."""
    import pyarrow as pa

    return pa.schema([pa.field(f.name, pa.string() if pa.types.is_null(f.type) else f.type) for f in schema])
