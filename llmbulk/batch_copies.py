"""Copies at the provider beyond one per shard: a second batch is cancelled, a stray upload deleted.

A pause, a lost answer or the SDK's own retries can leave a shard with two batches or two
uploads. The oldest batch answers for the shard; any other is cancelled at once and never
collected. An upload no recorded batch or intent refers to is adopted (the oldest) or deleted.
"""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime

from llmbulk.errors import LeaseError, ProviderError
from llmbulk.models import BatchRef, BatchState
from llmbulk.sending import Sending
from llmbulk.store.schema import Batch, Shard


def record_and_cancel_duplicate(ctx: Sending, shard: Shard, ref: BatchRef, kept: str) -> None:
    """Record a duplicate found at the provider as a batch of the shard, then cancel it."""
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
    cancel_duplicate(ctx, batch.id, ref.batch_id, shard.id, kept=kept, fenced=True)


def cancel_duplicate(ctx: Sending, batch_id: str, provider_id: str, shard_id: str, kept: str, fenced: bool) -> None:
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
            cancel_duplicate(ctx, extra.id, extra.provider_batch_id, shard_id, kept=kept, fenced=True)
            cancelled.append(extra.provider_batch_id)
    return cancelled


def _productive(batch: Batch) -> bool:
    """Exists at the provider and answers for its shard (the store's PRODUCTIVE, for loaded rows)."""
    return (
        batch.provider_batch_id is not None
        and batch.state not in (BatchState.CREATING.value, BatchState.REQUEUED.value, BatchState.FAILED.value)
        and batch.error_code != "duplicate"
    )


def adopt_upload(ctx: Sending, shard: Shard, labels: dict[str, str], since: float) -> str | None:
    """The oldest unrecorded upload of this shard, if any; later unreferenced duplicates are deleted."""
    files = ctx.provider.files
    if files is None:
        return None
    found = files.find(labels, datetime.fromtimestamp(since, UTC), shard.n_bytes)
    if not found:
        return None
    _delete_unreferenced(ctx, found[:-1])
    return found[-1]


def delete_stray_uploads(ctx: Sending) -> None:
    """Delete stray copies of this round's uploads (the SDK retried one whose answer was lost).

    Only uploads the adapter says may have copies are looked for (OpenAI: those the SDK sent more than
    once, so a round without a lost answer lists nothing; Gemini: every one). One files listing for the
    whole round, not one per upload (#23): a copy is a file with an upload's
    shard name and size, made since its intent, other than the copy recorded, that nothing refers to.
    Called once the round ends, however it ends; without the lease nothing is deleted (fenced), and a
    failed listing only leaves the copies to `gc` (a stray copy costs storage, not money).
    """
    files, uploads = ctx.provider.files, list(ctx.uploads)
    ctx.uploads.clear()
    if files is None or not uploads:
        return
    wanted = [(upload.labels, upload.shard.n_bytes) for upload in uploads]
    since = datetime.fromtimestamp(min(upload.since for upload in uploads), UTC)
    try:
        found = files.find_many(wanted, since)
    except ProviderError:
        return
    kept = {upload.file_id for upload in uploads}
    strays = [file_id for copies in found for file_id in copies if file_id not in kept]
    with contextlib.suppress(LeaseError):  # the lease is lost: another holder owns the job's side effects now
        _delete_unreferenced(ctx, strays)


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
