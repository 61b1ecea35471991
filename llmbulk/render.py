"""All terminal output: tables, progress, errors, JSON. The library never prints.

Human output goes through rich; `--json` output is plain JSON on stdout. Progress and notes go
to stderr so stdout stays parseable.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from llmbulk.panel import RichProgress as RichProgress  # its home is panel.py; the CLI imports it from here
from llmbulk.views import LIVE_BATCH_STATES, TERMINAL_BATCH_STATES

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
    from llmbulk.store.schema import Job
    from llmbulk.views import JobRecord

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

STATE_ORDER = ("queued", "submitted", "succeeded", "failed_retryable", "failed_permanent", "dead")


def print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")


def error(message: str) -> None:
    # Messages carry user data (file names, column names), so they are never parsed as markup.
    err.print(Text.assemble(("error:", "bold red"), " ", message), highlight=False)


# ---- payloads for --json -----------------------------------------------------------------------


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


# ---- human output ------------------------------------------------------------------------------


def usd_signed(value: float) -> str:
    from llmbulk import costs

    return costs.usd(value, signed=True)


def usd(value: float | None) -> str:
    from llmbulk import costs

    return "unknown (model not in the price library)" if value is None else costs.usd(value)


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


def estimate_line(estimate: Estimate | None) -> str:
    if estimate is None:
        return ""
    if estimate.batch_likely is None:
        return "estimated cost: unknown (model not in the price library)"
    return (
        f"estimated cost: likely {usd(estimate.batch_likely)}, at most {usd(estimate.batch_upper)} "
        f"(synchronous: {usd(estimate.sync_likely)}, saving {usd(estimate.saving)}); "
        f"~{estimate.input_tokens:,} input tokens"
    )


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
    }


def cost_report(report: CostReport) -> None:
    table = Table("", "input tokens", "output tokens", "batch cost", "synchronous cost")
    est = report.estimate or {}
    if est:
        table.add_row(
            "estimate (likely)",
            f"{est['input_tokens']:,}",
            f"{est['likely_output_tokens']:,}",
            usd(est.get("batch_likely_usd")),
            usd(est.get("sync_likely_usd")),
        )
        table.add_row("estimate (upper bound)", f"{est['input_tokens']:,}", f"{est['max_output_tokens']:,}",
                      usd(est.get("batch_upper_usd")), "")  # fmt: skip
    tokens = report.tokens
    table.add_row(
        "actual so far",
        f"{tokens['input_tokens']:,} ({tokens['cached_tokens']:,} cached)",
        f"{tokens['output_tokens']:,}",
        usd(report.actual_usd),
        usd(report.sync_usd),
    )
    out.print(table)
    if report.saving_usd is not None:
        out.print(f"saving against synchronous calls: {usd(report.saving_usd)}")
    if est.get("batch_likely_usd") and report.actual_usd is not None:
        diff = report.actual_usd - est["batch_likely_usd"]
        out.print(f"actual vs likely estimate: {usd_signed(diff)} ({diff / est['batch_likely_usd']:+.1%})")


def submit_result(result: SubmitResult) -> None:
    line = estimate_line(result.estimate)
    if line:
        err.print(line)
    if result.dry_run:
        table = Table(
            "shard",
            "items",
            "bytes",
            title=f"dry run: {result.n_items:,} items in {len(result.shards)} shard(s)",
        )
        for plan in result.shards:
            table.add_row(plan.shard_id, f"{plan.n_items:,}", f"{plan.n_bytes:,}")
        out.print(table)
        err.print("nothing was sent (--dry-run)")
        return
    out.print(result.job_id)
    queued = f", {result.queued_shards} shard(s) waiting for quota" if result.queued_shards else ""
    err.print(
        f"submitted {result.n_items:,} items in {len(result.batch_ids)} batch(es){queued}; "
        f"next: llmbulk status {result.job_id} --refresh  |  llmbulk collect {result.job_id}"
    )


def job_status(status: JobStatus, console: Console | None = None) -> None:
    """The job's summary and batches; on stderr when stdout carries machine output (`--out -`)."""
    show = console or out
    job = status.job
    progress = status.progress
    done = f"{progress:.0%}" if progress is not None else "unknown"
    emulated = " (emulated)" if job.emulated else ""
    show.print(
        f"[bold]{job.id}[/]  {escape(job.provider)}/{escape(job.model)}{emulated}  {job.n_items:,} items  "
        f"state {job.state}  settled {status.settled:,}/{job.n_items:,} ({done})"
    )
    counts = "  ".join(f"{s} {status.counts[s]:,}" for s in STATE_ORDER if status.counts.get(s))
    show.print(f"items: {counts or 'none'}")
    if status.batches:
        show.print(batches_table(status.batches))
    if status.unsent_shards:
        show.print(f"{status.unsent_shards} shard(s) not yet submitted (quota or interrupted): `llmbulk run {job.id}`")
    if status.errors:
        shown = ", ".join(f"{code or '?'} ×{n:,} ({state})" for state, code, n in status.errors[:6])
        show.print(f"errors: {shown}", markup=False)
    if status.dead:
        keys = ", ".join(str(d["key"]) for d in status.dead[:10])
        more = " …" if status.counts.get("dead", 0) > len(status.dead[:10]) else ""
        show.print(f"dead items (out of attempts): {keys}{more}", markup=False)
    usage = status.usage
    if usage.get("attempts"):
        show.print(f"tokens: {usage['input_tokens']:,} in / {usage['output_tokens']:,} out")
    hint = next_step(status)
    if hint:
        show.print(f"next: {hint}", markup=False)


