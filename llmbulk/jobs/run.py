"""`run` and `worker`: drive a job to the end, as a small runner of named steps per round."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from llmbulk.batches import (
    LIVE_STATES,
    next_poll_delay,
)
from llmbulk.config import Settings
from llmbulk.errors import (
    LeaseError,
    LlmbulkError,
    ProviderError,
    UsageError,
)
from llmbulk.events import EventHooks
from llmbulk.jobs.budget import spent, within_budget
from llmbulk.jobs.cancel import cancel_job
from llmbulk.jobs.cleanup import keep_files_from_now
from llmbulk.jobs.collect import TROUBLED_ROUNDS_MAX, job_status, poll_and_collect, write_table
from llmbulk.jobs.retry import retry_in
from llmbulk.jobs.send import send_unsent
from llmbulk.jobs.submit import submit_in
from llmbulk.jobs.types import RunResult, SubmitOptions, WorkerResult
from llmbulk.leases import JobLease
from llmbulk.merge import MergeSummary, SettledRowStream, check_output, resolve_output
from llmbulk.models import BatchState, ItemState, JobState
from llmbulk.progress import NO_PROGRESS, Progress
from llmbulk.session import Session, current_job, logged, open_session
from llmbulk.store.schema import Job
from llmbulk.views import JobStatus


def run(
    job_id: str | None = None,
    options: SubmitOptions | None = None,
    out: Path | None = None,
    fmt: str | None = None,
    *,
    timeout: float | None = None,
    retry_failed: bool = True,
    max_attempts: int | None = None,
    max_cost: float | None = None,
    keep_files: bool = False,
    wait_lock: float = 0.0,
    explode: str | None = None,
    hooks: EventHooks | None = None,
    settings: Settings | None = None,
    progress: Progress = NO_PROGRESS,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> RunResult:
    """Submit (or continue) a job and poll, collect and retry until it is done or `timeout` passes.

    Results are merged into the output table as each batch ends, not when the last one does. A
    cancelled job is only harvested: what its batches finished is collected, nothing is sent.
    """
    if (job_id is None) == (options is None):
        raise UsageError("run needs either a job id or an input to submit")
    # Before submitting: a bad --out must not leave a job behind.
    check_output(out, fmt, None if options is None else Path(options.input))
    started = clock()
    with open_session(settings, progress, hooks) as session:
        session.explode = explode
        if options is not None:
            job_id = submit_in(session, options, dry_run=False).job_id
        assert job_id is not None
        job = session.store.get_job(job_id)
        current_job.set(job.id)
        apply_run_policies(session, job, max_attempts, max_cost, keep_files)
        path, fmt = resolve_output(job, out, fmt)
        with session.lease(job.id, wait=wait_lock) as lease, logged(session, job.id):
            runner = Runner(session, lease, job.id, path, fmt, retry_failed, started, sleep, clock)
            result = runner.run(timeout)
            session.progress.round(result.status, None)
            return result


def apply_run_policies(
    session: Session, job: Job, max_attempts: int | None, max_cost: float | None, keep_files: bool = False
) -> None:
    if keep_files:
        keep_files_from_now(session.store, job)
    if max_attempts is not None:
        if max_attempts < 1:
            raise UsageError("--max-attempts must be at least 1")
        with session.store.tx() as tx:
            tx.set_max_attempts(job.id, max_attempts)
    if max_cost is not None:
        spec = session.store.get_job(job.id).spec.model_copy(update={"max_cost": max_cost})
        with session.store.tx() as tx:
            tx.set_job_spec(job.id, spec)


class Runner:
    """The run loop: each round sends what is unsent, collects what finished, retries what failed."""

    def __init__(
        self,
        session: Session,
        lease: JobLease,
        job_id: str,
        path: Path | None,
        fmt: str,
        retry_failed: bool,
        started: float,
        sleep: Callable[[float], None],
        clock: Callable[[], float],
    ) -> None:
        self.session, self.store, self.lease, self.job_id = session, session.store, lease, job_id
        self.path, self.fmt, self.retry_failed = path, fmt, retry_failed
        self.started, self.sleep, self.clock = started, sleep, clock
        self.delay: float | None = None
        self.bounds = poll_bounds(session.settings, self.store.get_job(job_id))
        self.summary: MergeSummary | None = None
        # On stdout a table cannot be rewritten as batches end: rows go out once, as they settle.
        self.stream = SettledRowStream(self.store.get_job(job_id).n_items) if path is None else None
        self.budget_stopped = False
        self.troubled_rounds = 0

    def run(self, timeout: float | None) -> RunResult:
        while True:
            self.lease.check()
            job = self.store.get_job(self.job_id)
            job = self.honour_cancel_request(job)
            self.send_unsent(job)
            self.collect_finished(job)
            self.lease.guard()  # paused in there past the lease: stop before deciding anything
            state = job_status(self.store, job)
            if self.retry_failed_items(job, state):
                continue
            if (result := self.finished(job, state)) is not None:
                return result
            self.delay = next_poll_delay(self.delay, *self.bounds)
            if timeout is not None and self.clock() - self.started + self.delay > timeout:
                seconds = self.clock() - self.started
                self.session.events.emit("job.timeout", job.id, counts=state.counts, seconds=seconds)
                return RunResult(job.id, False, True, self.summary, state)
            self.session.progress.round(state, self.delay)
            self.pause(self.delay)

    def pause(self, delay: float) -> None:
        """Sleep until the next round; a job queued for quota asks for its turn every initial poll
        interval meanwhile (a database read, no provider call), so it keeps its place in the queue
        and takes room as soon as another runner's batch gives it back."""
        waited = 0.0
        while waited < delay:
            if not self.store.waiting_for_quota(self.job_id):
                self.sleep(delay - waited)
                return
            step = min(self.bounds[0], delay - waited)
            self.sleep(step)
            waited += step
            self.lease.check()
            job = self.store.get_job(self.job_id)
            if job.cancel_requested is not None:
                return
            self.send_unsent(job)
            if self.delay is None:  # it got its turn: a new batch to watch
                return

    def honour_cancel_request(self, job: Job) -> Job:
        """`llmbulk cancel` from another process asked this holder to cancel the job."""
        if job.cancel_requested is None or job.state == JobState.CANCELLED:
            return job
        cancel_job(self.session, job, self.session.provider(job), self.lease)
        return self.store.get_job(job.id)

    def send_unsent(self, job: Job) -> None:
        if job.state == JobState.CANCELLED or not self.store.unsent_shards(job.id):
            return
        created, _waiting = send_unsent(self.session, job, self.lease)
        if created:
            self.delay = None  # new batches: watch them closely at first

    def collect_finished(self, job: Job) -> None:
        # A batch ending does not reset the interval: the others run on their own clocks, and
        # polling all of them from 30 s again at each end would cost ~5 extra polls per batch.
        try:
            if poll_and_collect(self.session, job, refresh=True, lease=self.lease):
                self.summary = self.write(job)
            self.troubled_rounds = 0
        except ProviderError as exc:
            # The SDK has already retried the call; an outage longer than that is waited out
            # (the job's state is intact: whatever was not recorded is asked again next round).
            self.troubled_rounds += 1
            if not exc.retryable or self.troubled_rounds > TROUBLED_ROUNDS_MAX:
                raise
            self.session.events.emit("job.provider_trouble", job.id, error=exc.message, round=self.troubled_rounds)
            self.session.progress.note(f"{exc.message}; trying again ({self.troubled_rounds}/{TROUBLED_ROUNDS_MAX})")

    def retry_failed_items(self, job: Job, state: JobStatus) -> bool:
        """Resend retryable items (within --max-cost); True when something was resent."""
        retryable = state.counts.get(ItemState.FAILED_RETRYABLE.value, 0)
        if not (self.retry_failed and job.state == JobState.ACTIVE and retryable and not self.budget_stopped):
            return False
        if within_budget(self.session, job, retryable):
            retry_in(self.session, job, self.lease)
            self.delay = None
            return True
        self.budget_stopped = True
        return False

    def finished(self, job: Job, state: JobStatus) -> RunResult | None:
        """The result once nothing is in flight (and, for an active job, nothing is left to send)."""
        live = any(
            b.state in LIVE_STATES
            or b.state == BatchState.CREATING.value
            or (not b.collected and b.state != BatchState.REQUEUED.value)  # ended, results not yet fetched
            for b in state.batches
        )
        cancelled = job.state == JobState.CANCELLED
        if live or (state.unsent_shards and not cancelled):
            return None
        if self.budget_stopped and not cancelled:
            # The job stays active: `run JOB --max-cost MORE` (or `retry`) resends what is left.
            return RunResult(job.id, False, False, self.summary, state, budget_stopped=True)
        return self.finish(job)

    def finish(self, job: Job) -> RunResult:
        store, events = self.store, self.session.events
        with store.tx() as tx:
            tx.leave_capacity_queue(job.id)
        with store.tx() as tx:
            tx.mark_dead(job.id, job.max_attempts)
        if job.state != JobState.CANCELLED and store.item_counts(job.id).get(ItemState.FAILED_RETRYABLE.value):
            # Nothing in flight, but items wait to be retried (`collect --follow`, --no-retry): not done.
            self.summary = self.write(job, final=True)
            return RunResult(job.id, False, False, self.summary, job_status(store, job))
        if job.state != JobState.CANCELLED:
            with store.tx() as tx:
                tx.set_job_state(job.id, JobState.DONE)
        self.summary = self.write(job, final=True)
        final = job_status(store, job)
        failed = final.counts.get("failed_permanent", 0) + final.counts.get("dead", 0)
        events.emit(
            "job.done_with_failures" if failed else "job.done",
            job.id,
            counts=final.counts,
            seconds=self.clock() - self.started,
            job_seconds=time.time() - job.created_at,
            usage=final.usage,
            cost_usd=spent(store, job),
            output=str(self.path) if self.path else None,
        )
        return RunResult(job.id, True, False, self.summary, final)

    def write(self, job: Job, final: bool = False) -> MergeSummary:
        if self.stream is not None:
            return self.stream.emit(self.store, job, self.session.explode, final=final)
        return write_table(self.session, job, self.path, self.fmt)


