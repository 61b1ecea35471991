"""Reading input tables and writing output tables (CSV, JSONL, Parquet), streaming.

Knows nothing of LLMs. Readers yield one dict per row and name the file and row in every error;
writers write to a temporary file and rename it into place only when complete.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import os
import stat
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from llmbulk.errors import InputError, UsageError

FORMATS = ("csv", "jsonl", "parquet")
_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
PARQUET_BATCH_ROWS = 10_000
FILE_COLUMNS = ("path", "language", "content")

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def detect_format(path: Path, explicit: str | None = None) -> str:
    """The table format named explicitly or implied by the file extension."""
    if explicit:
        if explicit not in FORMATS:
            raise UsageError(f"unknown format {explicit!r}", hint=f"use one of {', '.join(FORMATS)}")
        return explicit
    fmt = _EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(
            f"cannot tell the format of {path} from its extension",
            hint="use .csv, .jsonl or .parquet, or pass --format",
        )
    return fmt


def check_format_matches(path: Path | None, fmt: str | None) -> None:
    """Refuse `--out o.csv --format parquet`: an explicit format that contradicts the extension.

    An extension llmbulk does not know (`results.dat`) takes the explicit format; `-` is stdout.
    """
    if path is None or fmt is None or str(path) == "-":
        return
    implied = _EXTENSIONS.get(path.suffix.lower())
    if implied is not None and implied != fmt:
        raise UsageError(
            f"--out {path}: its {path.suffix} extension means {implied}, not --format {fmt}",
            hint=f"name it {path.with_suffix('.' + fmt).name}, or drop --format",
        )


_SPECIAL_FILES = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def not_regular_file(path: Path) -> str | None:
    """Why `path` cannot be read as a file (a FIFO, a device, a socket, a directory), or None.

    Reading a FIFO blocks until someone writes and /dev/zero never ends, so only regular files
    (or symlinks to one) are read; a missing path is left to the caller's own message.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory"
    kind = next((name for test, name in _SPECIAL_FILES if test(mode)), "a special file")
    return f"is {kind}, not a regular file"


