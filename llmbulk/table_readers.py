"""Row readers of input tables, one per format (CSV, JSONL, Parquet, a folder of text files).

Each reader is a generator: it yields one dict per row, in file order, names the file and row in
every error, and returns the input's sha256 once it has read everything (one pass both parses and
hashes), or None when it stopped before the end.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import sys
from collections.abc import Generator
from pathlib import Path
from typing import IO, Any

import orjson

from llmbulk.attachments.media import HEAD_BYTES, sniff
from llmbulk.errors import InputError

PARQUET_BATCH_ROWS = 10_000  # rows per record batch read

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))

Rows = Generator[dict[str, Any], None, str | None]


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


def folder_rows(folder: Path, media: bool = False) -> Rows:
    """A folder as a table: one row per text file (path, language, content), in path order; with `media`,
    one row per image or PDF instead (path, language: its media subtype, content: empty), by magic bytes."""
    digest = hashlib.sha256()
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not _hidden(p.relative_to(folder)))
    for file in files:
        relative = file.relative_to(folder).as_posix()
        data = file.read_bytes()
        if media:
            media_type = sniff(data[:HEAD_BYTES])
            if media_type is not None:
                digest.update(relative.encode() + b"\0" + data)
                yield {"path": relative, "language": media_type.split("/")[1], "content": ""}
            continue
        if b"\0" in data[:8192]:
            continue  # binary files are not reviewable text
        try:
            content = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{file}: not valid UTF-8 near byte {exc.start}", hint="re-save it as UTF-8") from exc
        digest.update(relative.encode() + b"\0" + data)
        yield {"path": relative, "language": file.suffix.lstrip(".") or "text", "content": content}
    return digest.hexdigest()


def csv_rows(path: Path) -> Rows:
    """CSV (or TSV, by extension) rows keyed by the header; every row must have the header's width."""
    raw = open(path, "rb")  # noqa: SIM115 - closed in the finally below
    hashed = HashingReader(raw)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        text = io.TextIOWrapper(io.BufferedReader(hashed, 1 << 16), encoding="utf-8-sig", newline="")
        reader = csv.reader(text, delimiter=delimiter, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            return None
        if len(set(header)) != len(header):
            dup = next(h for h in header if header.count(h) > 1)
            raise InputError(f"{path}: column {dup!r} appears twice in the header", hint="rename one")
        width = len(header)
        for n, values in enumerate(reader, start=1):
            if not values:
                continue
            if len(values) != width:
                raise InputError(
                    f"{path}: row {n} (line {reader.line_num}) has {len(values)} fields, the header has {width}",
                    hint="fix the quoting or the delimiter in that row",
                )
            yield dict(zip(header, values, strict=True))
        return hashed.sha256.hexdigest()
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path}: not valid UTF-8 {_invalid_utf8_position(path)}", hint="re-save the file as UTF-8"
        ) from exc
    except csv.Error as exc:
        raise InputError(
            f"{path}: malformed CSV at line {reader.line_num}: {exc}",
            hint="check the quotes in that line",
        ) from exc
    finally:
        raw.close()


def jsonl_rows(path: Path) -> Rows:
    """One JSON object per non-blank line."""
    raw = open(path, "rb")  # noqa: SIM115 - closed in the finally below
    hashed = HashingReader(raw)
    try:
        buffered = io.BufferedReader(hashed, 1 << 16)
        for line_no, line in enumerate(buffered, start=1):
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise InputError(
                    f"{path}: line {line_no} is not valid JSON ({exc.msg})",
                    hint="fix or remove that line",
                ) from exc
            if not isinstance(value, dict):
                raise InputError(
                    f"{path}: line {line_no} is a JSON {type(value).__name__}, not an object",
                    hint="each line must be one JSON object",
                )
            yield value
        return hashed.sha256.hexdigest()
    finally:
        raw.close()


def parquet_file(path: Path) -> Any:
    """The opened `pyarrow.parquet.ParquetFile`, its column names checked to be unique."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pfile = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(
            f"{path} is not a readable Parquet file: {str(exc).splitlines()[0]}",
            hint="check the file, or its extension if it is CSV or JSONL",
        ) from exc
    names = pfile.schema_arrow.names
    if len(set(names)) != len(names):  # rows are dicts: a second column of a name would replace the first
        dup = next(n for n in names if names.count(n) > 1)
        raise InputError(f"{path}: column {dup!r} appears twice in the schema", hint="rename one")
    return pfile


def parquet_rows(path: Path) -> Rows:
    """Parquet rows, read a record batch at a time."""
    pfile = parquet_file(path)
    for record_batch in pfile.iter_batches(batch_size=PARQUET_BATCH_ROWS):
        yield from record_batch.to_pylist()
    return file_sha256(path)


def file_sha256(path: Path) -> str:
    """sha256 of a file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
