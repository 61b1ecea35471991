"""Sending a job's unsent shards as batches, within pacing limits, each create fenced by the lease."""

from __future__ import annotations

from typing import Any

from llmbulk import costs
from llmbulk.batches import (
    LIVE_STATES,
    Sending,
    delete_stray_uploads,
    submit_shard,
)
from llmbulk.capacity import QueuedForQuota
from llmbulk.errors import (
    ProviderError,
    QuotaError,
)
from llmbulk.leases import JobLease
from llmbulk.models import BatchState
from llmbulk.session import Session
from llmbulk.store import Store
from llmbulk.store.schema import Job, Shard


def send_unsent(session: Session, job: Job, lease: JobLease) -> tuple[list[str], int]:
    """Create batches for every shard without one; stops at a quota refusal or a cancel request.

    Returns the created batch ids and how many shards still wait (pacing, quota, or another
    holder's create that may still be in flight).
    """
    ctx = session.sending(job, lease)
    try:
        sent = _send_round(session, job, ctx)
    except Exception:  # a refusal or a lost lease ends the round too (an interrupt does not wait for the sweep)
        delete_stray_uploads(ctx)
        raise
    delete_stray_uploads(ctx)  # one files listing per round, for the uploads the SDK sent twice (#23)
    return sent


def _send_round(session: Session, job: Job, ctx: Sending) -> tuple[list[str], int]:
    created: list[str] = []
    unsent = session.store.unsent_shards(job.id)
    pacing = job.spec.pacing
    session.progress.stage("submitting", len(unsent))
    waiting = 0
    for index, shard in enumerate(unsent):
        if session.store.get_job(job.id).cancel_requested:
            return created, len(unsent) - index
        if not room_for(session.store, job, shard, pacing):
            with session.store.tx() as tx:
                tx.leave_capacity_queue(job.id)  # its own pacing holds it: no place to keep in the queue
            session.progress.note(f"{len(unsent) - index} shard(s) wait for earlier batches (pacing limits)")
            return created, len(unsent) - index + waiting
        try:
            batch = submit_shard(ctx, shard)
        except QueuedForQuota as wait:
            session.progress.note(f"{len(unsent) - index} shard(s) queued for quota: {wait.reason}")
            return created, len(unsent) - index + waiting
        except ProviderError as exc:
            if not exc.retryable:
                raise
            # A quota refusal, or a create whose answer was lost (reconciled before the next try).
            name = "batch.requeued" if isinstance(exc, QuotaError) else "batch.create_unconfirmed"
            session.events.emit(name, job.id, shard_id=shard.id, reason=exc.message)
            session.progress.note(f"{exc.message}; {len(unsent) - index} shard(s) stay queued")
            return created, len(unsent) - index + waiting
        if batch is None:  # another holder's create may be in flight, or a found batch is not yet proven
            waiting += 1
            continue
        provider_id = provider_id_of(session.store, batch.id, job.id)
        created.append(provider_id)
        session.events.emit("batch.created", job.id, batch_id=provider_id, shard_id=shard.id, n_items=shard.n_items)
        session.progress.advance()
    return created, waiting


def room_for(store: Store, job: Job, shard: Shard, pacing: dict[str, Any]) -> bool:
    """Whether submitting this shard now stays within --max-active-batches and --max-enqueued-tokens."""
    if not pacing:
        return True
    # An open intent of this very shard is the shard itself, not another batch in flight.
    live = [b for b in store.batches(job.id, [*LIVE_STATES, BatchState.CREATING.value]) if b.shard_id != shard.id]
    if pacing.get("max_active_batches") and len(live) >= pacing["max_active_batches"]:
        return False
    limit = pacing.get("max_enqueued_tokens")
    if limit:
        # The provider's queue limit is per model, whichever job the batches belong to.
        in_flight = store.enqueued_bytes(job.provider, job.model, [*LIVE_STATES, BatchState.CREATING.value])
        if in_flight and (in_flight + shard.n_bytes) / costs.CHARS_PER_TOKEN > limit:
            return False
    return True


def provider_id_of(store: Store, batch_id: str, job_id: str) -> str:
    return next(b.provider_batch_id or b.id for b in store.batches(job_id) if b.id == batch_id)