class HashingReader(io.RawIOBase):
    """A binary file wrapper that hashes every byte read, so one pass both parses and hashes."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.sha256.update(data)
        return n


class InputTable:
    """An input table on disk: its columns and a streaming row reader."""

    def __init__(self, path: Path, fmt: str | None = None) -> None:
        self.path = path
        if not path.exists():
            raise InputError(f"input file {path} does not exist", hint="check the path")
        if path.is_dir():
            if fmt not in (None, "files"):
                raise InputError(f"input {path} is a directory", hint="pass a CSV, JSONL or Parquet file")
            self.format = "files"
            self.sha256 = None
            return
        problem = not_regular_file(path)
        if problem is not None:
            raise InputError(f"input {path} {problem}", hint="save the rows to a CSV, JSONL or Parquet file first")
        self.format = detect_format(path, fmt)
        self.sha256: str | None = None

    def columns(self) -> list[str]:
        """Column names, from the header, the first object, or the Parquet schema."""
        if self.format == "files":
            return list(FILE_COLUMNS)
        if self.format == "parquet":
            return list(self._parquet_file().schema_arrow.names)
        for row in self.rows():
            return list(row)
        return []

    def rows(self) -> Iterator[dict[str, Any]]:
        """Every row as a dict, in file order; sets `sha256` once the file is fully read."""
        if self.format == "files":
            yield from self._file_rows()
        elif self.format == "csv":
            yield from self._csv_rows()
        elif self.format == "jsonl":
            yield from self._jsonl_rows()
        else:
            yield from self._parquet_rows()

    def _open_hashed(self) -> tuple[IO[bytes], HashingReader]:
        raw = open(self.path, "rb")  # noqa: SIM115 - closed by the caller's finally
        return raw, HashingReader(raw)

    def _file_rows(self) -> Iterator[dict[str, Any]]:
        """A folder as a table: one row per text file (path, language, content), in path order."""
        digest = hashlib.sha256()
        files = sorted(p for p in self.path.rglob("*") if p.is_file() and not _hidden(p.relative_to(self.path)))
        for file in files:
            relative = file.relative_to(self.path).as_posix()
            data = file.read_bytes()
            if b"\0" in data[:8192]:
                continue  # binary files are not reviewable text
            try:
                content = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"{file}: not valid UTF-8 near byte {exc.start}", hint="re-save it as UTF-8") from exc
            digest.update(relative.encode() + b"\0" + data)
            yield {"path": relative, "language": file.suffix.lstrip(".") or "text", "content": content}
        self.sha256 = digest.hexdigest()

    def _csv_rows(self) -> Iterator[dict[str, Any]]:
        raw, hashed = self._open_hashed()
        delimiter = "\t" if self.path.suffix.lower() == ".tsv" else ","
        try:
            text = io.TextIOWrapper(io.BufferedReader(hashed, 1 << 16), encoding="utf-8-sig", newline="")
            reader = csv.reader(text, delimiter=delimiter, strict=True)
            try:
                header = next(reader)
            except StopIteration:
                return
            if len(set(header)) != len(header):
                dup = next(h for h in header if header.count(h) > 1)
                raise InputError(f"{self.path}: column {dup!r} appears twice in the header", hint="rename one")
            width = len(header)
            for n, values in enumerate(reader, start=1):
                if not values:
                    continue
                if len(values) != width:
                    raise InputError(
                        f"{self.path}: row {n} (line {reader.line_num}) has {len(values)} fields, "
                        f"the header has {width}",
                        hint="fix the quoting or the delimiter in that row",
                    )
                yield dict(zip(header, values, strict=True))
            self.sha256 = hashed.sha256.hexdigest()
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{self.path}: not valid UTF-8 {_invalid_utf8_position(self.path)}", hint="re-save the file as UTF-8"
            ) from exc
        except csv.Error as exc:
            raise InputError(
                f"{self.path}: malformed CSV at line {reader.line_num}: {exc}",
                hint="check the quotes in that line",
            ) from exc
        finally:
            raw.close()

    def _jsonl_rows(self) -> Iterator[dict[str, Any]]:
        raw, hashed = self._open_hashed()
        try:
            buffered = io.BufferedReader(hashed, 1 << 16)
            for line_no, line in enumerate(buffered, start=1):
                if not line.strip():
                    continue
                try:
                    value = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise InputError(
                        f"{self.path}: line {line_no} is not valid JSON ({exc.msg})",
                        hint="fix or remove that line",
                    ) from exc
                if not isinstance(value, dict):
                    raise InputError(
                        f"{self.path}: line {line_no} is a JSON {type(value).__name__}, not an object",
                        hint="each line must be one JSON object",
                    )
                yield value
            self.sha256 = hashed.sha256.hexdigest()
        finally:
            raw.close()

    def _parquet_file(self) -> Any:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            pfile = pq.ParquetFile(self.path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(
                f"{self.path} is not a readable Parquet file: {str(exc).splitlines()[0]}",
                hint="check the file, or its extension if it is CSV or JSONL",
            ) from exc
        names = pfile.schema_arrow.names
        if len(set(names)) != len(names):  # rows are dicts: a second column of a name would replace the first
            dup = next(n for n in names if names.count(n) > 1)
            raise InputError(f"{self.path}: column {dup!r} appears twice in the schema", hint="rename one")
        return pfile

    def _parquet_rows(self) -> Iterator[dict[str, Any]]:
        pfile = self._parquet_file()
        for record_batch in pfile.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            yield from record_batch.to_pylist()
        self.sha256 = file_sha256(self.path)

    def parquet_schema(self) -> Any:
        return self._parquet_file().schema_arrow if self.format == "parquet" else None


def _invalid_utf8_position(path: Path) -> str:
    """Where the first invalid UTF-8 byte of a file is, as 'at byte N (line L)'.

    The text reader's error offset is relative to the chunk it was decoding, so the file is
    scanned again (only on this error path) to find the absolute one.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    fed = newlines = 0
    with open(path, "rb") as fh:
        while True:
            block = fh.read(1 << 20)
            carried = len(decoder.getstate()[0])  # an unfinished character from the previous block
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as exc:  # exc.start counts from the carried bytes
                newlines += block[: max(0, exc.start - carried)].count(b"\n")
                return f"at byte {fed - carried + exc.start} (line {newlines + 1})"
            if not block:
                return "(the file changed while it was being read)"
            fed += len(block)
            newlines += block.count(b"\n")


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") or part == "__pycache__" for part in relative.parts)


def file_sha256(path: Path) -> str:
    """sha256 of a file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
            self._csv = csv.writer(self._fh)
            self._csv.writerow(self.columns)

    def write(self, row: dict[str, Any]) -> None:
        self.rows_written += 1
        if self.format == "csv":
            self._csv.writerow([_csv_cell(row.get(c)) for c in self.columns])
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
            table = pa.table(columns) if self._arrow_schema is None else None
            schema = self._arrow_schema or _nullable_strings(table.schema)
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


def _csv_cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return "" if value is None else value


def _nullable_strings(schema: Any) -> Any:
    """Columns whose first batch was all null are written as strings."""
    import pyarrow as pa

    return pa.schema([pa.field(f.name, pa.string() if pa.types.is_null(f.type) else f.type) for f in schema])
