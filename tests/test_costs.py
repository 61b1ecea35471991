"""Costs: per-token rates from genai-prices match the library's own figures (incl. cached tokens);
unknown models are unknown, never $0; the budget gate refuses and allows."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from conftest import QUICKSTART, Outcome
from genai_prices import Usage, calc_price

from llmbulk import costs

CASES = [("openai", "gpt-4o-mini", "openai"), ("anthropic", "claude-haiku-4-5", "anthropic"),
         ("gemini", "gemini-2.5-flash", "google")]  # fmt: skip


@pytest.mark.parametrize(("provider", "model", "provider_id"), CASES)
def test_item_cost_matches_the_price_library_including_cache(provider: str, model: str, provider_id: str) -> None:
    usage = Usage(input_tokens=12_000, cache_read_tokens=3_000, output_tokens=850)
    expected = float(
        calc_price(usage, model, provider_id=provider_id, price_context={"processing": "batch"}).total_price
    )
    ours = costs.item_cost(provider, model, 12_000, 850, 3_000)
    assert ours == pytest.approx(expected, rel=1e-9)
    sync = float(calc_price(usage, model, provider_id=provider_id).total_price)
    assert costs.rates(provider, model, batch=False).cost(12_000, 850, 3_000) == pytest.approx(sync, rel=1e-9)
    assert ours < sync  # the batch discount


TIERED = [("anthropic", "claude-sonnet-4-5", "anthropic"), ("gemini", "gemini-2.5-pro", "google")]


@pytest.mark.parametrize(("provider", "model", "provider_id"), TIERED)
@pytest.mark.parametrize("prompt_tokens", [1_200, 199_999, 200_000, 200_001, 350_000])
def test_tiered_models_are_priced_at_the_tier_of_each_request(
    provider: str, model: str, provider_id: str, prompt_tokens: int
) -> None:
    # These models cost more per token once one request's prompt passes 200k tokens.
    usage = Usage(input_tokens=prompt_tokens, cache_read_tokens=prompt_tokens // 4, output_tokens=900)
    batch = {"processing": "batch"}
    expected = float(calc_price(usage, model, provider_id=provider_id, price_context=batch).total_price)
    assert costs.item_cost(provider, model, prompt_tokens, 900, prompt_tokens // 4) == pytest.approx(expected, 1e-9)
    small = costs.rates(provider, model, True, 1_000)
    large = costs.rates(provider, model, True, 300_000)
    assert large.input > small.input  # the library does tier these models: the test would see a flat rate
    # A job's summed usage is priced at the tier of its average request.
    tokens = {"input_tokens": prompt_tokens * 10, "output_tokens": 9_000, "cached_tokens": 0, "n": 10}
    per_request = float(
        calc_price(Usage(input_tokens=prompt_tokens, output_tokens=900), model, provider_id=provider_id,
                   price_context=batch).total_price
    )  # fmt: skip
    job = costs.job_rates(provider, model, tokens)
    assert job.cost(tokens["input_tokens"], tokens["output_tokens"]) == pytest.approx(per_request * 10, 1e-9)


def test_unknown_model_is_unknown_not_zero() -> None:
    assert costs.rates("openai", "no-such-model-2099") is None
    assert costs.item_cost("openai", "no-such-model-2099", 100, 10, 0) is None
    estimate = costs.estimate("openai", "no-such-model-2099", 4000, 10, 100)
    assert estimate.batch_likely is None and estimate.saving is None


def test_estimate_upper_bound_uses_max_tokens() -> None:
    estimate = costs.estimate("openai", "gpt-4o-mini", request_chars=40_000, n_items=100, max_tokens=50)
    rates = costs.rates("openai", "gpt-4o-mini")
    assert estimate.input_tokens == 10_000 and estimate.max_output_tokens == 5_000
    assert estimate.batch_upper == pytest.approx(rates.cost(10_000, 5_000))
    assert estimate.batch_likely <= estimate.batch_upper < estimate.sync_likely * 2


@pytest.mark.parametrize(("max_cost", "code"), [("0.000001", 5), ("100", 0)])
def test_budget_gate_refuses_and_allows(max_cost: str, code: int, llmbulk: Callable[..., Outcome], home: Path) -> None:
    result = llmbulk("submit", str(QUICKSTART), "-p", "openai", "-m", "gpt-4o-mini", "--prompt", "{{ text }}",
                     "--max-tokens", "50", "--max-cost", max_cost, "--emulate", "--json")  # fmt: skip
    assert result.exit_code == code, result.stderr
    jobs = llmbulk("jobs", "--json").json()
    assert len(jobs) == (0 if code else 1)  # refused: nothing recorded, nothing sent
    if code:
        assert "over --max-cost" in result.stderr


def test_run_stops_retrying_when_spend_would_pass_the_budget(
    llmbulk: Callable[..., Outcome], faults: Callable[..., None], home: Path
) -> None:
    # Nearly every answer is not valid JSON for the schema: retryable, yet its tokens are spent.
    faults(invalid_json_rate=0.95)
    schema = home.parent / "label.json"
    schema.write_text('{"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}')
    job = (str(QUICKSTART), "-p", "openai", "-m", "gpt-4o-mini", "--prompt", "Classify: {{ text }}",
           "--schema", str(schema), "--max-tokens", "20", "--max-attempts", "6", "--emulate")  # fmt: skip
    estimate = llmbulk("submit", *job, "--dry-run", "--json").json()["estimate"]
    upper = estimate["batch_upper_usd"]
    # Enough for the first round's upper bound, not for that plus resending nearly every item.
    result = llmbulk("run", *job, "--out", "out.csv", "--max-cost", f"{upper * 1.0001:.12f}", "--json")
    assert result.exit_code == 5, result.stderr  # stopped by the budget, resumable
    job_id = result.json()["job_id"]
    log = [orjson.loads(line) for line in (home / "jobs" / job_id / "log.jsonl").read_bytes().splitlines()]
    names = [e["event"] for e in log]
    assert "job.budget_reached" in names and "job.done" not in names
    assert names.count("batch.created") == 1  # no retry round was submitted
    reached = next(e for e in log if e["event"] == "job.budget_reached")
    assert 0 < reached["spent_usd"] < upper and reached["retry_items"] > 0
    status = llmbulk("status", job_id, "--json").json()
    assert status["counts"]["failed_retryable"] == reached["retry_items"]  # left retryable, not dead
    assert status["state"] == "active"
    # With a larger budget the same job carries on to the end.
    again = llmbulk("run", job_id, "--max-cost", "1", "--out", "out.csv", "--json")
    assert again.exit_code in (0, 4), again.stderr
    counts = llmbulk("status", job_id, "--json").json()["counts"]
    assert "failed_retryable" not in counts and sum(counts.values()) == 50
    log = (home / "jobs" / job_id / "log.jsonl").read_bytes().decode()
    assert log.count('"batch.created"') > 1


@pytest.mark.parametrize(
    ("value", "text"),
    [(1234.567, "$1,234.57"), (0.0123456, "$0.0123"), (0.000344625, "$0.000345"), (0.0, "$0.0000"),
     (-0.0000236, "-$0.0000236")],
)  # fmt: skip
def test_small_amounts_keep_their_significant_digits(value: float, text: str) -> None:
    # A budget message must not read "up to $0.0003 is over --max-cost $0.0003".
    assert costs.usd(value) == text
    assert costs.usd(0.000345) != costs.usd(0.000305)
