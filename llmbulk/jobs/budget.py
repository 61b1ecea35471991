"""Cost policy of a job: the estimate at submit, the --max-cost gate, and spend so far."""

from __future__ import annotations

from typing import Any

import orjson

from llmbulk import costs
from llmbulk.errors import (
    BudgetError,
)
from llmbulk.session import Session
from llmbulk.store import Store
from llmbulk.store.schema import Job
from llmbulk.tasks import TaskSpec


def estimate_for(store: Store, job: Job, spec: TaskSpec, chars: int, n_items: int) -> costs.Estimate:
    per_token, per_item = store.calibration(job.provider, job.model, job.emulated)
    return costs.estimate(
        job.provider,
        job.model,
        chars,
        n_items,
        spec.params.get("max_tokens"),
        chars_per_token=per_token or costs.CHARS_PER_TOKEN,
        past_output_per_item=per_item,
    )


def estimate_json(estimate: costs.Estimate) -> dict[str, Any]:
    return {
        "input_tokens": estimate.input_tokens,
        "likely_output_tokens": estimate.likely_output_tokens,
        "max_output_tokens": estimate.max_output_tokens,
        "batch_likely_usd": estimate.batch_likely,
        "batch_upper_usd": estimate.batch_upper,
        "sync_likely_usd": estimate.sync_likely,
    }


def check_budget(estimate: costs.Estimate, max_cost: float | None, job: Job) -> None:
    if max_cost is None:
        return
    if estimate.batch_upper is None:
        raise BudgetError(
            f"--max-cost given but {job.provider}/{job.model} has no known price",
            hint="drop --max-cost or use a model the price library knows",
        )
    if estimate.batch_upper > max_cost:
        raise BudgetError(
            f"estimated cost up to {costs.usd(estimate.batch_upper)} (likely {costs.usd(estimate.batch_likely or 0)})"
            f" is over --max-cost {costs.usd(max_cost)}; nothing was sent",
            hint="raise --max-cost, lower --max-tokens, or submit fewer rows",
        )


def spent(store: Store, job: Job) -> float | None:
    """Actual batch spend of the job so far (every attempt billed), or None for an unpriced model."""
    tokens = store.token_totals(job.id)
    rates = costs.job_rates(job.provider, job.model, tokens)
    return rates.cost(tokens["input_tokens"], tokens["output_tokens"], tokens["cached_tokens"]) if rates else None


def within_budget(session: Session, job: Job, n_retry: int) -> bool:
    """Whether resubmitting `n_retry` items keeps spend (actual + their share of the estimate) under --max-cost."""
    max_cost = job.spec.max_cost
    if max_cost is None or not job.n_items:
        return True
    tokens = session.store.token_totals(job.id)
    rates = costs.job_rates(job.provider, job.model, tokens)
    if rates is None:
        return True
    spent = rates.cost(tokens["input_tokens"], tokens["output_tokens"], tokens["cached_tokens"])
    estimate = orjson.loads(job.estimate_json or "{}")
    requests = estimate.get("requests", job.n_items) or 1  # what the estimate was made for (rows sent)
    upper = (estimate.get("batch_upper_usd") or 0.0) * n_retry / requests
    if spent + upper <= max_cost:
        return True
    session.events.emit("job.budget_reached", job.id, spent_usd=spent, retry_items=n_retry, max_cost=max_cost)
    session.progress.note(f"not retrying {n_retry} item(s): spend {costs.usd(spent)} + retries would pass --max-cost")
    return False
