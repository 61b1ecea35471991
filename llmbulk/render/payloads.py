"""What `--json` prints and the rows each `--format` writes: plain dicts built from the result objects.

No printing and no rich here: each builder turns one result into the JSON shape users script
against, and the *_COLUMNS tuples fix the column order of the csv / jsonl tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmbulk.api import (
        BatchView,
        CollectResult,
        CostReport,
        JobStatus,
        RetryResult,
        RunResult,
        Stats,
        SubmitResult,
    )
    from llmbulk.costs import Estimate
    from llmbulk.events import DeliveryFailures
    from llmbulk.jobs.types import Check, WorkerResult
    from llmbulk.views import JobRecord

BATCH_COLUMNS = ("id", "provider_batch_id", "state", "raw_status", "total", "completed", "failed", "counts_known",
                 "created_at", "ended_at", "collected", "error")  # fmt: skip
JOB_COLUMNS = ("job_id", "created_at", "provider", "model", "state", "n_items", "emulated", "input", "output")
COST_COLUMNS = ("row", "input_tokens", "cached_tokens", "output_tokens", "batch_usd", "sync_usd")
ITEM_COLUMNS = ("key", "row_index", "state", "attempts", "error_type", "error_code", "error_message")


def job_json(job: JobRecord) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "created_at": job.created_at,
        "provider": job.provider,
        "model": job.model,
        "state": job.state,
        "n_items": job.n_items,
        "emulated": job.emulated,
        "input": job.input_path,
        "output": job.out_path,
    }


def status_json(status: JobStatus) -> dict[str, Any]:
    return {
        **job_json(status.job),
        "finished": status.finished,
        "progress": status.progress,
        "counts": status.counts,
        "unsent_shards": status.unsent_shards,
        "batches": [batch_json(b) for b in status.batches],
        "errors": [{"state": s, "code": c, "count": n} for s, c, n in status.errors],
        "usage": status.usage,
        "dead": status.dead,
        "queued_for_quota": None if status.quota is None else status.quota.as_json(),
    }


def batch_json(batch: BatchView) -> dict[str, Any]:
    return {
        "id": batch.id,
        "provider_batch_id": batch.provider_batch_id,
        "state": batch.state,
        "raw_status": batch.raw_status,
        "total": batch.total,
        "completed": batch.completed if batch.counts_known else None,
        "failed": batch.failed if batch.counts_known else None,
        "counts_known": batch.counts_known,
        "created_at": batch.created_at,
        "ended_at": batch.ended_at,
        "collected": batch.collected,
        "error": batch.error,
    }


def estimate_json(estimate: Estimate | None) -> dict[str, Any] | None:
    if estimate is None:
        return None
    return {
        "input_tokens": estimate.input_tokens,
        "likely_output_tokens": estimate.likely_output_tokens,
        "max_output_tokens": estimate.max_output_tokens,
        "batch_likely_usd": estimate.batch_likely,
        "batch_upper_usd": estimate.batch_upper,
        "sync_likely_usd": estimate.sync_likely,
        "saving_usd": estimate.saving,
    }


def cost_json(report: CostReport) -> dict[str, Any]:
    estimate = report.estimate
    if estimate is not None and "saving_usd" not in estimate:
        batch, sync = estimate.get("batch_likely_usd"), estimate.get("sync_likely_usd")
        estimate = {**estimate, "saving_usd": None if batch is None or sync is None else sync - batch}
    return {
        "job_id": report.job_id,
        "estimate": estimate,
        "tokens": report.tokens,
        "actual_usd": report.actual_usd,
        "sync_usd": report.sync_usd,
        "saving_usd": report.saving_usd,
        "reused": {**report.reused, "not_spent_usd": report.reused_usd} if report.reused.get("items") else None,
    }


def cost_rows(report: CostReport) -> list[dict[str, Any]]:
    """The cost table's rows for csv / jsonl: estimates (when recorded) and the actual so far."""
    est, tokens = report.estimate or {}, report.tokens
    rows = []
    if est:
        for row, output_key, batch_key, sync_key in (
            ("estimate_likely", "likely_output_tokens", "batch_likely_usd", "sync_likely_usd"),
            ("estimate_upper", "max_output_tokens", "batch_upper_usd", None),
        ):
            rows.append({"row": row, "input_tokens": est["input_tokens"], "cached_tokens": None,
                         "output_tokens": est[output_key], "batch_usd": est.get(batch_key),
                         "sync_usd": est.get(sync_key) if sync_key else None})  # fmt: skip
    rows.append({"row": "actual", "input_tokens": tokens["input_tokens"], "cached_tokens": tokens["cached_tokens"],
                 "output_tokens": tokens["output_tokens"], "batch_usd": report.actual_usd,
                 "sync_usd": report.sync_usd})  # fmt: skip
    reused = report.reused
    if reused.get("items"):
        rows.append({"row": "reused_not_sent", "input_tokens": reused["input_tokens"],
                     "cached_tokens": reused["cached_tokens"], "output_tokens": reused["output_tokens"],
                     "batch_usd": report.reused_usd, "sync_usd": None})  # fmt: skip
    return rows


def stats_json(stats: Stats) -> dict[str, Any]:
    return {
        "jobs": stats.job_ids,
        "batches_ended": stats.batches_ended,
        "batch_latency_seconds": stats.latency_seconds,
        "items_per_hour": stats.items_per_hour,
        "attempts": stats.attempts,
        "failure_rate": stats.failure_rate,
        "failures_by_code": [{"outcome": o, "code": c, "count": n} for o, c, n in stats.failures_by_code],
        "retries": stats.retries,
        "items_by_state": stats.states,
        "actual_usd": stats.actual_usd,
    }


def submit_json(result: SubmitResult) -> dict[str, Any]:
    return {
        "job_id": result.job_id,
        "n_items": result.n_items,
        "batch_ids": result.batch_ids,
        "queued_shards": result.queued_shards,
        "dry_run": result.dry_run,
        "continued": result.continued,
        "estimate": estimate_json(result.estimate),
        "reuse": None if result.reuse is None else result.reuse.to_json(),
        "shards": [{name: getattr(s, name) for name in s.__slots__} for s in result.shards],
    }


def run_json(result: RunResult) -> dict[str, Any]:
    payload = status_json(result.status)
    payload["timed_out"] = result.timed_out
    payload["output_path"] = str(result.output.path) if result.output and result.output.path else None
    return payload


def collect_json(result: CollectResult) -> dict[str, Any]:
    payload = status_json(result.status)
    payload["collected_batches"] = result.collected_batches
    payload["output_path"] = str(result.output.path) if result.output and result.output.path else None
    return payload


def retry_json(result: RetryResult) -> dict[str, Any]:
    return {"job_id": result.job_id, "n_items": result.n_items, "batch_ids": result.batch_ids, "dead": result.dead}


def worker_json(result: WorkerResult) -> dict[str, Any]:
    return {
        "finished": result.finished,
        "still_running": result.still_running,
        "skipped": result.skipped,
        "failed": [{"job_id": j, "error": e} for j, e in result.failed],
    }


def doctor_json(checks: list[Check]) -> list[dict[str, Any]]:
    return [{"check": c.name, "ok": c.ok, "detail": c.detail} for c in checks]


def deliveries_json(failures: DeliveryFailures | None) -> dict[str, Any] | None:
    if failures is None:
        return None
    return {"target": failures.target, "count": failures.count, "last_failed_at": failures.last_at}
