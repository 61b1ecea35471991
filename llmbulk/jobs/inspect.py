"""Reading a job without changing it: `items`, `cost`, `stats`, `jobs`.

`items` and `cost` read through the quick reader (the database driver alone) when they can, and
this module imports the session (SQLAlchemy, the migrations) only when they cannot: both are light
commands, answered in well under the time those imports take.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from llmbulk import costs
from llmbulk.config import Settings, load_settings
from llmbulk.errors import UsageError
from llmbulk.jobs.types import CostReport, Stats
from llmbulk.progress import NO_PROGRESS
from llmbulk.states import ItemState
from llmbulk.store import quick
from llmbulk.tables import detect_format

if TYPE_CHECKING:
    from llmbulk.store.schema import Job


class PricedJob(Protocol):
    """The job fields a cost report needs (the store's Job row, or the quick reader's)."""

    id: str
    provider: str
    model: str
    estimate_json: str | None


def items(
    job_id: str, state: str, out: Path | None = None, *, limit: int | None = None, settings: Settings | None = None
) -> list[dict[str, Any]]:
    """Items of a job in one state (e.g. the dead-letter list) with the error of their last attempt."""
    if state not in {s.value for s in ItemState}:
        raise UsageError(f"unknown item state {state!r}", hint=", ".join(s.value for s in ItemState))
    settings = settings or load_settings()
    rows = quick.read_items(settings.db_url, job_id, state, limit)
    if rows is None:
        from llmbulk.session import open_session

        with open_session(settings, NO_PROGRESS) as session:
            session.store.get_job(job_id)
            rows = session.store.items_in_state(job_id, state, limit)
    if out is not None:
        from llmbulk.tables import TableWriter

        columns = ["key", "row_index", "state", "attempts", "error_type", "error_code", "error_message"]
        writer = TableWriter(
            None if str(out) == "-" else out, detect_format(out) if str(out) != "-" else "jsonl", columns
        )
        for row in rows:
            writer.write(row)
        writer.close()
    return rows


def cost(job_id: str, *, settings: Settings | None = None) -> CostReport:
    """What a job was estimated to cost, what it has cost so far, and the saving against synchronous calls."""
    settings = settings or load_settings()
    found = quick.read_tokens(settings.db_url, job_id)
    if found is not None:
        return cost_report(*found)
    from llmbulk.session import open_session

    with open_session(settings, NO_PROGRESS) as session:
        job = session.store.get_job(job_id)
        tokens, reused = session.store.token_totals(job_id), session.store.reused_totals(job_id)
    return cost_report(job, tokens, reused)


def cost_report(job: PricedJob, tokens: dict[str, int], reused: dict[str, int]) -> CostReport:
    """The cost report of a job from its token totals (billed, and reused without sending)."""
    batch = costs.job_rates(job.provider, job.model, tokens, True)
    sync = costs.job_rates(job.provider, job.model, tokens, False)
    usage = (tokens["input_tokens"], tokens["output_tokens"], tokens["cached_tokens"])
    reused_rates = costs.job_rates(job.provider, job.model, reused, True)
    not_spent = (
        reused_rates.cost(reused["input_tokens"], reused["output_tokens"], reused["cached_tokens"])
        if reused_rates
        else None
    )
    return CostReport(
        job.id,
        orjson.loads(job.estimate_json) if job.estimate_json else None,
        tokens,
        batch.cost(*usage) if batch else None,
        sync.cost(*usage) if sync else None,
        reused,
        not_spent,
    )


def stats(job_id: str | None = None, *, recent: int = 20, settings: Settings | None = None) -> Stats:
    """Batch latency distribution, throughput, failure rate by error code, retries, dead items, cost."""
    from llmbulk.session import open_session

    with open_session(settings, NO_PROGRESS) as session:
        selected = [session.store.get_job(job_id)] if job_id else session.store.list_jobs(recent)
        raw = session.store.stats_rows([j.id for j in selected])
        spend: list[float] = []
        for job in selected:
            tokens = session.store.token_totals(job.id)
            found = costs.job_rates(job.provider, job.model, tokens)
            if found is not None:
                spend.append(found.cost(tokens["input_tokens"], tokens["output_tokens"], tokens["cached_tokens"]))
    latencies = sorted(raw["latencies"])
    attempts = sum(n for _, _, n in raw["outcomes"])
    failed = sum(n for o, _, n in raw["outcomes"] if o != "succeeded")
    settled = sum(n for o, _, n in raw["outcomes"] if o == "succeeded")
    start, end = raw["span"]
    hours = (end - start) / 3600 if start and end and end > start else None
    return Stats(
        job_ids=[j.id for j in selected],
        batches_ended=len(latencies),
        latency_seconds=percentiles(latencies),
        items_per_hour=settled / hours if hours else None,
        attempts=attempts,
        failure_rate=failed / attempts if attempts else None,
        failures_by_code=[(o, c, n) for o, c, n in raw["outcomes"] if o != "succeeded"],
        retries=raw["retries"],
        states=raw["states"],
        actual_usd=sum(spend) if spend else None,
    )


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    pick = lambda q: values[min(len(values) - 1, int(q * (len(values) - 1) + 0.5))]  # noqa: E731
    return {"min": values[0], "p50": pick(0.5), "p90": pick(0.9), "max": values[-1]}


def jobs(limit: int = 50, *, settings: Settings | None = None) -> list[Job]:
    """Jobs in this state database, newest first."""
    from llmbulk.session import open_session

    with open_session(settings, NO_PROGRESS) as session:
        return session.store.list_jobs(limit)
