"""`prune`: delete the local raw result files and shards of finished jobs (the state database keeps the rest).

A job is pruned only once it is finished — done or cancelled, every batch's results recorded — and no
other process holds it (its lease is taken while its files go). What goes: the downloaded raw results
(`results/`, once collect has deleted them at the provider the only copy of the provider's own answer
lines) and the packed shards (rebuilt from the input if the job is ever resumed or retried). What stays:
the job, its items and outcomes in the database (so `collect` still writes the output table) and its log.
Dry run by default, like `gc`: the raw results cannot be fetched again, so a user sees what would go first.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

from llmbulk.config import Settings
from llmbulk.errors import LeaseError
from llmbulk.models import BatchState, JobState
from llmbulk.progress import NO_PROGRESS, Progress
from llmbulk.session import Session, open_session
from llmbulk.store.schema import Job

FINISHED = (JobState.DONE.value, JobState.CANCELLED.value)
ALL_JOBS = 1 << 31  # `list_jobs` takes a limit; prune looks at every job


@dataclass(frozen=True, slots=True)
class PrunedJob:
    """One job's local files that prune removes (or, in a dry run, would remove)."""

    job_id: str
    files: int
    bytes: int
    finished_at: float
    outcome: str = ""  # after apply: "deleted" or "skipped: …"


@dataclass(frozen=True, slots=True)
class PruneReport:
    applied: bool
    jobs: list[PrunedJob]
    skipped: list[tuple[str, str]]  # jobs asked for by --job that are not prunable, and why

    @property
    def files(self) -> int:
        return sum(job.files for job in self.jobs)

    @property
    def bytes(self) -> int:
        return sum(job.bytes for job in self.jobs)


def prune(
    *,
    job_ids: list[str] | None = None,
    older_than: float | None = None,
    apply: bool = False,
    settings: Settings | None = None,
    progress: Progress = NO_PROGRESS,
) -> PruneReport:
    """The finished jobs' raw result files and shards (those finished `older_than` seconds ago, or of
    `job_ids`); with `apply` they are deleted."""
    with open_session(settings, progress) as session:
        store = session.store
        named = bool(job_ids)
        jobs = [store.get_job(j) for j in job_ids] if job_ids else store.list_jobs(ALL_JOBS)
        cutoff = None if older_than is None else time.time() - older_than
        planned: list[PrunedJob] = []
        skipped: list[tuple[str, str]] = []
        for job in jobs:
            why_not, finished_at = _unprunable(session, job)
            if why_not is None and cutoff is not None and finished_at > cutoff:
                why_not = "finished more recently than --older-than"
            if why_not is not None:
                if named:
                    skipped.append((job.id, why_not))
                continue
            paths = _local_files(session, job)
            if paths:
                size = sum(p.stat().st_size for p in paths)
                planned.append(PrunedJob(job.id, len(paths), size, finished_at))
        if apply:
            planned = [_delete(session, pruned) for pruned in planned]
        return PruneReport(apply, planned, skipped)


def _unprunable(session: Session, job: Job) -> tuple[str | None, float]:
    """Why a job's files must stay (None: they may go), and when it finished."""
    batches = session.store.batches(job.id)
    finished_at = max([job.created_at, *(b.collected_at or b.ended_at or 0.0 for b in batches)])
    if job.state not in FINISHED:
        return f"job is {job.state}, not finished", finished_at
    unrecorded = [
        b for b in batches if b.collected_at is None and b.state not in (BatchState.FAILED, BatchState.REQUEUED)
    ]
    if unrecorded:
        return f"{len(unrecorded)} batch(es) not collected yet", finished_at
    return None, finished_at


def _local_files(session: Session, job: Job) -> list[Path]:
    """The job's raw result files and shard files that exist."""
    job_dir = session.job_dir(job.id)
    found = sorted(p for p in (job_dir / "results").glob("*") if p.is_file())
    for shard in session.store.shards(job.id):
        path = session.settings.home / shard.path
        if path.is_file():
            found.append(path)
    return found


def _delete(session: Session, pruned: PrunedJob) -> PrunedJob:
    """Delete one job's files while holding its lease, so no run, retry or resume can use them meanwhile."""
    try:
        with session.lease(pruned.job_id):
            job = session.store.get_job(pruned.job_id)
            why_not, _ = _unprunable(session, job)  # resumed since it was listed?
            if why_not is not None:
                return replace(pruned, outcome=f"skipped: {why_not}")
            for path in _local_files(session, job):
                path.unlink(missing_ok=True)
            shutil.rmtree(session.job_dir(job.id) / "results", ignore_errors=True)
    except LeaseError:
        return replace(pruned, outcome="skipped: another llmbulk process holds the job")
    return replace(pruned, outcome="deleted")
