"""Submitting shards as provider batches, polling them, cancelling them, reconciling orphans.

Every external side effect is preceded by a committed, fenced intent (the lease is checked in
the same transaction) and followed by a committed outcome, so a process killed or paused at any
point leaves a record the next run can finish from: a batch row in `creating` state means
"create may have happened" and is reconciled through the provider's listing, after its holder's
in-flight window, before anything is created again. A second batch for a shard is cancelled.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from llmbulk.crashpoints import crashpoint
from llmbulk.errors import ProviderError, QuotaError
from llmbulk.leases import JobLease, holder_is_dead
from llmbulk.models import BatchRef, BatchState, BatchStatus, parse_custom_id
from llmbulk.providers.base import BatchProvider, ShardInput
from llmbulk.restore import ensure_shard
from llmbulk.store import Store
from llmbulk.store.schema import Batch, Job, Shard

Emit = Callable[[str, dict[str, Any]], None]
CONFLICT = 409  # "cannot cancel a batch with status 'completed'": it ended before the cancel came

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


@dataclass(frozen=True, slots=True)
class Sending:
    """What sending one job's shards needs: its state, its provider, the lease every call is fenced by."""

    store: Store
    provider: BatchProvider
    job: Job
    home: Path
    lease: JobLease
    inflight_window: float  # how long another holder's create may still be in flight
    emit: Emit


def submit_shard(ctx: Sending, shard: Shard) -> Batch | None:
    """Create a batch for one shard (adopting an orphan if a crashed run created one).

    Returns None when the shard must wait: another holder's create may still be in flight, or a
    batch found at the provider cannot be proven ours or not yet.
    """
    store, provider, job = ctx.store, ctx.provider, ctx.job
    labels = labels_for(job.id, shard.id)
    pending = [b for b in store.batches(job.id, [BatchState.CREATING.value]) if b.shard_id == shard.id]
    if any(_maybe_in_flight(ctx, b) for b in pending):
        return None
    for batch in pending:
        found = _reconcile(ctx, shard, batch, labels)
        if not isinstance(found, _NotFound):
            return found
    source = shard_input(ctx.home, shard)
    ensure_shard(store, provider, job, shard, ctx.home)  # another runner's shard is rebuilt from the input
    reusable_file = next((b.input_file_id for b in pending if b.input_file_id), None)
    if reusable_file is None and pending:  # a crash may have come between an upload and its record
        reusable_file = _adopt_upload(ctx, shard, labels, min(b.intent_at for b in pending))
    batch = Batch(
        id=f"{shard.id}-b{store.batch_attempt_count(shard.id) + 1}",
        job_id=job.id,
        shard_id=shard.id,
        state=BatchState.CREATING.value,
        intent_at=time.time(),
        total=shard.n_items,
        owner=ctx.lease.owner,
        input_file_id=reusable_file,
    )
    with ctx.lease.fenced() as tx:
        # The holder of an earlier intent may have resumed and recorded its batch since we looked.
        landed = tx.intent_with_batch([b.id for b in pending])
        if landed is None:
            tx.add_batch(batch)
            tx.supersede_intents([b.id for b in pending], "no batch found at the provider")
    if landed is not None:
        return next(b for b in pending if b.id == landed)
    crashpoint("after_intent")
    file_id = reusable_file or _upload(ctx, source, shard, labels, batch)
    with ctx.lease.fenced() as tx:  # the create's in-flight window starts now
        tx.touch_intent(batch.id)
    crashpoint("before_create")
    ctx.lease.guard()
    crashpoint("in_create")  # past the guard: a pause here is the window only detection covers
    try:
        ref = provider.create(source, file_id, labels)
        crashpoint("after_create")
    except QuotaError as exc:
        with store.tx() as tx:
            tx.refuse_intent(batch.id, exc.message, error_code="quota")
        raise
    except ProviderError as exc:
        if not exc.retryable:  # a definite refusal: nothing was created
            with store.tx() as tx:
                tx.refuse_intent(batch.id, exc.message)
        raise
    with store.tx() as tx:
        other = tx.mark_submitted(
            batch.id,
            shard.id,
            job.id,
            provider_batch_id=ref.batch_id,
            created_at=ref.created_at or time.time(),
        )
    if other is not None:  # another holder sent this shard while we were paused: ours is the extra one
        _cancel_duplicate(ctx, batch.id, ref.batch_id, shard.id, kept=other, fenced=False)
    return batch


