"""`gc`: what llmbulk left at each provider, against the state database; with `apply`, removed.

Listed: orphan batches still running (carrying llmbulk's labels but recorded by no job, or recorded for
a job that has ended), input files of ended batches, result files already collected, and files of
llmbulk batches no job records (a deleted job's). Nothing is listed that llmbulk cannot prove it made:
a batch by its labels or its record, an upload by its shard name *and* its record, a result file by its
record or by the labelled batch that produced it. A file any running batch or open create intent uses
is never listed. Each cancel or delete for a job of this database is made under that job's lease
(fenced like every other side effect); a job another process holds is skipped.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import orjson

from llmbulk import providers
from llmbulk.attachments.cleanup import spent_attachments
from llmbulk.attachments.uploads import account_of
from llmbulk.config import Settings
from llmbulk.errors import LeaseError, LlmbulkError
from llmbulk.leases import JobLease, holder_is_dead
from llmbulk.models import BatchState, JobState
from llmbulk.progress import NO_PROGRESS, Progress
from llmbulk.providers.base import BatchProvider, RemoteBatch, RemoteFile
from llmbulk.session import Session, open_session
from llmbulk.store import Store
from llmbulk.store.schema import Batch, Job

ENDED_JOB = (JobState.DONE.value, JobState.CANCELLED.value)
RESULT_KEYS = ("output_file_id", "error_file_id", "file_name")  # result files in `result_refs` (OpenAI, Gemini)


@dataclass(frozen=True, slots=True)
class Leftover:
    """One thing at a provider llmbulk made and no longer needs, and what `gc --apply` does about it."""

    kind: str  # "batch" or "file"
    id: str
    reason: str
    action: str  # "cancel" or "delete"
    job_id: str | None = None  # the job it belongs to, if known (its lease fences the action)
    shard_id: str | None = None
    recorded: bool = True  # a batch: whether this database records it
    attachment: tuple[str, str] | None = None  # an attachment upload's record (account, sha256), if any
    outcome: str = ""  # after --apply: "cancelled", "deleted", "skipped: …" or "failed: …"


@dataclass(slots=True)
class ProviderScan:
    """One provider's (or vendor profile's) leftovers, or why it could not be listed."""

    provider: str
    leftovers: list[Leftover] = field(default_factory=list)
    error: str | None = None


@dataclass(slots=True)
class GcReport:
    applied: bool
    emulated: bool
    scans: list[ProviderScan]

    @property
    def ok(self) -> bool:
        """Every provider was listed and every action taken (or skipped for a busy job)."""
        return all(
            scan.error is None and not any(left.outcome.startswith("failed") for left in scan.leftovers)
            for scan in self.scans
        )


def gc(
    *,
    provider_names: Sequence[str] = (),
    apply: bool = False,
    emulate: bool = False,
    settings: Settings | None = None,
    progress: Progress = NO_PROGRESS,
) -> GcReport:
    """List (and with `apply`, cancel or delete) what llmbulk left at each provider."""
    with open_session(settings, progress) as session:
        for name in provider_names:
            providers.info(name)  # an unknown name is a usage error before anything is listed
        names = list(provider_names) or default_providers(session, emulate)
        scans = [scan(session, name, emulate, apply) for name in names]
        return GcReport(applied=apply, emulated=emulate, scans=scans)


def default_providers(session: Session, emulate: bool) -> list[str]:
    """Emulated: the providers this database's emulated jobs used; else every provider whose key (or
    keyless gateway URL) is set."""
    if emulate:
        return session.store.provider_names(emulated=True)
    env = session.settings.env
    names = []
    for name, info in sorted(providers.REGISTRY.items()):
        keyless = info.profile is not None and not info.profile.key_required and env.get(info.base_url_env)
        if any(env.get(var) for var in info.key_env) or keyless:
            names.append(name)
    return names


def scan(session: Session, name: str, emulate: bool, apply: bool) -> ProviderScan:
    result = ProviderScan(name)
    try:
        adapter = session.make_provider(name, "gc", None, emulate, need_key=True)
        try:
            batches, files = adapter.inventory()
            window = session.settings.create_window
            result.leftovers = plan(session.store, name, emulate, batches, files, window)
            result.leftovers += attachment_leftovers(session.store, adapter, name, emulate)
            if apply:
                result.leftovers = remove(session, adapter, name, emulate, batches, files, result.leftovers)
        finally:
            adapter.close()
    except LlmbulkError as exc:
        result.error = str(exc)  # the message and its hint
    return result


def plan(
    store: Store,
    name: str,
    emulated: bool,
    batches: list[RemoteBatch],
    files: list[RemoteFile],
    window: float = 0.0,
) -> list[Leftover]:
    """What of the provider's listing llmbulk provably made and no longer needs (read-only).

    An unrecorded batch whose create intent a live process made less than `window` seconds ago
    is that process's to record, not an orphan (yet).
    """
    jobs = {job.id: job for job in store.provider_jobs(name, emulated)}
    rows = store.provider_batches(name, emulated)
    by_batch = {row.provider_batch_id: row for row in rows if row.provider_batch_id}
    inputs: dict[str, list[Batch]] = {}
    results: dict[str, list[Batch]] = {}
    for row in rows:
        if row.input_file_id:
            inputs.setdefault(row.input_file_id, []).append(row)
        for file_id in _result_files(row):
            results.setdefault(file_id, []).append(row)
    users: dict[str, list[RemoteBatch]] = {}
    for remote in batches:
        for file_id in remote.file_ids:
            users.setdefault(file_id, []).append(remote)
    in_flight = {row.shard_id for row in rows if _maybe_in_flight(row, window)}
    found = [
        left
        for remote in batches
        if remote.shard_id not in in_flight and (left := _orphan(remote, by_batch.get(remote.batch_id), jobs))
    ]
    for file in files:
        if any(remote.live for remote in users.get(file.file_id, [])):
            continue  # a running batch's file, whoever made it
        recorded_in, recorded_out = inputs.get(file.file_id, []), results.get(file.file_id, [])
        if recorded_in or recorded_out:
            left = _spent_file(file, recorded_in, recorded_out)
        else:
            left = _stray_file(file, users.get(file.file_id, []), by_batch, jobs)
        if left is not None:
            found.append(left)
    return found


def attachment_leftovers(store: Store, adapter: BatchProvider, name: str, emulated: bool) -> list[Leftover]:
    """Attachment uploads (#22) no open job needs (attachments/cleanup.py)."""
    if adapter.media_files is None:
        return []
    open_jobs = [job.created_at for job in store.provider_jobs(name, emulated) if job.state not in ENDED_JOB]
    spent = spent_attachments(name, emulated, store.attachment_files(), open_jobs, adapter.media_files.listing())
    account = account_of(name, None, emulated)
    return [
        Leftover("attachment", s.file_id, s.reason, "delete", attachment=(account, s.sha256) if s.sha256 else None)
        for s in spent
    ]


def _maybe_in_flight(row: Batch, window: float) -> bool:
    """A create intent whose maker (alive, not released) may still be about to record its batch."""
    if row.state != BatchState.CREATING.value or row.owner is None or holder_is_dead(row.owner):
        return False
    return time.time() < row.intent_at + window


def _orphan(remote: RemoteBatch, row: Batch | None, jobs: dict[str, Job]) -> Leftover | None:
    if not remote.live:
        return None
    if row is None:
        if remote.job_id is None:
            return None  # no labels and no record: not provably llmbulk's
        gone = "" if remote.job_id in jobs else " (its job is not in this database)"
        return Leftover("batch", remote.batch_id, f"orphan: created for {remote.shard_id}, never recorded{gone}",
                        "cancel", remote.job_id, remote.shard_id, recorded=False)  # fmt: skip
    job = jobs.get(row.job_id)
    if job is not None and job.state in ENDED_JOB:
        reason = f"orphan: still running for job {job.id}, which is {job.state}"
    elif row.error_code == "duplicate" or row.state in (BatchState.REQUEUED.value, BatchState.FAILED.value):
        reason = "orphan: recorded as answering for no shard"
    else:
        return None  # a live job's batch
    return Leftover("batch", remote.batch_id, reason, "cancel", row.job_id, row.shard_id)


def _spent_file(file: RemoteFile, inputs: list[Batch], results: list[Batch]) -> Leftover | None:
    """A file this database records: an ended batch's input, or results already collected."""
    if inputs:
        # The upload's name must be its shard's, and every batch or intent using it must have ended.
        if file.shard_id is None or any(row.shard_id != file.shard_id for row in inputs):
            return None
        if not all(BatchState(row.state).terminal for row in inputs):
            return None
        last = inputs[-1]
        return Leftover("file", file.file_id, f"input of ended batch {last.provider_batch_id or last.id}",
                        "delete", last.job_id, last.shard_id)  # fmt: skip
    if results and all(row.collected_at is not None for row in results):
        row = results[-1]
        return Leftover("file", file.file_id, f"results of batch {row.provider_batch_id} already collected",
                        "delete", row.job_id, row.shard_id)  # fmt: skip
    return None


def _stray_file(
    file: RemoteFile, users: list[RemoteBatch], by_batch: dict[str, Batch], jobs: dict[str, Job]
) -> Leftover | None:
    """A file no record names, of ended batches that carry llmbulk's labels (a deleted job's, say)."""
    if not users or any(remote.job_id is None for remote in users):
        return None
    for remote in users:
        row = by_batch.get(remote.batch_id)
        if row is not None and row.collected_at is None:
            return None  # its batch's results are not recorded yet
        job = jobs.get(remote.job_id or "")
        if row is None and job is not None and job.state != JobState.DONE.value:
            return None  # an ended batch its job's next run may still adopt and collect
    remote = users[0]
    whose = f"deleted job {remote.job_id}" if remote.job_id not in jobs else f"batch {remote.batch_id}"
    recorded = remote.batch_id in by_batch
    reason = f"file of {whose}" + ("" if recorded or remote.job_id not in jobs else ", never recorded")
    return Leftover("file", file.file_id, reason, "delete", remote.job_id, remote.shard_id)


def _result_files(row: Batch) -> list[str]:
    refs = orjson.loads(row.result_refs_json) if row.result_refs_json else {}
    return [str(refs[key]) for key in RESULT_KEYS if isinstance(refs, dict) and refs.get(key)]


def remove(
    session: Session,
    adapter: BatchProvider,
    name: str,
    emulated: bool,
    batches: list[RemoteBatch],
    files: list[RemoteFile],
    planned: list[Leftover],
) -> list[Leftover]:
    """Cancel or delete each leftover, job by job under the job's lease; batches before files."""
    store = session.store
    known = {job.id for job in store.provider_jobs(name, emulated)}
    done: list[Leftover] = []
    by_job: dict[str | None, list[Leftover]] = {}
    for left in sorted(planned, key=lambda item: item.kind):  # "batch" < "file": cancel, then delete
        by_job.setdefault(left.job_id if left.job_id in known else None, []).append(left)
    for job_id, items in by_job.items():
        if job_id is None:  # no job of this database: nothing here could race the call
            done.extend(_act(session, adapter, None, left) for left in items)
            continue
        try:
            lease = session.lease(job_id)
        except LeaseError:
            done.extend(replace(left, outcome="skipped: another llmbulk process holds its job") for left in items)
            continue
        with lease:
            # Under the lease the database cannot change beneath us: plan again and act on what still holds.
            fresh = plan(store, name, emulated, batches, files, session.settings.create_window)
            still = {(left.kind, left.id) for left in fresh}
            for left in items:
                if (left.kind, left.id) not in still:
                    done.append(replace(left, outcome="skipped: its job changed since the listing"))
                else:
                    done.append(_act(session, adapter, lease, left))
    return done


def _act(session: Session, adapter: BatchProvider, lease: JobLease | None, left: Leftover) -> Leftover:
    try:
        if left.kind == "batch":
            if lease is not None and not left.recorded:
                _record_orphan(session, lease, left)
            if lease is not None:
                lease.guard()
            adapter.cancel(left.id)
            outcome = "cancelled"
        elif left.kind == "attachment":
            assert adapter.media_files is not None
            if left.attachment is not None:  # its record goes first: no new job references the file from here on
                with session.store.tx() as tx:
                    tx.forget_attachment(*left.attachment)
            adapter.media_files.delete(left.id)
            outcome = "deleted"
        else:
            if adapter.files is None:
                return replace(left, outcome="skipped: this provider has no file API")
            if lease is not None:
                lease.guard()
            adapter.files.delete(left.id)
            outcome = "deleted"
    except LeaseError as exc:
        return replace(left, outcome=f"skipped: {exc.message}")
    except LlmbulkError as exc:
        return replace(left, outcome=f"failed: {exc.message}")
    if lease is not None:
        event = "gc.batch_cancelled" if left.kind == "batch" else "gc.file_deleted"
        session.events.emit(event, lease.job_id, id=left.id, reason=left.reason)
    return replace(left, outcome=outcome)


def _record_orphan(session: Session, lease: JobLease, left: Leftover) -> None:
    """Record the orphan before cancelling it (the intent, fenced) as a batch of its shard that produced no
    work (`requeued`, collected): it answers for nothing, no run adopts it, and the shard is sent again."""
    store = session.store
    if left.shard_id is None or left.shard_id not in {shard.id for shard in store.shards(lease.job_id)}:
        return
    if store.recorded_provider_batches([left.id]):
        return
    now, attempt = time.time(), store.batch_attempt_count(left.shard_id) + 1
    with lease.fenced() as tx:
        tx.add_batch(
            Batch(id=f"{left.shard_id}-b{attempt}", job_id=lease.job_id,
                  shard_id=left.shard_id, provider_batch_id=left.id, state=BatchState.REQUEUED.value,
                  error_code="orphan", error="created but never recorded; cancelled by llmbulk gc",
                  intent_at=now, created_at=now, collected_at=now, owner=lease.owner)
        )  # fmt: skip


__all__ = ["GcReport", "Leftover", "ProviderScan", "gc", "plan"]
