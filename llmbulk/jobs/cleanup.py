"""Deleting a job's files at the provider once used: inputs of ended batches, results once collected.

An uploaded input file is deleted once every batch or intent that refers to it has ended and been
collected (a duplicate or a requeued intent counts as done: it is never collected); a batch's output
and error files (Gemini: its result file) once its results are recorded. The raw results stay in the
job's folder (`results.results_path`) until `llmbulk prune`. Each delete is fenced by the job's lease
like every other side effect; a failed delete is a warning, never a failed collect: the file expires
at the provider anyway (uploads carry an expiry where the provider has one) and `gc` lists it. A batch
whose files are dealt with is marked (`files_deleted_at`), so no later collect asks about it again.
`--keep-files` (kept with the job) leaves everything at the provider.
"""

from __future__ import annotations

import orjson

from llmbulk.errors import ConfigError, ProviderError
from llmbulk.leases import JobLease
from llmbulk.models import BatchState
from llmbulk.session import Session
from llmbulk.store import Store
from llmbulk.store.schema import Batch, Job

RESULT_KEYS = ("output_file_id", "error_file_id", "file_name")  # result files in `result_refs` (OpenAI, Gemini)
NOT_FOUND = 404  # already gone (deleted by hand, by gc, or expired): as good as deleted


def keep_files_from_now(store: Store, job: Job) -> Job:
    """`--keep-files` given to a command on an existing job: recorded with the job for later collects."""
    if job.spec.keep_files:
        return job
    with store.tx() as tx:
        tx.set_job_spec(job.id, job.spec.model_copy(update={"keep_files": True}))
    return store.get_job(job.id)


def delete_used_files(session: Session, job: Job, lease: JobLease) -> list[str]:
    """Delete the files of this job's batches that nothing needs any more; returns one warning per failure."""
    if job.spec.keep_files:
        return []
    batches = session.store.batches(job.id)
    ready = [b for b in batches if b.files_deleted_at is None and _done(b)]
    if not ready:
        return []
    files = session.provider(job).files
    if files is None:  # nothing uploaded (Anthropic, Gemini inline): nothing of ours to delete, ever
        with session.store.tx() as tx:
            tx.mark_files_deleted([b.id for b in ready])
        return []
    users: dict[str, list[Batch]] = {}
    for batch in batches:
        if batch.input_file_id:
            users.setdefault(batch.input_file_id, []).append(batch)
    warnings: list[str] = []
    settled: list[str] = []
    deleted: set[str] = set()
    for batch in ready:
        targets = _result_files(batch) if batch.collected_at is not None else []
        waiting = False
        if batch.input_file_id:
            if all(_done(user) for user in users[batch.input_file_id]):
                targets.insert(0, batch.input_file_id)
            else:
                waiting = True  # another batch of the shard still uses the upload: asked again next collect
        handled = True
        for file_id in targets:
            if file_id in deleted:
                continue
            lease.guard()
            try:
                files.delete(file_id)
            except (ProviderError, ConfigError) as exc:
                if getattr(exc, "status", None) != NOT_FOUND:
                    warnings.append(f"could not delete {file_id} at {job.provider} (batch {batch.id}): {exc.message}")
                    handled = handled and not getattr(exc, "retryable", False)  # a passing fault: try next time
                    continue
            deleted.add(file_id)
        if handled and not waiting:
            settled.append(batch.id)
    if settled:
        with session.store.tx() as tx:
            tx.mark_files_deleted(settled)
    if deleted:
        session.events.emit("job.files_deleted", job.id, files=sorted(deleted))
    return warnings


def _done(batch: Batch) -> bool:
    """Nothing will read this batch's files again: its results are recorded, or it never had any."""
    return batch.collected_at is not None or batch.state == BatchState.REQUEUED.value


def _result_files(batch: Batch) -> list[str]:
    refs = orjson.loads(batch.result_refs_json) if batch.result_refs_json else {}
    return [str(refs[key]) for key in RESULT_KEYS if isinstance(refs, dict) and refs.get(key)]
