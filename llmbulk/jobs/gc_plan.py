"""What `gc` lists: llmbulk's leftovers at a provider, proven against the state database.

Nothing is listed that llmbulk cannot prove it made: a batch by its labels or its record, an upload
by its shard name *and* its record, a result file by its record or by the labelled batch that
produced it. A file any running batch or open create intent uses is never listed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import orjson

from llmbulk.attachments.cleanup import spent_attachments
from llmbulk.attachments.uploads import account_of
from llmbulk.leases import holder_is_dead
from llmbulk.models import BatchState, JobState
from llmbulk.providers.base import BatchProvider, RemoteBatch, RemoteFile
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