RESULT_STATES = TERMINAL_BATCH_STATES - {"requeued"}


def next_step(status: JobStatus) -> str | None:
    """What to run next, when the job waits on the user rather than on the provider."""
    job = status.job
    if job.state == "cancelled":
        return f"the job is cancelled; `llmbulk resume {job.id}` continues it"
    in_flight = any(b.state in LIVE_BATCH_STATES for b in status.batches)
    uncollected = [b for b in status.batches if b.state in RESULT_STATES and not b.collected]
    if uncollected and not in_flight:
        n_ended = len(uncollected)
        return f"{n_ended} batch(es) ended with results to fetch: `llmbulk collect {job.id}` or `llmbulk run {job.id}`"
    if status.counts.get("failed_retryable") and not in_flight and not status.unsent_shards:
        n = status.counts["failed_retryable"]
        return f"{n:,} item(s) can be retried: `llmbulk retry {job.id}` or `llmbulk run {job.id}`"
    return None


def batches_table(batches: list[BatchView]) -> Table:
    table = Table("batch", "state", "provider status", "done", "failed", "age", "polled", "collected")
    now = time.time()
    for b in batches:
        if b.counts_known and b.total:
            done = f"{b.completed or 0:,}/{b.total:,}"
        elif b.total:
            done = f"?/{b.total:,} (not reported until ended)"
        else:
            done = "?"
        table.add_row(
            escape(b.provider_batch_id or b.id),
            b.state,
            escape(b.raw_status or ""),
            done,
            f"{b.failed:,}" if b.counts_known and b.failed is not None else "?",
            _ago(now, b.created_at),
            _ago(now, b.polled_at) if b.polled_at else "never",
            "yes" if b.collected else "no",
        )
    return table


def _ago(now: float, when: float | None) -> str:
    if not when:
        return ""
    seconds = max(0, int(now - when))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def collect_result(result: CollectResult) -> None:
    if result.output is not None and result.output.path is not None:
        parts = ", ".join(f"{k} {v:,}" for k, v in sorted(result.output.by_status.items()))
        err.print(f"wrote {result.output.rows:,} rows to {result.output.path} ({parts})", markup=False)
    if result.collected_batches:
        err.print(f"collected {len(result.collected_batches)} batch(es)")
    to_stdout = result.output is not None and result.output.path is None
    job_status(result.status, err if to_stdout else out)


def retry_result(result: RetryResult) -> None:
    if result.dead:
        err.print(f"{result.dead:,} item(s) are out of attempts and now dead")
    if not result.n_items:
        out.print("nothing to retry")
        return
    out.print(
        f"resubmitted {result.n_items:,} item(s) in {len(result.batch_ids)} batch(es): {', '.join(result.batch_ids)}"
    )


def run_result(result: RunResult) -> None:
    if result.output is not None and result.output.path is not None:
        parts = ", ".join(f"{k} {v:,}" for k, v in sorted(result.output.by_status.items()))
        err.print(f"wrote {result.output.rows:,} rows to {result.output.path} ({parts})", markup=False)
    if result.timed_out:
        err.print(f"timeout reached; job {result.job_id} keeps running — continue with `llmbulk run {result.job_id}`")
    if result.budget_stopped:
        err.print(
            f"retries stopped at --max-cost; job {result.job_id} stays open — continue with "
            f"`llmbulk run {result.job_id} --max-cost MORE`"
        )
    to_stdout = result.output is not None and result.output.path is None
    job_status(result.status, err if to_stdout else out)


def jobs_table(jobs: list[Job]) -> None:
    table = Table("job", "created", "provider", "model", "items", "state", "emulated")
    for job in jobs:
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(job.created_at))
        table.add_row(
            job.id,
            created,
            escape(job.provider),
            escape(job.model),
            f"{job.n_items:,}",
            job.state,
            "yes" if job.emulated else "",
        )
    out.print(table)


def items_table(rows: list[dict[str, Any]]) -> None:
    table = Table("key", "row", "state", "attempts", "error")
    for r in rows:
        error = f"{r.get('error_code') or r.get('error_type') or ''}: {r.get('error_message') or ''}".strip(": ")
        table.add_row(escape(str(r["key"])), str(r["row_index"] + 1), r["state"], str(r["attempts"]), escape(error))
    out.print(table)


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


def stats_report(stats: Stats) -> None:
    out.print(f"jobs: {', '.join(stats.job_ids) or 'none'}")
    lat = stats.latency_seconds
    if lat:
        out.print(
            f"batch latency (created → ended), {stats.batches_ended} batches: min {lat['min']:.1f}s  "
            f"p50 {lat['p50']:.1f}s  p90 {lat['p90']:.1f}s  max {lat['max']:.1f}s"
        )
    if stats.items_per_hour is not None:
        out.print(f"throughput: {stats.items_per_hour:,.0f} items/hour")
    if stats.failure_rate is not None:
        out.print(f"attempts: {stats.attempts:,}  failure rate {stats.failure_rate:.1%}  retries {stats.retries:,}")
    for outcome, code, n in stats.failures_by_code[:10]:
        out.print(f"  {code or '?':<28} {outcome:<18} {n:,}", markup=False)
    states = "  ".join(f"{k} {v:,}" for k, v in sorted(stats.states.items()))
    out.print(f"items: {states}  (dead = out of attempts)")
    out.print(f"cost so far: {usd(stats.actual_usd)}")
