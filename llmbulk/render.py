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

from llmbulk.listing import Grid, write_rows
from llmbulk.models import JobState
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
    from llmbulk.events import DeliveryFailures
    from llmbulk.jobs.types import Check, WorkerResult
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


def cost_report(report: CostReport) -> None:
    grid = Grid(("cost", "input tokens", "output", "batch", "sync"), right=("input tokens", "output", "batch", "sync"))
    est = report.estimate or {}
    if est:
        grid.rows.append(("estimate (likely)", f"{est['input_tokens']:,}", f"{est['likely_output_tokens']:,}",
                          usd_short(est.get("batch_likely_usd")), usd_short(est.get("sync_likely_usd"))))  # fmt: skip
        grid.rows.append(("estimate (upper bound)", f"{est['input_tokens']:,}", f"{est['max_output_tokens']:,}",
                          usd_short(est.get("batch_upper_usd")), ""))  # fmt: skip
    tokens = report.tokens
    grid.rows.append((
        "actual so far",
        f"{tokens['input_tokens']:,} ({tokens['cached_tokens']:,} cached)",
        f"{tokens['output_tokens']:,}",
        usd_short(report.actual_usd),
        usd_short(report.sync_usd),
    ))  # fmt: skip
    reused = report.reused
    if reused.get("items"):
        grid.rows.append((
            f"reused, not sent ({reused['items']:,} items)",
            f"{reused['input_tokens']:,} ({reused['cached_tokens']:,} cached)",
            f"{reused['output_tokens']:,}",
            usd_short(report.reused_usd),
            "",
        ))  # fmt: skip
    print_grid(grid, out)
    if reused.get("items") and report.reused_usd is not None:
        out.print(f"not spent by reusing answers: {usd(report.reused_usd)} ({reused['items']:,} items)")
    if any("unknown" in cell for row in grid.rows for cell in row):
        out.print("unknown: the model is not in the price library")
    if report.saving_usd is not None:
        out.print(f"saving against synchronous calls: {usd(report.saving_usd)}")
    if est.get("batch_likely_usd") and report.actual_usd is not None:
        diff = report.actual_usd - est["batch_likely_usd"]
        out.print(f"actual vs likely estimate: {usd_signed(diff)} ({diff / est['batch_likely_usd']:+.1%})")


def cache_stats(stats: dict[str, Any]) -> None:
    grid = Grid(("answers", "bytes", "reused", "not spent", "oldest", "newest"),
                right=("answers", "bytes", "reused", "not spent"))  # fmt: skip
    now = time.time()
    grid.rows.append((
        f"{stats['entries']:,}", f"{stats['bytes']:,}", f"{stats['hits']:,}", usd(stats["saved_usd"]),
        _ago(now, stats["oldest"]) if stats["oldest"] else "-", _ago(now, stats["newest"]) if stats["newest"] else "-",
    ))  # fmt: skip
    print_grid(grid, out)


def usd_short(value: float | None) -> str:
    from llmbulk import costs

    return "unknown" if value is None else costs.usd(value)


def print_grid(grid: Grid, console: Console) -> None:
    """A compact table: one line per row, at most the console's width, the header in bold."""
    lines = grid.lines(console.width)
    console.print(Text(lines[0], style="bold"))
    for line in lines[1:]:
        console.print(line, markup=False, highlight=False)


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
    sent = "" if result.reuse is None or not result.reuse.summary() else f" ({result.reuse.sent:,} sent)"
    err.print(
        f"submitted {result.n_items:,} items{sent} in {len(result.batch_ids)} batch(es){queued}; "
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
        f"[bold]{job.id}[/]  {escape(job.provider)}/{escape(job.model)}{emulated}  state {job.state}  "
        f"settled {status.settled:,}/{job.n_items:,} ({done})",
        soft_wrap=False,
    )
    counts = "  ".join(f"{s} {status.counts[s]:,}" for s in STATE_ORDER if status.counts.get(s))
    show.print(f"items: {counts or 'none'}", soft_wrap=False)
    if status.batches:
        print_grid(batches_grid(status.batches), show)
    if status.unsent_shards:
        show.print(
            f"{status.unsent_shards} shard(s) not yet submitted (quota or interrupted): `llmbulk run {job.id}`",
            soft_wrap=False,
        )
    if status.errors:
        shown = ", ".join(f"{code or '?'} ×{n:,} ({state})" for state, code, n in status.errors[:6])
        show.print(f"errors: {shown}", markup=False, soft_wrap=False)
    if status.dead:
        keys = ", ".join(str(d["key"]) for d in status.dead[:10])
        more = " …" if status.counts.get("dead", 0) > len(status.dead[:10]) else ""
        show.print(f"dead items (out of attempts): {keys}{more}", markup=False, soft_wrap=False)
    usage = status.usage
    if usage.get("attempts"):
        show.print(f"tokens: {usage['input_tokens']:,} in / {usage['output_tokens']:,} out")
    hint = next_step(status)
    if hint:
        show.print(f"next: {hint}", markup=False, soft_wrap=False)


RESULT_STATES = TERMINAL_BATCH_STATES - {"requeued"}


