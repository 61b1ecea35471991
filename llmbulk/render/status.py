"""A job's status as people read it: the summary, its batches, what to run next, and `status --format`.

`run` and `collect` end with the same view, on stderr when their rows go to stdout (`--out -`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.markup import escape

from llmbulk.listing import Grid, write_rows
from llmbulk.render.console import ago, err, out, print_grid, print_json, warning
from llmbulk.render.payloads import BATCH_COLUMNS, batch_json, deliveries_json, status_json
from llmbulk.retention import expiry_warning
from llmbulk.states import JobState
from llmbulk.views import LIVE_BATCH_STATES, TERMINAL_BATCH_STATES

if TYPE_CHECKING:
    from rich.console import Console

    from llmbulk.api import BatchView, CollectResult, JobStatus, RunResult
    from llmbulk.events import DeliveryFailures
    from llmbulk.merge import MergeSummary

STATE_ORDER = ("queued", "submitted", "succeeded", "failed_retryable", "failed_permanent", "dead")
RESULT_STATES = TERMINAL_BATCH_STATES - {"requeued"}


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
    if status.quota is not None:
        show.print(status.quota.line(), markup=False, soft_wrap=False)
    elif status.unsent_shards:
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
            ago(now, b.created_at),
            ago(now, b.polled_at) if b.polled_at else "never",
            b.raw_status or "",
        ))  # fmt: skip
    return grid


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


def wrote(output: MergeSummary | None) -> None:
    """`wrote N rows to PATH (status counts)` for an output table written to a file."""
    if output is not None and output.path is not None:
        parts = ", ".join(f"{k} {v:,}" for k, v in sorted(output.by_status.items()))
        err.print(f"wrote {output.rows:,} rows to {output.path} ({parts})", markup=False)


def collect_result(result: CollectResult) -> None:
    wrote(result.output)
    if result.collected_batches:
        err.print(f"collected {len(result.collected_batches)} batch(es)")
    to_stdout = result.output is not None and result.output.path is None
    job_status(result.status, err if to_stdout else out)


def run_result(result: RunResult) -> None:
    wrote(result.output)
    if result.timed_out:
        err.print(f"timeout reached; job {result.job_id} keeps running — continue with `llmbulk run {result.job_id}`")
    if result.budget_stopped:
        err.print(
            f"retries stopped at --max-cost; job {result.job_id} stays open — continue with "
            f"`llmbulk run {result.job_id} --max-cost MORE`"
        )
    to_stdout = result.output is not None and result.output.path is None
    job_status(result.status, err if to_stdout else out)


def expiry_notice(status: JobStatus) -> None:
    """One warning line when ended batches' results are not collected and expire at the provider soon."""
    expiring = expiry_warning(status)
    if expiring is not None:
        warning(expiring)
