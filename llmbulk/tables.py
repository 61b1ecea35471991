"""Input and output tables (CSV, JSONL, Parquet, a folder of text files), streaming: formats and `InputTable`.

Knows nothing of LLMs. This module owns which format a path is, which paths can be read at all, and
the input table (its columns and rows); the per-format row readers are in `table_readers`, the atomic
writer in `table_writer` (both re-exported here).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llmbulk.errors import InputError, UsageError
from llmbulk.table_readers import (
    PARQUET_BATCH_ROWS,
    HashingReader,
    csv_rows,
    file_sha256,
    folder_rows,
    jsonl_rows,
    parquet_file,
    parquet_rows,
)
from llmbulk.table_writer import TableWriter

__all__ = [
    "FILE_COLUMNS",
    "FORMATS",
    "PARQUET_BATCH_ROWS",
    "HashingReader",
    "InputTable",
    "TableWriter",
    "check_format_matches",
    "detect_format",
    "file_sha256",
    "not_regular_file",
]

FORMATS = ("csv", "jsonl", "parquet")
_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
FILE_COLUMNS = ("path", "language", "content")


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


class InputTable:
    """An input table on disk: its columns and a streaming row reader."""

    def __init__(self, path: Path, fmt: str | None = None, media: bool = False) -> None:
        self.path = path
        self.media = media  # a folder is read as images and PDFs (attachments), not text files
        self.sha256: str | None = None  # set once the input has been read in full
        if not path.exists():
            raise InputError(f"input file {path} does not exist", hint="check the path")
        if path.is_dir():
            if fmt not in (None, "files"):
                raise InputError(f"input {path} is a directory", hint="pass a CSV, JSONL or Parquet file")
            self.format = "files"
            return
        problem = not_regular_file(path)
        if problem is not None:
            raise InputError(f"input {path} {problem}", hint="save the rows to a CSV, JSONL or Parquet file first")
        self.format = detect_format(path, fmt)

    def columns(self) -> list[str]:
        """Column names, from the header, the first object, or the Parquet schema."""
        if self.format == "files":
            return list(FILE_COLUMNS)
        if self.format == "parquet":
            return list(parquet_file(self.path).schema_arrow.names)
        for row in self.rows():
            return list(row)
        return []

    def rows(self) -> Iterator[dict[str, Any]]:
        """Every row as a dict, in file order; sets `sha256` once the file is fully read."""
        if self.format == "files":
            digest = yield from folder_rows(self.path, self.media)
        else:
            digest = yield from _READERS[self.format](self.path)
        if digest is not None:
            self.sha256 = digest

    def parquet_schema(self) -> Any:
        return parquet_file(self.path).schema_arrow if self.format == "parquet" else None


_READERS = {"csv": csv_rows, "jsonl": jsonl_rows, "parquet": parquet_rows}
