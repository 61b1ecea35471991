"""Tasks → provider-native JSONL shards, split by request count and bytes, written atomically.

A shard is written to a temporary name, fsynced and renamed, with its sha256 computed on the
way. Item keys go to a sink in chunks as lines are written, so memory stays flat even for a
provider whose batches hold a million requests.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from llmbulk.errors import InputError
from llmbulk.models import Limits, Task, make_custom_id

ITEM_CHUNK = 10_000  # item keys handed to the sink at a time
WRITE_BLOCK = 1 << 20  # bytes of lines gathered before one write (and hash update)

ItemSink = Callable[[int, list[tuple[int, str, str | None]]], None]
"""Receives (shard seq, [(row, key, request key), ...]) for items as their lines are written."""


@dataclass(frozen=True, slots=True)
class PackedShard:
    """One finished shard file."""

    seq: int
    path: Path
    sha256: str
    n_bytes: int
    n_items: int


class _ShardFile:
    def __init__(self, directory: Path, seq: int, sink: ItemSink) -> None:
        self.seq = seq
        self.path = directory / f"{seq:05d}.jsonl"
        self.tmp = directory / f".{seq:05d}.jsonl.tmp"
        self.fh: IO[bytes] = open(self.tmp, "wb")  # noqa: SIM115 - closed in finish/abort
        self.digest = hashlib.sha256()
        self.n_bytes = 0
        self.n_items = 0
        self.sink = sink
        self.pending: list[tuple[int, str, str | None]] = []
        # Lines not yet written: one write and one hash update per block instead of per line.
        self.lines: list[bytes] = []
        self.buffered = 0

    def add(self, line: bytes, row: int, key: str, request_key: str | None) -> None:
        self.lines.append(line)
        self.buffered += len(line)
        self.n_bytes += len(line)
        self.n_items += 1
        self.pending.append((row, key, request_key))
        if len(self.pending) >= ITEM_CHUNK:
            self.flush_items()
        elif self.buffered >= WRITE_BLOCK:
            self.flush_lines()

    def flush_lines(self) -> None:
        block = b"".join(self.lines)
        self.lines = []
        self.buffered = 0
        self.fh.write(block)
        self.digest.update(block)

    def flush_items(self) -> None:
        self.flush_lines()
        if self.pending:
            self.sink(self.seq, self.pending)
            self.pending = []

    def finish(self) -> PackedShard:
        self.flush_items()
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        os.replace(self.tmp, self.path)
        sha256 = self.digest.hexdigest()
        _remember(self.path, sha256)
        return PackedShard(self.seq, self.path, sha256, self.n_bytes, self.n_items)

    def abort(self) -> None:
        self.fh.close()
        self.tmp.unlink(missing_ok=True)


def write_shards(
    tasks: Iterator[Task],
    encode: Callable[[Task, str], bytes],
    job_id: str,
    limits: Limits,
    directory: Path,
    sink: ItemSink,
    first_seq: int = 1,
    attempt_of: Callable[[int], int] | None = None,
) -> Iterator[PackedShard]:
    """Pack tasks into shards within `limits`, yielding each shard once it is on disk.

    Every item's (row, key, request key) reaches `sink` before its shard is yielded. `attempt_of(row)` gives
    each item's attempt number (1 when not given).
    """
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    seq = first_seq
    current: _ShardFile | None = None
    max_items, max_bytes = limits.max_items, limits.max_bytes
    cap = _request_cap(limits)
    try:
        for task in tasks:
            row = task.row_index
            line = encode(task, make_custom_id(job_id, row, 1 if attempt_of is None else attempt_of(row))) + b"\n"
            size = len(line)
            if size > cap:
                raise _too_large(task, size, cap)
            if current is not None and (current.n_items >= max_items or current.n_bytes + size > max_bytes):
                yield current.finish()
                current = None
                seq += 1
            if current is None:
                current = _ShardFile(directory, seq, sink)
            current.add(line, row, task.key, task.request_key)
        if current is not None:
            yield current.finish()
            current = None
    finally:
        if current is not None:
            current.abort()


def _request_cap(limits: Limits) -> int:
    """The most bytes one request line may take."""
    return min(limits.max_bytes, limits.max_request_bytes or limits.max_bytes)


def _too_large(task: Task, size: int, cap: int) -> InputError:
    return InputError(
        f"item {task.key!r} (row {task.row_index + 1}) is {size:,} bytes as a request, "
        f"over the {cap:,}-byte limit per request",
        hint="shorten that row's text, or raise --max-bytes-per-batch if a lower cap was set",
    )


# Shard files this process wrote, with the hash computed while writing and the file's identity
# then (inode, size, mtime): checking such a file again needs a stat, not a second read.
_WRITTEN: dict[Path, tuple[str, tuple[int, int, int]]] = {}


def _identity(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_ino, st.st_size, st.st_mtime_ns


def _remember(path: Path, sha256: str) -> None:
    _WRITTEN[path.resolve()] = (sha256, _identity(path))


def verify_shard(path: Path, sha256: str) -> bool:
    """Whether a shard file is present and unchanged since it was packed."""
    if not path.exists():
        return False
    written = _WRITTEN.get(path.resolve())
    if written is not None and written == (sha256, _identity(path)):
        return True  # written by this process with this hash, and not replaced or touched since
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest() == sha256