def worker(
    *,
    timeout_per_job: float | None = 60.0,
    settings: Settings | None = None,
    progress: Progress = NO_PROGRESS,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> WorkerResult:
    """One pass over every active job, oldest first.

    Jobs another runner holds are skipped; a job that cannot advance (a missing key, a changed
    input) is logged in its job log and reported, and the pass goes on with the others.
    """
    finished: list[str] = []
    running: list[str] = []
    skipped: list[str] = []
    failed: list[tuple[str, str]] = []
    with open_session(settings, progress) as session:
        active = [j for j in reversed(session.store.list_jobs(10_000)) if j.state == JobState.ACTIVE]
    for job in active:
        try:
            result = run(job.id, None, timeout=timeout_per_job, settings=settings, progress=progress, sleep=sleep,
                         clock=clock)  # fmt: skip
        except LeaseError:
            skipped.append(job.id)
            continue
        except LlmbulkError as exc:
            failed.append((job.id, str(exc)))
            progress.note(f"job {job.id} skipped: {exc}")
            continue
        (finished if result.finished else running).append(job.id)
    return WorkerResult(finished, running, skipped, failed)


def poll_bounds(settings: Settings, job: Job) -> tuple[float, float]:
    if job.emulated:
        return settings.emulated_poll_initial, settings.emulated_poll_max
    return settings.poll_initial, settings.poll_max