def _maybe_in_flight(ctx: Sending, intent: Batch) -> bool:
    """Whether another holder's create for this intent may still reach the provider.

    Its outcome is unknown until its in-flight window has passed, unless that holder is a dead
    process on this host; our own intents' calls have returned.
    """
    if intent.owner is None or intent.owner == ctx.lease.owner or holder_is_dead(intent.owner):
        return False
    return time.time() < intent.intent_at + ctx.inflight_window


def _upload(ctx: Sending, source: ShardInput, shard: Shard, labels: dict[str, str], batch: Batch) -> str | None:
    crashpoint("before_upload")
    ctx.lease.guard()
    crashpoint("in_upload")
    files = ctx.provider.files
    file_id = files.upload(source, labels) if files is not None else None
    crashpoint("after_upload")
    if file_id is None:
        return None
    with ctx.store.tx() as tx:
        tx.set_input_file(batch.id, file_id)  # a fact: recorded whoever holds the lease
    # The SDK retries uploads: one whose answer was lost is a stray copy.
    _delete_stray_uploads(ctx, shard, labels, batch.intent_at, keep=file_id)
    return file_id


class _NotFound:
    """No batch for the intent exists at the provider: the shard is sent again."""


_NOT_FOUND = _NotFound()


def _reconcile(ctx: Sending, shard: Shard, batch: Batch, labels: dict[str, str]) -> Batch | _NotFound | None:
    """Adopt the batch a lost create made, wait while ownership is unprovable, or report none.

    A batch any job of this database has recorded is never adopted. Where the provider keeps no
    labels (Anthropic), a match by creation time and size is adopted only once its result ids
    prove it carries this shard's items; until it ends, the shard waits rather than risk paying twice.
    """
    store, provider, job = ctx.store, ctx.provider, ctx.job
    since = datetime.fromtimestamp(batch.intent_at, UTC)
    found = provider.find(labels, since, shard.n_items)
    recorded = store.recorded_provider_batches([ref.batch_id for ref in found])
    candidates = [ref for ref in found if ref.batch_id not in recorded]
    owned, unproven = [], False
    for ref in candidates:
        proof = ref.owned if ref.owned is not None else _prove(ctx, shard, ref.batch_id)
        if proof is None:
            unproven = True
        elif proof:
            owned.append(ref)
    if not owned:
        return None if unproven else _NOT_FOUND
    owned.sort(key=lambda ref: ref.created_at or 0.0)
    keep, extras = owned[0], owned[1:]  # the oldest: any later ones are duplicates
    with store.tx() as tx:
        tx.mark_found(
            batch.id,
            shard.id,
            job.id,
            provider_batch_id=keep.batch_id,
            input_file_id=keep.input_file_id or batch.input_file_id,
            created_at=keep.created_at or batch.intent_at,
        )
    for extra in extras:
        _record_and_cancel_duplicate(ctx, shard, extra, kept=keep.batch_id)
    return batch


def _prove(ctx: Sending, shard: Shard, provider_batch_id: str) -> bool | None:
    """Whether a batch carries this shard's items, from its first result id; None until it has results."""
    (status,) = ctx.provider.poll([provider_batch_id])
    if not status.state.terminal:
        return None
    if status.state is BatchState.FAILED:
        return False  # refused as a whole: it processed nothing
    attempts = ctx.store.shard_attempts(ctx.job.id, shard.id)
    for line in ctx.provider.results(status):
        try:
            owner, row, attempt = parse_custom_id(ctx.provider.decode(line).custom_id)
        except ValueError:
            return False
        return owner == ctx.job.id and attempts.get(row) == attempt
    return False  # no results at all: it processed nothing, so it costs nothing either way


