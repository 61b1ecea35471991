"""What a job looks like to a reader: its batches and item counts, as plain data.

Shared by the library API (`llmbulk.status`) and the quick reader behind `llmbulk status`, so
it imports nothing heavier than the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from llmbulk.capacity import QuotaWait
from llmbulk.errors import ExitStatus
from llmbulk.states import JobState

OPEN_ITEM_STATES = ("pending", "queued", "submitted", "failed_retryable")
SETTLED_ITEM_STATES = ("succeeded", "failed_permanent", "dead")
TERMINAL_BATCH_STATES = frozenset({"ended", "failed", "expired", "cancelled", "requeued"})
LIVE_BATCH_STATES = frozenset({"creating", "validating", "running", "finalizing", "cancelling"})


class JobRecord(Protocol):
    """The job fields a status shows (the store's Job row, or the quick reader's)."""

    id: str
    created_at: float
    provider: str
    model: str
    state: str
    n_items: int
    emulated: bool
    input_path: str
    out_path: str | None


@dataclass(frozen=True, slots=True)
class BatchView:
    """One batch as recorded."""

    id: str
    shard_id: str
    provider_batch_id: str | None
    state: str
    raw_status: str | None
    total: int | None
    completed: int | None
    failed: int | None
    counts_known: bool
    created_at: float | None
    ended_at: float | None
    polled_at: float | None
    collected: bool
    error: str | None


def batch_view(batch: Any, counts_live: bool) -> BatchView:
    """A batch row (an object with the batches table's columns as attributes) as a view."""
    terminal = batch.state in TERMINAL_BATCH_STATES
    return BatchView(
        id=batch.id,
        shard_id=batch.shard_id,
        provider_batch_id=batch.provider_batch_id,
        state=batch.state,
        raw_status=batch.raw_status,
        total=batch.total,
        completed=batch.completed,
        failed=batch.failed,
        counts_known=(counts_live or terminal) and batch.completed is not None,
        created_at=batch.created_at,
        ended_at=batch.ended_at,
        polled_at=batch.polled_at,
        collected=batch.collected_at is not None,
        error=batch.error,
    )


@dataclass(frozen=True, slots=True)
class JobStatus:
    """A job's state: item counts by state, batches, errors."""

    job: JobRecord
    counts: dict[str, int]
    batches: list[BatchView]
    errors: list[tuple[str, str, int]]
    usage: dict[str, int]
    dead: list[dict[str, Any]]
    unsent_shards: int
    quota: QuotaWait | None = None  # its shards waiting for room in their capacity scope

    @property
    def finished(self) -> bool:
        """No item is waiting or in flight, and nothing retryable is left."""
        return not any(self.counts.get(s, 0) for s in OPEN_ITEM_STATES)

    @property
    def settled(self) -> int:
        return sum(self.counts.get(s, 0) for s in SETTLED_ITEM_STATES)

    @property
    def progress(self) -> float | None:
        """Fraction of items with a final outcome."""
        return self.settled / self.job.n_items if self.job.n_items else None


def exit_status(status: JobStatus) -> ExitStatus:
    """What `status`, `collect` and `run` exit with: cancelled, done, done with failed or dead items, or running."""
    if status.job.state == JobState.CANCELLED:
        return ExitStatus.CANCELLED
    if not status.finished:
        return ExitStatus.RUNNING
    failed = status.counts.get("failed_permanent", 0) + status.counts.get("dead", 0)
    return ExitStatus.DONE_WITH_FAILURES if failed else ExitStatus.DONE
