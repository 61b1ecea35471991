"""What one poll round of `run` shows: batches by state, settled items, ETA and cost, as plain data.

Built from the `JobStatus` the round already read (no queries of its own). `panel.py` draws it
live on a terminal; `progress_line` is its one-line form for pipes and CI logs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import orjson

from llmbulk import costs
from llmbulk.errors import ExitStatus
from llmbulk.views import LIVE_BATCH_STATES, JobStatus, exit_status

# Batch states in the order a reader expects them; "unsent" is a shard not yet sent as a batch.
BATCH_ORDER = ("creating", "validating", "running", "finalizing", "cancelling", "ended", "failed", "expired",
               "cancelled", "requeued")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A job as one round saw it."""

    job_id: str
    provider: str
    model: str
    emulated: bool
    n_items: int
    settled: int
    succeeded: int
    failed: int
    dead: int
    retrying: int
    batches: dict[str, int]
    unsent: int
    latency: float | None  # mean created→ended of the ended batches
    ended_batches: int
    live_created: tuple[float, ...]  # when each batch still in flight was created
    cost: float | None
    estimate: float | None
    outcome: ExitStatus

    def eta(self, now: float) -> float | None:
        """Seconds until the last batch should end, from the observed latency (None: none ended yet)."""
        if self.outcome is not ExitStatus.RUNNING:
            return 0.0
        if self.latency is None:
            return None
        remaining = max((max(0.0, self.latency - (now - c)) for c in self.live_created), default=0.0)
        waiting = self.unsent or (self.retrying and not self.live_created)
        # Shards waiting for quota go out as the batches in flight end, as many at a time.
        waves = math.ceil(waiting / max(1, len(self.live_created))) if waiting else 0
        return remaining + waves * self.latency


def snapshot(status: JobStatus) -> Snapshot:
    job, counts = status.job, status.counts
    by_state: dict[str, int] = {}
    for batch in status.batches:
        by_state[batch.state] = by_state.get(batch.state, 0) + 1
    ordered = {s: by_state[s] for s in BATCH_ORDER if s in by_state}
    ordered.update({s: n for s, n in by_state.items() if s not in ordered})
    spans = [b.ended_at - b.created_at for b in status.batches if b.state == "ended" and b.ended_at and b.created_at]
    live = tuple(b.created_at for b in status.batches if b.state in LIVE_BATCH_STATES and b.created_at)
    return Snapshot(
        job_id=job.id, provider=job.provider, model=job.model, emulated=job.emulated, n_items=job.n_items,
        settled=status.settled, succeeded=counts.get("succeeded", 0), failed=counts.get("failed_permanent", 0),
        dead=counts.get("dead", 0), retrying=counts.get("failed_retryable", 0), batches=ordered,
        unsent=status.unsent_shards, latency=sum(spans) / len(spans) if spans else None, ended_batches=len(spans),
        live_created=live, cost=cost_so_far(status), estimate=estimated_cost(status), outcome=exit_status(status),
    )  # fmt: skip


def cost_so_far(status: JobStatus) -> float | None:
    """Batch cost of the collected results (cached tokens billed as input: an upper bound), None if unpriced."""
    usage, job = status.usage, status.job
    tokens = {"input_tokens": usage.get("input_tokens", 0), "n": usage.get("attempts", 0)}
    rates = costs.job_rates(job.provider, job.model, tokens)
    return None if rates is None else rates.cost(tokens["input_tokens"], usage.get("output_tokens", 0))


def estimated_cost(status: JobStatus) -> float | None:
    """The likely batch cost estimated at submit, if one was recorded."""
    raw = getattr(status.job, "estimate_json", None)
    value = orjson.loads(raw).get("batch_likely_usd") if raw else None
    return float(value) if value is not None else None


def clock(seconds: float) -> str:
    """0:07, 12:30, 1:02:03."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def seconds(value: float) -> str:
    """12s, or 0.5s under ten seconds."""
    return f"{value:.1f}s" if value < 10 else f"{value:.0f}s"


def money(value: float | None) -> str:
    return "unknown" if value is None else costs.usd(value)


def batches_text(snap: Snapshot, sep: str = " · ") -> str:
    parts = [f"{n} {state}" for state, n in snap.batches.items()]
    if snap.unsent:
        parts.append(f"{snap.unsent} waiting to send")
    return sep.join(parts) or "none yet"


def progress_line(snap: Snapshot, elapsed: float, now: float, next_poll: float | None) -> str:
    """One round as `progress: key=value …` (for pipes and CI logs)."""
    eta = snap.eta(now)
    batches = ",".join(f"{s}:{n}" for s, n in snap.batches.items())
    fields = [
        f"job={snap.job_id}",
        f"settled={snap.settled}/{snap.n_items}",
        f"succeeded={snap.succeeded}",
        f"failed={snap.failed}",
        f"dead={snap.dead}",
        *([f"retrying={snap.retrying}"] if snap.retrying else []),
        f"batches={batches or 'none'}" + (f",unsent:{snap.unsent}" if snap.unsent else ""),
        f"elapsed={elapsed:.0f}s",
        f"eta={'estimating' if eta is None else f'{eta:.0f}s'}",
        f"cost={money(snap.cost)}",
        *([f"estimate={money(snap.estimate)}"] if snap.estimate is not None else []),
        *([f"next_poll={seconds(next_poll)}"] if next_poll is not None else []),
    ]
    return "progress: " + " ".join(fields)


def outcome_words(snap: Snapshot) -> str:
    """The exit status in words."""
    if snap.outcome is ExitStatus.CANCELLED:
        return "cancelled"
    if snap.outcome is ExitStatus.DONE:
        return "done"
    if snap.outcome is ExitStatus.DONE_WITH_FAILURES:
        return "done with failures"
    if snap.live_created or snap.unsent:
        return "still running"
    return f"stopped with {snap.retrying:,} item(s) left to retry"


def final_line(snap: Snapshot, elapsed: float) -> str:
    """What the job came to: its status in words, the item outcomes, the time and the cost."""
    estimate = f" (estimated {money(snap.estimate)})" if snap.estimate is not None else ""
    return (
        f"{outcome_words(snap)}: job {snap.job_id} · {snap.succeeded:,} succeeded, {snap.failed:,} failed, "
        f"{snap.dead:,} dead of {snap.n_items:,} · {clock(elapsed)} · cost {money(snap.cost)}{estimate}"
    )


def transitions(before: dict[str, str], status: JobStatus) -> list[str]:
    """One line per batch whose state changed since `before` (batch id → state); updates `before`."""
    lines = []
    for batch in status.batches:
        name = batch.provider_batch_id or batch.id
        previous = before.get(batch.id)
        if previous == batch.state:
            continue
        before[batch.id] = batch.state
        took = ""
        if batch.state == "ended" and batch.ended_at and batch.created_at:
            took = f" after {batch.ended_at - batch.created_at:.1f}s"
        lines.append(f"batch {name}: {previous + ' → ' if previous else ''}{batch.state}{took}")
    return lines
