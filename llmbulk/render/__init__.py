"""All terminal output: tables, progress, errors, JSON. The library never prints.

Human output goes through rich; `--json` output is plain JSON on stdout. Progress and notes go
to stderr so stdout stays parseable. This module renders the commands' results other than a job's
status and money (submit, retry, jobs, items, stats, worker, doctor); the consoles and printing
primitives live in `console`, the `--json` payloads and `--format` rows in `payloads`, a job's
status (also how `run` and `collect` end) in `status`, money in `cost` (all re-exported here).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

from llmbulk.listing import Grid, write_rows
from llmbulk.panel import RichProgress as RichProgress  # its home is panel.py; the CLI imports it from here
from llmbulk.render.console import err, error, out, print_grid, print_json, warning
from llmbulk.render.cost import cache_stats, cost_output, estimate_line, usd
from llmbulk.render.gc import gc_json, gc_report
from llmbulk.render.limits import limits_json, limits_table
from llmbulk.render.payloads import (
    ITEM_COLUMNS,
    JOB_COLUMNS,
    collect_json,
    doctor_json,
    job_json,
    retry_json,
    run_json,
    stats_json,
    status_json,
    submit_json,
    worker_json,
)
from llmbulk.render.status import batches_grid, collect_result, expiry_notice, job_status, run_result, status_output

if TYPE_CHECKING:
    from llmbulk.api import RetryResult, Stats, SubmitResult
    from llmbulk.jobs.types import Check, WorkerResult
    from llmbulk.store.schema import Job

__all__ = [  # what the CLI and the tests use from the parts
    "RichProgress",
    "batches_grid",
    "cache_stats",
    "collect_json",
    "collect_result",
    "cost_output",
    "doctor_json",
    "err",
    "error",
    "expiry_notice",
    "gc_json",
    "gc_report",
    "job_status",
    "limits_json",
    "limits_table",
    "out",
    "print_json",
    "retry_json",
    "run_json",
    "run_result",
    "stats_json",
    "status_json",
    "status_output",
    "submit_json",
    "warning",
    "worker_json",
]


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


def retry_result(result: RetryResult) -> None:
    if result.dead:
        err.print(f"{result.dead:,} item(s) are out of attempts and now dead")
    if not result.n_items:
        out.print("nothing to retry")
        return
    out.print(
        f"resubmitted {result.n_items:,} item(s) in {len(result.batch_ids)} batch(es): {', '.join(result.batch_ids)}"
    )


def jobs_table(jobs: list[Job]) -> None:
    grid = Grid(("job", "created", "model", "items", "state", "emulated"), optional=("emulated",), elastic="model",
                right=("items",))  # fmt: skip
    for job in jobs:
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(job.created_at))
        grid.rows.append((job.id, created, f"{job.provider}/{job.model}", f"{job.n_items:,}", job.state,
                          "yes" if job.emulated else ""))  # fmt: skip
    print_grid(grid, out)


def items_table(rows: list[dict[str, Any]]) -> None:
    grid = Grid(("key", "row", "state", "attempts", "error"), elastic="error", right=("row", "attempts"))
    for r in rows:
        error = f"{r.get('error_code') or r.get('error_type') or ''}: {r.get('error_message') or ''}".strip(": ")
        grid.rows.append(
            (str(r["key"]), str(r["row_index"] + 1), r["state"], str(r["attempts"]), " ".join(error.split()))
        )
    print_grid(grid, out)


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


def worker_summary(result: WorkerResult) -> None:
    err.print(
        f"finished {len(result.finished)}, still running {len(result.still_running)}, "
        f"skipped (held by another runner) {len(result.skipped)}, could not advance {len(result.failed)}"
    )


def doctor_report(checks: list[Check]) -> None:
    for check in checks:
        mark = "[green]ok[/]  " if check.ok else "[yellow]--[/]  "
        out.print(f"{mark}{check.name}: {escape(check.detail)}")
