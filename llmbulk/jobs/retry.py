"""`retry`: resend only the failed-retryable items of a job, in new shards."""

from __future__ import annotations

import time

from llmbulk import restore
from llmbulk.attachments.uploads import account_of, recorded_refs, with_refs
from llmbulk.config import Settings
from llmbulk.errors import (
    InputError,
)
from llmbulk.jobs.cancel import cancelled_error, reactivate
from llmbulk.jobs.pack import shard_id_for, shard_row
from llmbulk.jobs.send import send_unsent
from llmbulk.jobs.types import RetryResult, ShardPlan
from llmbulk.leases import JobLease
from llmbulk.models import JobState, Limits
from llmbulk.progress import NO_PROGRESS, Progress
from llmbulk.session import Session, current_job, logged, open_session
from llmbulk.shards import write_shards
from llmbulk.store.schema import Job
from llmbulk.tasks import TaskSpec, iter_tasks


def retry(
    job_id: str,
    *,
    resume: bool = False,
    wait_lock: float = 0.0,
    settings: Settings | None = None,
    progress: Progress = NO_PROGRESS,
) -> RetryResult:
    """Resubmit only the failed-retryable items with attempts left; the rest become dead.

    A cancelled job stays cancelled unless `resume` says to continue it.
    """
    with open_session(settings, progress) as session:
        job = session.store.get_job(job_id)
        current_job.set(job.id)
        with session.lease(job.id, wait=wait_lock) as lease, logged(session, job.id):
            job = session.store.get_job(job_id)
            if job.state == JobState.CANCELLED:
                if not resume:
                    raise cancelled_error(job.id, "retry does not reactivate it")
                reactivate(session, job.id)
            return retry_in(session, session.store.get_job(job_id), lease)


def retry_in(session: Session, job: Job, lease: JobLease) -> RetryResult:
    store = session.store
    with store.tx() as tx:
        dead = tx.mark_dead(job.id, job.max_attempts)
    rows = list(store.retryable_rows(job.id))
    if not rows:
        batch_ids, _ = send_unsent(session, job, lease) if store.unsent_shards(job.id) else ([], 0)
        return RetryResult(job.id, 0, [], batch_ids, dead)
    attempts = store.item_attempts(job.id, rows)
    wanted = set(rows)
    provider = session.provider(job)
    table = restore.input_table(job)
    spec = TaskSpec.of(job.spec)
    limits = Limits(max_items=job.max_items, max_bytes=job.max_bytes)
    shard_dir = session.job_dir(job.id) / "shards"
    plans: list[ShardPlan] = []
    session.progress.stage("packing retries", len(rows))
    with store.tx() as tx:
        first_seq = tx.next_shard_seq(job.id)
        round_ = 1 + max((s.round for s in store.shards(job.id)), default=1)

        def requeue(seq: int, items: list[tuple[int, str, str | None]]) -> None:
            tx.requeue_items(job.id, shard_id_for(job.id, seq), [row for row, _key, _request in items])

        # Attachments go by the reference still valid at the provider (a retry uploads nothing), else inline.
        account = account_of(job.provider, job.spec.base_url, job.emulated)
        refs = recorded_refs(store, provider.media_files, account, time.time())
        packed_iter = write_shards(
            with_refs(iter_tasks(table, spec, only_rows=wanted), refs),
            provider.encode,
            job.id,
            limits,
            shard_dir,
            requeue,
            first_seq=first_seq,
            attempt_of=lambda row: attempts[row] + 1,
        )
        for packed in packed_iter:
            shard = shard_row(job.id, packed, session.settings.home, round_)
            tx.add_shard(shard)
            plans.append(ShardPlan(shard.id, packed.n_items, packed.n_bytes))
        if job.input_sha256 and table.sha256 and table.sha256 != job.input_sha256:
            raise InputError(
                f"input {job.input_path} changed since job {job.id} was submitted",
                hint="restore the original file to retry its items",
            )
    batch_ids, _ = send_unsent(session, store.get_job(job.id), lease)
    return RetryResult(job.id, len(rows), plans, batch_ids, dead)
