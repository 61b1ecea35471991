"""`cancel` and `resume`: a cancelled job stays cancelled until it is explicitly resumed."""

from __future__ import annotations

from llmbulk.batches import (
    cancel_batches,
)
from llmbulk.config import Settings
from llmbulk.errors import (
    CancelledError,
    LeaseError,
    UsageError,
)
from llmbulk.jobs.collect import job_status, poll_and_collect
from llmbulk.leases import JobLease
from llmbulk.models import JobState
from llmbulk.progress import NO_PROGRESS, Progress
from llmbulk.providers.base import BatchProvider
from llmbulk.session import Session, current_job, logged, open_session
from llmbulk.store.schema import Job
from llmbulk.views import JobStatus


def resume(
    job_id: str, *, wait_lock: float = 0.0, settings: Settings | None = None, progress: Progress = NO_PROGRESS
) -> JobStatus:
    """Make a cancelled job active again; `run JOB` (or `worker`) then sends what it has left."""
    with open_session(settings, progress) as session:
        job = session.store.get_job(job_id)
        current_job.set(job.id)
        with session.lease(job.id, wait=wait_lock), logged(session, job.id):
            job = session.store.get_job(job_id)
            if job.state != JobState.CANCELLED:
                raise UsageError(f"job {job.id} is not cancelled (it is {job.state})", hint=f"`llmbulk run {job.id}`")
            reactivate(session, job.id)
        return job_status(session.store, job)


def reactivate(session: Session, job_id: str) -> None:
    with session.store.tx() as tx:
        tx.set_job_state(job_id, JobState.ACTIVE)
        tx.clear_cancel_request(job_id)
    session.events.emit("job.resumed", job_id)


def cancelled_error(job_id: str, what: str) -> CancelledError:
    return CancelledError(
        f"job {job_id} is cancelled; {what}",
        hint=f"`llmbulk resume {job_id}` continues it, then `llmbulk run {job_id}`",
    )


def cancel(
    job_id: str, *, wait_lock: float = 0.0, settings: Settings | None = None, progress: Progress = NO_PROGRESS
) -> JobStatus:
    """Cancel every live batch of a job; finished items keep their results.

    A finished job is left as it is. While another process holds the job, it is asked to cancel
    the job at its next step instead.
    """
    with open_session(settings, progress) as session:
        job = session.store.get_job(job_id)
        current_job.set(job.id)
        if job.state in (JobState.DONE, JobState.CANCELLED):
            word = "finished" if job.state == JobState.DONE else "cancelled"
            session.progress.note(f"job {job.id} is already {word}; nothing to cancel")
            return job_status(session.store, job)
        provider = session.provider(job)
        try:
            lease = session.lease(job.id, wait=wait_lock)
        except LeaseError:
            with session.store.tx() as tx:
                tx.request_cancel(job.id)
            session.events.emit("job.cancel_requested", job.id)
            session.progress.note(
                f"job {job.id} is being worked on by another process; asked it to cancel the job at its next step"
            )
            return job_status(session.store, job)
        with lease, logged(session, job.id):
            cancel_job(session, job, provider, lease)
            # Batches that ended before the cancel reached them (409) are harvested like the rest.
            poll_and_collect(session, session.store.get_job(job.id), True, lease)
        return job_status(session.store, job)


def cancel_job(session: Session, job: Job, provider: BatchProvider, lease: JobLease) -> None:
    cancel_batches(session.store, provider, job, lease)
    with session.store.tx() as tx:
        tx.set_job_state(job.id, JobState.CANCELLED)
        tx.clear_cancel_request(job.id)
    session.events.emit("job.cancelled", job.id)
