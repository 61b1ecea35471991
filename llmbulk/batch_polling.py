"""Batches once they exist at the provider: polling, the job's cancel, a quota requeue, the recorded status.

A poll records what the provider reports and returns the state changes; the caller decides what
they mean. Cancelling asks for every live batch; one that ended first is collected as usual.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson

from llmbulk import capacity
from llmbulk.crashpoints import crashpoint
from llmbulk.errors import ProviderError
from llmbulk.leases import JobLease
from llmbulk.models import BatchState, BatchStatus
from llmbulk.providers.base import BatchProvider
from llmbulk.store import Store
from llmbulk.store.schema import Batch, Job

CONFLICT = 409  # "cannot cancel a batch with status 'completed'": it ended before the cancel came

LIVE_STATES = (
    BatchState.VALIDATING.value,
    BatchState.RUNNING.value,
    BatchState.FINALIZING.value,
    BatchState.CANCELLING.value,
)

Sleep = Callable[[float], None]


def poll_batches(
    store: Store, provider: BatchProvider, job: Job, guard: Callable[[], None] | None = None
) -> list[tuple[Batch, BatchStatus]]:
    """Refresh every live batch of the job; returns (batch before, new status) for each state change.

    `guard` runs between the poll and its record (a holder paused there may have lost the job); a
    poll never overwrites a batch whose results another holder has already collected.
    """
    live = [b for b in store.batches(job.id, LIVE_STATES) if b.provider_batch_id]
    changes: list[tuple[Batch, BatchStatus]] = []
    if live:
        statuses = provider.poll([b.provider_batch_id for b in live if b.provider_batch_id])
        crashpoint("mid_poll")
        if guard is not None:
            guard()
        now = time.time()
        for batch, status in zip(live, statuses, strict=True):
            with store.tx() as tx:
                tx.record_poll(batch.id, status, now)
            if status.state.value != batch.state:
                changes.append((batch, status))
    return changes


def status_of(batch: Batch) -> BatchStatus:
    """The last recorded poll of a batch, as the provider adapter reported it."""
    return BatchStatus(
        batch_id=batch.provider_batch_id or batch.id,
        state=BatchState(batch.state),
        raw_status=batch.raw_status or batch.state,
        total=batch.total,
        completed=batch.completed,
        failed=batch.failed,
        result_refs=orjson.loads(batch.result_refs_json) if batch.result_refs_json else {},
        error=batch.error,
        error_code=batch.error_code,
        ended_at=batch.ended_at,
    )


def cancel_batches(store: Store, provider: BatchProvider, job: Job, lease: JobLease) -> list[str]:
    """Ask the provider to cancel every live batch of a job; returns their ids.

    A batch that finished before the cancel reached it (409 and the like) is left as it is: the
    next poll records how it ended and its results are collected like any other's.
    """
    cancelled = []
    for batch in store.batches(job.id, LIVE_STATES):
        if batch.provider_batch_id and batch.state != BatchState.CANCELLING.value:
            lease.guard()
            try:
                provider.cancel(batch.provider_batch_id)
            except ProviderError as exc:
                if exc.retryable and exc.status != CONFLICT:
                    raise
                continue  # no longer cancellable (409 and the like): it ended on its own
            with store.tx() as tx:
                tx.mark_cancelling(batch.id)
            cancelled.append(batch.provider_batch_id)
    return cancelled


def requeue_batch(store: Store, batch: Batch) -> None:
    """A batch refused for quota: its items go back to the queue, not to failure."""
    scope = capacity.scope_of(store.get_job(batch.job_id))
    with store.tx() as tx:
        tx.requeue_batch(batch.id, batch.job_id, batch.shard_id)
        # Our own clock, not the provider's created_at: OpenAI's is whole seconds, and a time truncated
        # below the other grants would count nothing as in flight when this batch was refused.
        tx.observe_quota_refusal(scope, batch.id, at=batch.intent_at)


def next_poll_delay(previous: float | None, initial: float, maximum: float) -> float:
    """Exponential backoff: initial, doubling, capped."""
    return initial if previous is None else min(maximum, previous * 2)