def _record_and_cancel_duplicate(ctx: Sending, shard: Shard, ref: BatchRef, kept: str) -> None:
    batch = Batch(
        id=f"{shard.id}-b{ctx.store.batch_attempt_count(shard.id) + 1}",
        job_id=ctx.job.id,
        shard_id=shard.id,
        provider_batch_id=ref.batch_id,
        input_file_id=ref.input_file_id,
        state=BatchState.VALIDATING.value,
        intent_at=ref.created_at or time.time(),
        created_at=ref.created_at,
        total=shard.n_items,
        owner=ctx.lease.owner,
    )
    with ctx.store.tx() as tx:
        tx.add_batch(batch)
    _cancel_duplicate(ctx, batch.id, ref.batch_id, shard.id, kept=kept, fenced=True)


def _cancel_duplicate(ctx: Sending, batch_id: str, provider_id: str, shard_id: str, kept: str, fenced: bool) -> None:
    """Cancel a second provider batch of one shard at once; it is never collected.

    Without the lease (`fenced=False`) only a batch this process has just created is cancelled:
    the shard's other batch, recorded by the holder, answers for its items.
    """
    if fenced:
        ctx.lease.guard()
    with contextlib.suppress(ProviderError):  # already ended: it is still never collected
        ctx.provider.cancel(provider_id)
    with ctx.store.tx() as tx:
        tx.mark_duplicate(batch_id, kept)
    ctx.emit("batch.duplicate_cancelled", {"batch_id": provider_id, "shard_id": shard_id, "kept": kept})


def cancel_duplicates(ctx: Sending) -> list[str]:
    """Cancel every provider batch beyond one per shard (found after a pause or a lost answer)."""
    by_shard: dict[str, list[Batch]] = {}
    for batch in ctx.store.batches(ctx.job.id):
        if _productive(batch):
            by_shard.setdefault(batch.shard_id, []).append(batch)
    cancelled: list[str] = []
    for shard_id, batches in by_shard.items():
        if len(batches) < 2:
            continue
        batches.sort(key=lambda b: (b.collected_at is None, b.created_at or b.intent_at))
        kept = batches[0].provider_batch_id or batches[0].id
        for extra in batches[1:]:
            assert extra.provider_batch_id is not None
            _cancel_duplicate(ctx, extra.id, extra.provider_batch_id, shard_id, kept=kept, fenced=True)
            cancelled.append(extra.provider_batch_id)
    return cancelled


def _productive(batch: Batch) -> bool:
    """Exists at the provider and answers for its shard (the store's PRODUCTIVE, for loaded rows)."""
    return (
        batch.provider_batch_id is not None
        and batch.state not in (BatchState.CREATING.value, BatchState.REQUEUED.value, BatchState.FAILED.value)
        and batch.error_code != "duplicate"
    )


def _adopt_upload(ctx: Sending, shard: Shard, labels: dict[str, str], since: float) -> str | None:
    """The oldest unrecorded upload of this shard, if any; later unreferenced duplicates are deleted."""
    files = ctx.provider.files
    if files is None:
        return None
    found = files.find(labels, datetime.fromtimestamp(since, UTC), shard.n_bytes)
    if not found:
        return None
    _delete_unreferenced(ctx, found[:-1])
    return found[-1]


def _delete_stray_uploads(ctx: Sending, shard: Shard, labels: dict[str, str], since: float, keep: str) -> None:
    files = ctx.provider.files
    if files is None:
        return
    try:
        found = files.find(labels, datetime.fromtimestamp(since, UTC), shard.n_bytes)
    except ProviderError:
        return  # a stray copy costs storage, not money; the next run's search finds it again
    _delete_unreferenced(ctx, [f for f in found if f != keep])


def _delete_unreferenced(ctx: Sending, file_ids: list[str]) -> None:
    """Delete uploads no recorded batch or intent of any job refers to (fenced like every side effect)."""
    files = ctx.provider.files
    if files is None or not file_ids:
        return
    referenced = ctx.store.referenced_files(file_ids)
    for file_id in file_ids:
        if file_id in referenced:
            continue
        ctx.lease.guard()
        with contextlib.suppress(ProviderError):
            files.delete(file_id)


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
    with store.tx() as tx:
        tx.requeue_batch(batch.id, batch.job_id, batch.shard_id)


def next_poll_delay(previous: float | None, initial: float, maximum: float) -> float:
    """Exponential backoff: initial, doubling, capped."""
    return initial if previous is None else min(maximum, previous * 2)


Sleep = Callable[[float], None]
