"""Submitting shards as provider batches, polling them, cancelling them, reconciling orphans.

Every external side effect is preceded by a committed intent and followed by a committed
outcome, so a process killed at any point leaves a record the next run can finish from: a
batch row in `creating` state means "create may have happened" and is reconciled through the
provider's listing before anything is created again.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson

from llmbulk.crashpoints import crashpoint
from llmbulk.errors import ProviderError, QuotaError
from llmbulk.models import BatchState, BatchStatus
from llmbulk.providers.base import BatchProvider, ShardInput
from llmbulk.restore import ensure_shard
from llmbulk.store import Store
from llmbulk.store.schema import Batch, Job, Shard

LIVE_STATES = (
    BatchState.VALIDATING.value,
    BatchState.RUNNING.value,
    BatchState.FINALIZING.value,
    BatchState.CANCELLING.value,
)


def labels_for(job_id: str, shard_id: str) -> dict[str, str]:
    """Labels stamped on every batch so a crashed run can find it again."""
    return {"llmbulk_job": job_id, "llmbulk_shard": shard_id}


def shard_input(home: Path, shard: Shard) -> ShardInput:
    return ShardInput(shard.id, home / shard.path, shard.n_items, shard.n_bytes, shard.sha256)


def submit_shard(store: Store, provider: BatchProvider, job: Job, shard: Shard, home: Path) -> Batch | None:
    """Create a batch for one shard (adopting an orphan if a crashed run created one)."""
    labels = labels_for(job.id, shard.id)
    pending = [b for b in store.batches(job.id, [BatchState.CREATING.value]) if b.shard_id == shard.id]
    for batch in pending:
        adopted = _reconcile(store, provider, job, shard, batch, labels)
        if adopted is not None:
            return adopted
    source = shard_input(home, shard)
    ensure_shard(store, provider, job, shard, home)  # another runner's shard is rebuilt from the input
    reusable_file = next((b.input_file_id for b in pending if b.input_file_id), None)
    if reusable_file is None and pending:  # a crash may have come between an upload and its record
        reusable_file = _adopt_upload(provider, shard, labels, min(b.intent_at for b in pending))
    batch = Batch(
        id=f"{shard.id}-b{store.batch_attempt_count(shard.id) + 1}",
        job_id=job.id,
        shard_id=shard.id,
        state=BatchState.CREATING.value,
        intent_at=time.time(),
        total=shard.n_items,
    )
    store.add_batch(batch)
    crashpoint("after_intent")
    for old in pending:  # superseded intents whose create never happened
        store.update_batch(old.id, state=BatchState.REQUEUED.value, error="no batch found at the provider")
    file_id = reusable_file
    if file_id is None:
        file_id = provider.upload(source, labels)
        if file_id is not None:  # the SDK retries uploads: one whose answer was lost is a stray copy
            _delete_stray_uploads(provider, shard, labels, batch.intent_at, keep=file_id)
    crashpoint("after_upload")
    if file_id is not None:
        store.update_batch(batch.id, input_file_id=file_id)
    try:
        ref = provider.create(source, file_id, labels)
        crashpoint("after_create")
    except QuotaError as exc:
        store.update_batch(batch.id, state=BatchState.REQUEUED.value, error=exc.message, error_code="quota")
        raise
    except ProviderError as exc:
        if not exc.retryable:  # a definite refusal: nothing was created
            store.update_batch(batch.id, state=BatchState.REQUEUED.value, error=exc.message)
        raise
    store.mark_submitted(
        batch.id,
        shard.id,
        job.id,
        provider_batch_id=ref.batch_id,
        state=BatchState.VALIDATING.value,
        created_at=ref.created_at or time.time(),
    )
    return batch


def _reconcile(
    store: Store, provider: BatchProvider, job: Job, shard: Shard, batch: Batch, labels: dict[str, str]
) -> Batch | None:
    since = datetime.fromtimestamp(batch.intent_at, UTC)
    # A batch another shard already owns is never adopted: Anthropic's batches carry no labels, so
    # a later shard of the same size created since this intent would otherwise match.
    owned = {b.provider_batch_id for b in store.batches(job.id) if b.provider_batch_id}
    found = [ref for ref in provider.find(labels, since, shard.n_items) if ref.batch_id not in owned]
    if not found:
        return None
    ref = found[-1]  # the oldest match: any later ones would be duplicates we must not adopt twice
    store.mark_submitted(
        batch.id,
        shard.id,
        job.id,
        provider_batch_id=ref.batch_id,
        input_file_id=ref.input_file_id or batch.input_file_id,
        state=BatchState.VALIDATING.value,
        created_at=ref.created_at or batch.intent_at,
    )
    return batch


def _adopt_upload(provider: BatchProvider, shard: Shard, labels: dict[str, str], since: float) -> str | None:
    """The oldest unrecorded upload of this shard, if any; later duplicates are deleted."""
    found = provider.find_uploads(labels, datetime.fromtimestamp(since, UTC), shard.n_bytes)
    if not found:
        return None
    for extra in found[:-1]:  # referenced by nothing: no batch was found for this shard
        with contextlib.suppress(ProviderError):
            provider.delete_file(extra)
    return found[-1]


def _delete_stray_uploads(
    provider: BatchProvider, shard: Shard, labels: dict[str, str], since: float, keep: str
) -> None:
    try:
        found = provider.find_uploads(labels, datetime.fromtimestamp(since, UTC), shard.n_bytes)
    except ProviderError:
        return  # a stray copy costs storage, not money; the next run's search finds it again
    for stray in found:
        if stray != keep:
            with contextlib.suppress(ProviderError):
                provider.delete_file(stray)


def poll_batches(store: Store, provider: BatchProvider, job: Job) -> list[tuple[Batch, BatchStatus]]:
    """Refresh every live batch of the job; returns (batch before, new status) for each state change."""
    live = [b for b in store.batches(job.id, LIVE_STATES) if b.provider_batch_id]
    changes: list[tuple[Batch, BatchStatus]] = []
    if live:
        statuses = provider.poll([b.provider_batch_id for b in live if b.provider_batch_id])
        now = time.time()
        for batch, status in zip(live, statuses, strict=True):
            store.update_batch(batch.id, **_status_values(status, now))
            if status.state.value != batch.state:
                changes.append((batch, status))
    return changes


def _status_values(status: BatchStatus, now: float) -> dict[str, object]:
    values: dict[str, object] = {
        "state": status.state.value,
        "raw_status": status.raw_status,
        "completed": status.completed if status.counts_known else None,
        "failed": status.failed if status.counts_known else None,
        "error": status.error,
        "error_code": status.error_code,
        "result_refs_json": orjson.dumps(status.result_refs).decode(),
        "ended_at": status.ended_at or (now if status.state.terminal else None),
        "polled_at": now,
        "raw_json": orjson.dumps(status.raw).decode(),
    }
    if status.total is not None:  # providers that hide counts must not erase the shard's size
        values["total"] = status.total
    return values


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


def cancel_batches(store: Store, provider: BatchProvider, job: Job) -> list[str]:
    """Ask the provider to cancel every live batch of a job; returns their ids."""
    cancelled = []
    for batch in store.batches(job.id, LIVE_STATES):
        if batch.provider_batch_id and batch.state != BatchState.CANCELLING.value:
            provider.cancel(batch.provider_batch_id)
            store.update_batch(batch.id, state=BatchState.CANCELLING.value)
            cancelled.append(batch.provider_batch_id)
    return cancelled


def requeue_batch(store: Store, batch: Batch) -> None:
    """A batch refused for quota: its items go back to the queue, not to failure."""
    store.requeue_batch(batch.id, batch.job_id, batch.shard_id)


def next_poll_delay(previous: float | None, initial: float, maximum: float) -> float:
    """Exponential backoff: initial, doubling, capped."""
    return initial if previous is None else min(maximum, previous * 2)


Sleep = Callable[[float], None]
