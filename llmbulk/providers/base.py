"""The contract every provider adapter fulfils; no SDK imports here.

Stage code talks to providers only through `BatchProvider`. Capability differences live in
`Limits` (data), never in isinstance checks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from llmbulk.models import BatchRef, BatchState, BatchStatus, ItemOutcome, Limits, Task


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    """How to reach a provider: model, endpoint, base URL and key (the key is never stored)."""

    model: str
    endpoint: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    inline: bool = False
    timeout: float = 600.0
    completion_window: str | None = None  # None: the provider's default window


@dataclass(frozen=True, slots=True)
class ShardInput:
    """A packed shard ready to be sent."""

    shard_id: str
    path: Path
    n_items: int
    n_bytes: int
    sha256: str


@dataclass(frozen=True, slots=True)
class RemoteBatch:
    """A batch the provider lists, with the llmbulk labels it carries (None where it carries none)."""

    batch_id: str
    live: bool  # not yet ended: it may still do (and bill) work
    job_id: str | None = None
    shard_id: str | None = None
    file_ids: tuple[str, ...] = ()  # its input, output and error files
    created_at: float | None = None


@dataclass(frozen=True, slots=True)
class RemoteFile:
    """A file the provider lists; `shard_id` when its name is the one llmbulk gives a shard's upload."""

    file_id: str
    name: str
    shard_id: str | None = None
    created_at: float | None = None


SHARD_ID = re.compile(r"[A-Za-z0-9_]+-s[0-9]{4,}")


def shard_named(name: str | None) -> str | None:
    """The shard id in a name of llmbulk's form (`<job>-sNNNN`), else None."""
    return name if name is not None and SHARD_ID.fullmatch(name) else None


def running(state: BatchState) -> bool:
    """Still doing work a cancel would stop (a batch already cancelling is not)."""
    return not state.terminal and state is not BatchState.CANCELLING


def job_of(shard_id: str) -> str:
    """The job id a shard id starts with."""
    return shard_id.rsplit("-s", 1)[0]


class InputFiles(Protocol):
    """Input-file handling, for a provider whose batches are created from an uploaded file."""

    def upload(self, shard: ShardInput, labels: dict[str, str]) -> str:
        """Upload the shard; returns the provider's file handle."""
        ...

    def find(self, labels: dict[str, str], since: datetime, n_bytes: int) -> list[str]:
        """Input files uploaded for these labels after `since` with this size, newest first.

        A crash between an upload and its record leaves such a file; it is reused, not repeated.
        """
        ...

    def may_have_copies(self, file_id: str) -> bool:
        """Whether this process's upload of `file_id` may have made other copies (the SDK sent it twice)."""
        ...

    def find_many(self, wanted: list[tuple[dict[str, str], int]], since: datetime) -> list[list[str]]:
        """`find` for several uploads (labels, size) in one listing: for each, its files newest first."""
        ...

    def delete(self, file_id: str) -> None:
        """Remove an uploaded file (an input, or a batch's result file)."""
        ...


@dataclass(frozen=True, slots=True)
class MediaFile:
    """An attachment file at the provider (#22): what requests reference, and what `gc` lists."""

    file_id: str
    name: str
    size: int | None
    uri: str | None = None  # what a request references where not the id (Gemini's file URI)
    expires_at: float | None = None  # None: kept until deleted


class MediaFiles(Protocol):
    """A provider's Files API for attachments that requests reference instead of carrying them inline."""

    referable: frozenset[str]  # media types a request can reference by file on this endpoint
    min_valid: float  # seconds a file must still be kept to be referenced by a new batch

    def upload(self, name: str, data: bytes, media_type: str) -> MediaFile:
        """Upload one file (not idempotent: called after an intent record)."""
        ...

    def listing(self) -> Iterator[MediaFile]:
        """Every file the account holds (to find an upload whose answer was lost, and for `gc`)."""
        ...

    def delete(self, file_id: str) -> None:
        """Remove one file."""
        ...


