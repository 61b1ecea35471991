"""Anthropic `MessageBatch` objects → llmbulk's normalized statuses and orphan matches (pure, no calls)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from llmbulk.errors import ProviderError
from llmbulk.models import BatchRef, BatchState, BatchStatus

# `ended` covers normal ends, expiry and cancellation alike; `batch_status` tells cancellation apart
# by `cancel_initiated_at`. Expired items show up as `expired` result lines either way.
STATES: dict[str, BatchState] = {
    "in_progress": BatchState.RUNNING,
    "canceling": BatchState.CANCELLING,
    "ended": BatchState.ENDED,
}


def batch_status(batch: Any) -> BatchStatus:
    """An SDK `MessageBatch` → a normalized status (pure; an unknown status is an error, never a guess)."""
    state = STATES.get(batch.processing_status)
    if state is None:
        raise ProviderError(
            f"Anthropic batch {batch.id} has unknown status {batch.processing_status!r}", hint="upgrade llmbulk"
        )
    if state is BatchState.ENDED and batch.cancel_initiated_at is not None:
        state = BatchState.CANCELLED
    counts = batch.request_counts
    total = _total(counts)
    # Anthropic keeps every bucket but `processing` at 0 until the end: before that, unknown.
    known = batch.processing_status == "ended"
    return BatchStatus(
        batch_id=batch.id,
        state=state,
        raw_status=batch.processing_status,
        total=total,
        completed=total - counts.processing if known else None,
        failed=counts.errored + counts.canceled + counts.expired if known else None,
        counts_known=known,
        result_refs={"results_url": batch.results_url} if known and batch.results_url else {},
        ended_at=seconds(batch.ended_at) if batch.ended_at else None,
        raw=batch.model_dump(mode="json"),
    )


def match_batches(batches: Iterable[Any], cutoff: float, n_items: int) -> list[BatchRef]:
    """Batches (newest first) created at/after `cutoff` holding exactly `n_items` requests."""
    found: list[BatchRef] = []
    for batch in batches:
        created = seconds(batch.created_at)
        if created < cutoff:
            break  # newest first: everything after this is older, so stop paging
        if _total(batch.request_counts) == n_items:
            # A match by shape only: its result ids must prove it is ours before it is adopted.
            found.append(BatchRef(provider="anthropic", batch_id=batch.id, created_at=created, owned=None))
    return found


def seconds(moment: datetime) -> float:
    """UNIX seconds; a naive datetime is taken as UTC (the API sends RFC 3339 with a zone)."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _total(counts: Any) -> int:
    return int(counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired)
