"""Result lines → item outcomes: download a finished batch's results, decode, record.

Raw results are first written whole to the job's folder (tmp + rename), so a crash mid-download
restarts the download and a corrupt line is reported with its file and line number before any
outcome of that batch is recorded.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from llmbulk import schemas
from llmbulk.batches import requeue_batch, status_of
from llmbulk.crashpoints import crashpoint
from llmbulk.errors import ProviderError, QuotaError
from llmbulk.events import PROGRESS_EVERY, every
from llmbulk.models import BatchState, ItemOutcome, Outcome
from llmbulk.providers.base import BatchProvider
from llmbulk.store import Store
from llmbulk.store.schema import Batch, Job

REQUEUE_CODES = frozenset({"token_limit_exceeded", "quota", "RESOURCE_EXHAUSTED"})
DOWNLOAD_TRIES = 3  # a cut or garbled download is fetched again at once, this many times in all


class CorruptResultsError(ProviderError):
    """A downloaded results file has a line that does not decode."""


def results_path(job_dir: Path, batch: Batch) -> Path:
    return job_dir / "results" / f"{batch.id}.jsonl"


def download_results(provider: BatchProvider, batch: Batch, dest: Path) -> Path:
    """Fetch every result line of a finished batch into `dest` (kept for audit and re-merge)."""
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            for index, block in enumerate(provider.result_blocks(status_of(batch))):
                fh.write(block)
                if index == 0:
                    crashpoint("mid_download")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def decode_file(provider: BatchProvider, path: Path) -> Iterator[ItemOutcome]:
    """Decode a downloaded results file; a bad line names the file and line."""
    with open(path, "rb") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield provider.decode(line)
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
                raise CorruptResultsError(
                    f"corrupt result line {line_no} in {path}: {exc.__class__.__name__}",
                    retryable=True,
                    hint="it is downloaded again by the next collect",
                ) from exc


def collect_batch(
    store: Store,
    provider: BatchProvider,
    job: Job,
    batch: Batch,
    job_dir: Path,
    report: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Record the outcome of every item of one terminal batch; returns line counts.

    `report` hears the running count of result lines decoded, every 1,000 lines.
    """
    state = BatchState(batch.state)
    if state is BatchState.FAILED:
        if batch.error_code in REQUEUE_CODES:
            requeue_batch(store, batch)
            return {"lines": 0, "requeued": batch.total or 0}
        with store.tx() as tx:
            tx.fail_shard_items(
                job.id,
                batch,
                "batch_failed",
                batch.error_code or "batch_failed",
                batch.error or "the provider failed the batch as a whole",
                job.max_attempts,
            )
        return {"lines": 0, "failed_batch": batch.total or 0}
    schema = job.spec.output_schema  # None: no --schema
    path = results_path(job_dir, batch)
    for tries_left in range(DOWNLOAD_TRIES - 1, -1, -1):
        try:
            download_results(provider, batch, path)
            outcomes = decode_file(provider, path)
            if schema is not None:
                outcomes = validated(outcomes, schema)
            if report is not None:
                outcomes = every(outcomes, PROGRESS_EVERY, report)
            # One transaction: a corrupt line rolls back every outcome of the batch recorded before it.
            with store.tx() as tx:
                counts = tx.add_outcomes(job.id, batch, outcomes)
                crashpoint("mid_record")
                tx.settle_batch(job.id, batch, job.max_attempts)
                tx.record_answers(job.id, batch.shard_id, repeats=job.spec.fresh)  # what later jobs may reuse
            return counts
        except ProviderError as exc:
            if not exc.retryable or isinstance(exc, QuotaError) or not tries_left:
                raise
            path.unlink(missing_ok=True)  # garbled: fetch it again; cut short: nothing was kept
    raise AssertionError("unreachable")


def validated(outcomes: Iterator[ItemOutcome], schema: Any) -> Iterator[ItemOutcome]:
    """Successes checked against the job's schema: an answer that does not match becomes a retryable
    failure (message kept); one that cannot be checked at all, a permanent one. Never raises."""
    checker = schemas.OutputChecker(schema)
    for outcome in outcomes:
        if outcome.outcome is Outcome.SUCCEEDED:
            problem = checker.problem(outcome.output)
            if problem is not None:
                outcome.outcome = Outcome.RETRYABLE if problem.retryable else Outcome.PERMANENT
                outcome.error_type, outcome.error_code, outcome.error_message = "schema", problem.code, problem.message
        yield outcome