def next_step(status: JobStatus) -> str | None:
    """What to run next, when the job waits on the user rather than on the provider."""
    job = status.job
    if job.state == JobState.CANCELLED:
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


def batches_grid(batches: list[BatchView]) -> Grid:
    """One line per batch with its full provider id; counts a provider reports only at the end show as `?`."""
    grid = Grid(
        ("batch", "state", "done", "failed", "collected", "age", "polled", "provider status"),
        optional=("failed", "age", "polled", "provider status"),
        right=("done", "failed"),
    )
    now = time.time()
    for b in batches:
        total = f"/{b.total:,}" if b.total else ""
        done = f"{b.completed or 0:,}{total}" if b.counts_known else f"?{total}"
        grid.rows.append((
            b.provider_batch_id or b.id,
            b.state,
            done,
            f"{b.failed:,}" if b.counts_known and b.failed is not None else "?",
            "yes" if b.collected else "no",
            _ago(now, b.created_at),
            _ago(now, b.polled_at) if b.polled_at else "never",
            b.raw_status or "",
        ))  # fmt: skip
    return grid


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
    grid = Grid(("job", "created", "model", "items", "state", "emulated"), optional=("emulated",), elastic="model",
                right=("items",))  # fmt: skip
    for job in jobs:
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(job.created_at))
        grid.rows.append((job.id, created, f"{job.provider}/{job.model}", f"{job.n_items:,}", job.state,
                          "yes" if job.emulated else ""))  # fmt: skip
    print_grid(grid, out)


ITEM_COLUMNS = ("key", "row_index", "state", "attempts", "error_type", "error_code", "error_message")


def items_table(rows: list[dict[str, Any]]) -> None:
    grid = Grid(("key", "row", "state", "attempts", "error"), elastic="error", right=("row", "attempts"))
    for r in rows:
        error = f"{r.get('error_code') or r.get('error_type') or ''}: {r.get('error_message') or ''}".strip(": ")
        grid.rows.append(
            (str(r["key"]), str(r["row_index"] + 1), r["state"], str(r["attempts"]), " ".join(error.split()))
        )
    print_grid(grid, out)


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


# ---- command results as --json payloads, and the tables in each --format ---------------------


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


def worker_summary(result: WorkerResult) -> None:
    err.print(
        f"finished {len(result.finished)}, still running {len(result.still_running)}, "
        f"skipped (held by another runner) {len(result.skipped)}, could not advance {len(result.failed)}"
    )


def doctor_json(checks: list[Check]) -> list[dict[str, Any]]:
    return [{"check": c.name, "ok": c.ok, "detail": c.detail} for c in checks]


def doctor_report(checks: list[Check]) -> None:
    for check in checks:
        mark = "[green]ok[/]  " if check.ok else "[yellow]--[/]  "
        out.print(f"{mark}{check.name}: {escape(check.detail)}")


def warning(message: str) -> None:
    """A problem that does not stop the command (a hook that could not be reached), on one line."""
    err.print(Text.assemble(("warning:", "yellow"), " ", message), highlight=False)


def deliveries_json(failures: DeliveryFailures | None) -> dict[str, Any] | None:
    if failures is None:
        return None
    return {"target": failures.target, "count": failures.count, "last_failed_at": failures.last_at}


def deliveries_line(failures: DeliveryFailures) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(failures.last_at))
    return f"{failures.target}: last delivery failed at {when} ({failures.count} failure{'s' * (failures.count != 1)})"


def status_output(status: JobStatus, kind: str, failures: DeliveryFailures | None = None) -> None:
    """`status` in a --format: the summary and its batches (table), all of it (json), the batches (csv, jsonl)."""
    if kind == "json":
        print_json({**status_json(status), "hook_failures": deliveries_json(failures)})
    elif kind in ("csv", "jsonl"):
        write_rows(kind, [batch_json(b) for b in status.batches], BATCH_COLUMNS)
    else:
        job_status(status)
        if failures is not None:
            out.print(deliveries_line(failures), markup=False, soft_wrap=False)


BATCH_COLUMNS = ("id", "provider_batch_id", "state", "raw_status", "total", "completed", "failed", "counts_known",
                 "created_at", "ended_at", "collected", "error")  # fmt: skip
JOB_COLUMNS = ("job_id", "created_at", "provider", "model", "state", "n_items", "emulated", "input", "output")
COST_COLUMNS = ("row", "input_tokens", "cached_tokens", "output_tokens", "batch_usd", "sync_usd")


def jobs_output(jobs: list[Job], kind: str) -> None:
    if kind == "table":
        jobs_table(jobs)
    else:
        write_rows(kind, [job_json(j) for j in jobs], JOB_COLUMNS)


def items_output(rows: list[dict[str, Any]], kind: str) -> None:
    if kind == "table":
        items_table(rows)
    else:
        write_rows(kind, rows, ITEM_COLUMNS)


def cost_output(report: CostReport, kind: str) -> None:
    if kind == "table":
        cost_report(report)
    elif kind == "json":
        print_json(cost_json(report))
    else:
        write_rows(kind, cost_rows(report), COST_COLUMNS)
