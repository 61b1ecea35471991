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

from llmbulk import providers
from llmbulk.config import Settings
from llmbulk.errors import LeaseError, LlmbulkError
from llmbulk.jobs.gc_plan import Leftover, attachment_leftovers, plan
from llmbulk.leases import JobLease
from llmbulk.models import BatchState
from llmbulk.progress import NO_PROGRESS, Progress
from llmbulk.providers.base import BatchProvider, RemoteBatch, RemoteFile
from llmbulk.session import Session, open_session
from llmbulk.store.schema import Batch


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
