"""Submitting shards as provider batches, and reconciling a create whose answer was lost.

Every external side effect is preceded by a committed, fenced intent (the lease is checked in
the same transaction) and followed by a committed outcome, so a process killed or paused at any
point leaves a record the next run can finish from: a batch row in `creating` state means
"create may have happened" and is reconciled through the provider's listing, after its holder's
in-flight window, before anything is created again. A second batch for a shard is cancelled
(`batch_copies`); polling and cancelling live batches is `batch_polling` (both re-exported here,
with the `Sending` context from `sending`).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from llmbulk import capacity
from llmbulk.batch_copies import (
    adopt_upload,
    cancel_duplicate,
    cancel_duplicates,
    delete_stray_uploads,
    record_and_cancel_duplicate,
)
from llmbulk.batch_polling import (
    CONFLICT,
    LIVE_STATES,
    Sleep,
    cancel_batches,
    next_poll_delay,
    poll_batches,
    requeue_batch,
    status_of,
)
from llmbulk.crashpoints import crashpoint
from llmbulk.errors import ProviderError, QuotaError
from llmbulk.leases import holder_is_dead
from llmbulk.models import BatchState, parse_custom_id
from llmbulk.providers.base import ShardInput
from llmbulk.restore import ensure_shard
from llmbulk.sending import Emit, Sending, Upload, labels_for, shard_input
from llmbulk.store.capacity import Reservation
from llmbulk.store.schema import Batch, Shard

__all__ = [
    "CONFLICT",
    "LIVE_STATES",
    "Emit",
    "Sending",
    "Sleep",
    "cancel_batches",
    "cancel_duplicates",
    "delete_stray_uploads",
    "labels_for",
    "next_poll_delay",
    "poll_batches",
    "requeue_batch",
    "shard_input",
    "status_of",
    "submit_shard",
]


def submit_shard(ctx: Sending, shard: Shard) -> Batch | None:
    """Create a batch for one shard (adopting an orphan if a crashed run created one).

    Returns None when the shard must wait: another holder's create may still be in flight, or a
    batch found at the provider cannot be proven ours or not yet.
    """
    store, job = ctx.store, ctx.job
    labels = labels_for(job.id, shard.id)
    pending = [b for b in store.batches(job.id, [BatchState.CREATING.value]) if b.shard_id == shard.id]
    if any(_maybe_in_flight(ctx, b) for b in pending):
        return None
    for batch in pending:
        found = _reconcile(ctx, shard, batch, labels)
        if not isinstance(found, _NotFound):
            return found
    source = shard_input(ctx.home, shard)
    ensure_shard(store, ctx.provider, job, shard, ctx.home)  # another runner's shard is rebuilt from the input
    reusable_file = next((b.input_file_id for b in pending if b.input_file_id), None)
    if reusable_file is None and pending:  # a crash may have come between an upload and its record
        reusable_file = adopt_upload(ctx, shard, labels, min(b.intent_at for b in pending))
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
    landed = _record_intent(ctx, shard, pending, batch)
    if landed is not None:
        return landed
    crashpoint("after_intent")
    file_id = reusable_file or _upload(ctx, source, shard, labels, batch)
    return _create(ctx, shard, batch, source, file_id, labels)


def _record_intent(ctx: Sending, shard: Shard, pending: list[Batch], batch: Batch) -> Batch | None:
    """Record the create intent with its room in the scope, fenced; returns an earlier intent's batch
    that landed meanwhile instead, or raises QueuedForQuota when the scope has no room."""
    scope = capacity.scope_of(ctx.job)
    with ctx.lease.fenced() as tx:
        # The holder of an earlier intent may have resumed and recorded its batch since we looked.
        landed = tx.intent_with_batch([b.id for b in pending])
        waits = None
        if landed is None:
            tx.supersede_intents([b.id for b in pending], "no batch found at the provider")
            ask = _reservation(ctx, shard, batch.id, scope, uploads=batch.input_file_id is None)
            waits = tx.reserve_capacity(ask)
            if waits is None:
                tx.add_batch(batch)
    if landed is not None:
        return next(b for b in pending if b.id == landed)
    if waits is not None:
        raise capacity.QueuedForQuota(waits)
    return None


def _create(ctx: Sending, shard: Shard, batch: Batch, source: ShardInput, file_id: str | None,
            labels: dict[str, str]) -> Batch:  # fmt: skip
    """The create call of a recorded intent, and its outcome recorded."""
    with ctx.lease.fenced() as tx:  # the create's in-flight window starts now
        tx.touch_intent(batch.id)
    crashpoint("before_create")
    ctx.lease.guard()
    crashpoint("in_create")  # past the guard: a pause here is the window only detection covers
    try:
        ref = ctx.provider.create(source, file_id, labels)
        crashpoint("after_create")
    except ProviderError as exc:
        if isinstance(exc, QuotaError) or not exc.retryable:  # a definite refusal: nothing was created
            _refused(ctx, batch, exc)
        raise
    with ctx.store.tx() as tx:
        other = tx.mark_submitted(batch.id, shard.id, ctx.job.id, provider_batch_id=ref.batch_id,
                                  created_at=ref.created_at or time.time())  # fmt: skip
    if other is not None:  # another holder sent this shard while we were paused: ours is the extra one
        cancel_duplicate(ctx, batch.id, ref.batch_id, shard.id, kept=other, fenced=False)
    return batch


def _refused(ctx: Sending, batch: Batch, exc: ProviderError, upload: bool = False) -> None:
    """Record a definite refusal of the intent's upload or create; a quota refusal also tells the scope.

    Recorded only while the lease holds: a runner paused with its call in flight (whose late request
    found, say, its input file deleted by the runner that finished the job meanwhile) stops on its
    lost lease, touching nothing.
    """
    quota = isinstance(exc, QuotaError)
    with ctx.lease.fenced() as tx:
        tx.refuse_intent(batch.id, exc.message, error_code="quota" if quota else None)
        if quota:
            tx.observe_quota_refusal(capacity.scope_of(ctx.job), batch.id, at=time.time(), files=upload)


def _reservation(ctx: Sending, shard: Shard, batch_id: str, scope: capacity.Scope, uploads: bool) -> Reservation:
    job = ctx.job
    return Reservation(
        scope=scope,
        job_id=job.id,
        shard_id=shard.id,
        batch_id=batch_id,
        tokens=capacity.shard_tokens(shard.n_bytes),
        priority=int(job.spec.pacing.get("priority") or 0),
        submitted_at=job.created_at,
        stale_after=capacity.STALE_WAIT,
        uploads=uploads and ctx.provider.files is not None,
    )


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
    try:
        file_id = files.upload(source, labels) if files is not None else None
    except QuotaError as exc:  # the provider's file quota: the shard waits, its items keep their attempts
        _refused(ctx, batch, exc, upload=True)
        raise
    crashpoint("after_upload")
    if file_id is None:
        return None
    with ctx.store.tx() as tx:
        tx.set_input_file(batch.id, file_id)  # a fact: recorded whoever holds the lease
    # The SDK retries uploads: one whose answer was lost leaves a stray copy, found and deleted with
    # every other such upload of this round in one files listing when the round ends (`delete_stray_uploads`).
    if files is not None and files.may_have_copies(file_id):
        ctx.uploads.append(Upload(shard, labels, batch.intent_at, file_id))
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
        record_and_cancel_duplicate(ctx, shard, extra, kept=keep.batch_id)
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
