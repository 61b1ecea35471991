"""`status` and `collect`: poll the provider, record finished batches' results, write the output table."""

from __future__ import annotations

from pathlib import Path

from llmbulk import providers
from llmbulk.batches import (
    LIVE_STATES,
    cancel_duplicates,
    poll_batches,
)
from llmbulk.config import Settings
from llmbulk.jobs.cleanup import delete_used_files, keep_files_from_now
from llmbulk.jobs.pack import reporter
from llmbulk.jobs.types import CollectResult
from llmbulk.leases import JobLease
from llmbulk.merge import MergeSummary, resolve_output, write_output
from llmbulk.models import BatchState, ItemState
from llmbulk.progress import NO_PROGRESS, Progress
from llmbulk.results import REQUEUE_CODES, collect_batch
from llmbulk.session import Session, current_job, logged, open_session
from llmbulk.store import Store
from llmbulk.store.schema import Job
from llmbulk.views import JobStatus, batch_view

TROUBLED_ROUNDS_MAX = 10  # rounds in a row whose provider calls failed after the SDK's retries


def status(
    job_id: str, *, refresh: bool = False, settings: Settings | None = None, progress: Progress = NO_PROGRESS
) -> JobStatus:
    """The job's item counts and batches from the state database (`refresh` polls the provider first)."""
    with open_session(settings, progress) as session:
        job = session.store.get_job(job_id)
        if refresh:
            poll(session, job)
        return job_status(session.store, job)


def job_status(store: Store, job: Job) -> JobStatus:
    counts_live = providers.limits(job.provider).counts_live
    views = [batch_view(b, counts_live) for b in store.batches(job.id)]
    return JobStatus(
        job=store.get_job(job.id),
        counts=store.item_counts(job.id),
        batches=views,
        errors=store.error_counts(job.id),
        usage=store.usage_totals(job.id),
        dead=store.items_in_state(job.id, ItemState.DEAD.value, limit=20),
        unsent_shards=len(store.unsent_shards(job.id)),
        quota=store.quota_wait(job.id),
    )


def collect(
    job_id: str,
    out: Path | None = None,
    fmt: str | None = None,
    *,
    refresh: bool = True,
    wait_lock: float = 0.0,
    explode: str | None = None,
    keep_files: bool = False,
    settings: Settings | None = None,
    progress: Progress = NO_PROGRESS,
) -> CollectResult:
    """Poll, record the results of every finished batch, and write the output table.

    Files at the provider are deleted once collected unless `keep_files` (then kept with the job).
    """
    with open_session(settings, progress) as session:
        session.explode = explode
        job = session.store.get_job(job_id)
        if keep_files:
            job = keep_files_from_now(session.store, job)
        current_job.set(job.id)
        path, fmt = resolve_output(job, out, fmt)
        with session.lease(job.id, wait=wait_lock) as lease, logged(session, job.id):
            collected = poll_and_collect(session, job, refresh, lease)
            lease.guard()
            summary = write_table(session, job, path, fmt)
        return CollectResult(job.id, collected, summary, job_status(session.store, job))


def poll_and_collect(session: Session, job: Job, refresh: bool, lease: JobLease) -> list[str]:
    """Poll, record every finished batch's results, then delete the files at the provider they no longer need."""
    collected = _poll_and_collect(session, job, refresh, lease)
    for warning in delete_used_files(session, session.store.get_job(job.id), lease):
        session.progress.note(f"warning: {warning} (it expires there anyway; `llmbulk gc` lists it)")
    return collected


def _poll_and_collect(session: Session, job: Job, refresh: bool, lease: JobLease) -> list[str]:
    store = session.store
    cancel_duplicates(session.sending(job, lease))
    pending = [
        b for b in store.batches(job.id) if b.collected_at is None and b.state not in (BatchState.CREATING.value,)
    ]
    if not pending:
        return []
    provider = session.provider(job)
    if refresh and any(b.state in LIVE_STATES for b in pending):
        poll(session, job, lease)
    collected: list[str] = []
    finished = [b for b in store.batches(job.id) if b.collected_at is None and BatchState(b.state).terminal]
    for batch in finished:
        if batch.state == BatchState.REQUEUED.value:
            continue
        lease.guard()
        session.progress.stage(f"collecting {batch.provider_batch_id}", batch.total)
        report = reporter(session, job.id, f"collect {batch.provider_batch_id}", batch.total)
        lines = collect_batch(store, provider, job, batch, session.job_dir(job.id), report)
        collected.append(batch.provider_batch_id or batch.id)
        session.events.emit("batch.collected", job.id, batch_id=batch.provider_batch_id, state=batch.state, **lines)
    if collected:
        session.events.emit("job.progress", job.id, counts=store.item_counts(job.id))
    return collected


def poll(session: Session, job: Job, lease: JobLease | None = None) -> None:
    """Poll live batches and emit an event for every state change."""
    guard = lease.guard if lease is not None else None
    for before, status in poll_batches(session.store, session.provider(job), job, guard):
        name = "ended" if status.state is BatchState.ENDED else status.state.value
        if status.state is BatchState.FAILED and status.error_code in REQUEUE_CODES:
            name = "requeued"  # a quota refusal: the shard goes back to the queue, no item failed
        latency = (status.ended_at - before.created_at) if status.ended_at and before.created_at else None
        session.events.emit(
            f"batch.{name}",
            job.id,
            batch_id=before.provider_batch_id,
            previous=before.state,
            raw_status=status.raw_status,
            total=status.total,
            error=status.error,
            latency_seconds=latency,
        )


def write_table(session: Session, job: Job, path: Path | None, fmt: str, explode: str | None = None) -> MergeSummary:
    session.progress.stage("writing output", job.n_items)
    summary = write_output(session.store, job, path, fmt, explode or session.explode)
    if path is not None:
        with session.store.tx() as tx:
            tx.set_out_path(job.id, str(path.resolve()))
    return summary