class BatchProvider(Protocol):
    """One provider's native batch API: eight methods; capabilities are data (`limits`, `files`).

    `close` releases the SDK client; it is resource lifecycle, not part of the batch protocol.
    """

    name: str
    limits: Limits
    files: InputFiles | None  # None: requests travel in the create call (Anthropic, Gemini inline)
    media_files: MediaFiles | None  # None: attachments always travel inline

    def encode(self, task: Task, custom_id: str) -> bytes:
        """One native JSONL line (no newline) for one task. Pure."""
        ...

    def decode(self, line: bytes) -> ItemOutcome:
        """One native result line to an outcome. Pure."""
        ...

    def create(self, shard: ShardInput, input_file_id: str | None, labels: dict[str, str]) -> BatchRef:
        """Create the batch. Not idempotent: called with SDK retries off, after an intent record."""
        ...

    def poll(self, batch_ids: list[str]) -> list[BatchStatus]:
        """Current status of each batch, in the same order."""
        ...

    def results(self, status: BatchStatus) -> Iterator[bytes]:
        """Stream every result line (successes and failures) of a terminal batch."""
        ...

    def result_blocks(self, status: BatchStatus) -> Iterator[bytes]:
        """The same results as they arrive, in blocks that each end at the end of a line (what a
        download writes to disk without handling a million lines one at a time)."""
        ...

    def cancel(self, batch_id: str) -> None:
        """Ask the provider to cancel a batch."""
        ...

    def find(self, labels: dict[str, str], since: datetime, n_items: int) -> list[BatchRef]:
        """Remote batches matching these labels created after `since` (orphan reconciliation)."""
        ...

    def inventory(self) -> tuple[list[RemoteBatch], list[RemoteFile]]:
        """Every batch and batch file the account lists (for `gc`); read-only."""
        ...

    def close(self) -> None:
        """Release the SDK client."""
        ...


# Above this many live batches, reading the provider's batch listing (one call per page) beats one
# retrieve per batch; at or below it, the retrieves are as few calls and much smaller answers.
LIST_POLL_THRESHOLD = 3
LIST_POLL_PAGE = (100, 1000)  # page size: at least the first, up to the second (Anthropic's and Gemini's cap)


def listed(
    pages: Callable[[int], Iterable[Iterable[Any]]], id_of: Callable[[Any], str], batch_ids: list[str]
) -> dict[str, Any]:
    """The provider objects of `batch_ids` found in a newest-first listing, read one page at a time.

    `pages(size)` yields the listing's pages lazily (each page is one call). Reading stops once every
    batch is found, the listing ends, or the pages read number at least the batches still missing:
    retrieving those one by one then costs no more calls than paging on. Nothing is listed for a
    few batches (`LIST_POLL_THRESHOLD`). The caller retrieves whatever is not in the answer.
    """
    found: dict[str, Any] = {}
    if len(batch_ids) <= LIST_POLL_THRESHOLD:
        return found
    wanted = set(batch_ids)
    low, high = LIST_POLL_PAGE
    for read, page in enumerate(pages(min(high, max(low, len(wanted)))), start=1):
        for obj in page:
            key = id_of(obj)
            if key in wanted:
                found[key] = obj
        if len(found) == len(wanted) or read >= len(wanted) - len(found):
            break
    return found


def model_params(task: Task, defaults: dict[str, Any]) -> dict[str, Any]:
    """Job-level parameters overridden by the task's own."""
    merged = dict(defaults)
    merged.update(task.params)
    return merged


def transport_errors() -> tuple[type[BaseException], ...]:
    """Connection errors the SDKs let through raw, e.g. a body cut mid-stream (httpx2, or httpx)."""
    classes: list[type[BaseException]] = []
    for module in ("httpx2", "httpx"):
        try:
            classes.append(__import__(module).TransportError)
        except (ImportError, AttributeError):
            continue
    return tuple(classes)


def same_params(params: dict[str, Any], seen: tuple[tuple[str, Any], ...]) -> bool:
    """Whether `params` holds the same names, in the same order, bound to the very same objects.

    Lets an adapter reuse per-job encoding work across tasks. Identity, not equality:
    `1 == 1.0 == True`, yet each is written (and validated) differently.
    """
    if len(params) != len(seen):
        return False
    for (name, value), (seen_name, seen_value) in zip(params.items(), seen):  # noqa: B905 - lengths checked
        if value is not seen_value or name != seen_name:
            return False
    return True


def whole_line_blocks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Byte chunks → blocks that end at a line's end (the rest waits for the next chunk); a last line
    without its newline gets one. Lines stay as sent: blank lines and `\r` are the reader's to skip."""
    pending = b""
    for chunk in chunks:
        cut = chunk.rfind(b"\n")
        if cut < 0:
            pending += chunk
            continue
        yield pending + chunk[: cut + 1]
        pending = chunk[cut + 1 :]
    if pending.strip():
        yield pending + b"\n"


def split_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Byte chunks → JSONL lines without line endings, blank lines dropped (they crash JSONL readers)."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                yield line.rstrip(b"\r")
    if pending.strip():
        yield pending.rstrip(b"\r")
