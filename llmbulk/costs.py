"""Prices from a maintained library (genai-prices, offline snapshot with batch rates), estimates, actuals.

No hand-kept price table. A model the library does not know gives `None` (shown as unknown,
never $0). Some models are priced in tiers set by one request's prompt size (e.g. above 200k
input tokens), so per-token rates are looked up per model and prompt-size bucket and cached:
pricing a million items costs a dictionary lookup each.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

CHARS_PER_TOKEN = 4.0
BUCKET = 1000  # prompt sizes are rounded up to this; exact for tiers that start at a multiple of it


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per token for one model and processing mode."""

    input: float
    output: float
    cached_input: float

    def cost(self, input_tokens: int, output_tokens: int, cached_tokens: int = 0) -> float:
        """Cost of one usage; cached tokens are part of input tokens and billed at the cache rate."""
        cached = min(cached_tokens, input_tokens)
        return (input_tokens - cached) * self.input + cached * self.cached_input + output_tokens * self.output


def rates(provider: str, model: str, batch: bool = True, request_tokens: int | None = None) -> Rates | None:
    """Per-token rates for requests of `request_tokens` input tokens, or None for a model the library lacks.

    genai-prices puts a request in a tier when its input tokens exceed the tier's start, so a
    size rounded up to a multiple of `BUCKET` falls in the same tier as the size itself.
    """
    size = max(BUCKET, -(-(request_tokens or 0) // BUCKET) * BUCKET)
    return _rates(provider, model, batch, size)


@lru_cache(maxsize=1024)
def _rates(provider: str, model: str, batch: bool, probe: int) -> Rates | None:
    from llmbulk import price_cache

    key = f"{provider}|{model}|{int(batch)}|{probe}"
    found, value = price_cache.get(key)
    if found:
        return None if value is None else Rates(*value)
    priced = _library_rates(provider, model, batch, probe)
    price_cache.put(key, None if priced is None else [priced.input, priced.output, priced.cached_input])
    return priced


def _library_rates(provider: str, model: str, batch: bool, probe: int) -> Rates | None:
    from genai_prices import Usage, calc_price

    context = {"processing": "batch"} if batch else None
    known, provider_id = _known(provider)
    if not provider_id:
        return None
    try:
        price_in = calc_price(Usage(input_tokens=probe), model, provider_id=provider_id, price_context=context)
        # Output rates can depend on the prompt's tier too: price the output of a `probe`-token prompt.
        with_out = calc_price(
            Usage(input_tokens=probe, output_tokens=probe), model, provider_id=provider_id, price_context=context
        )
        price_cached = calc_price(
            Usage(input_tokens=probe, cache_read_tokens=probe), model, provider_id=provider_id, price_context=context
        )
    except LookupError:
        return None
    factor = 1.0
    profile = known.profile if known is not None else None
    if batch and profile is not None and not _has_batch_rate(price_in):
        # The library has only the vendor's synchronous rate: apply its documented batch discount, if any.
        if profile.batch_discount is None:
            return None
        factor = 1.0 - profile.batch_discount
    per_input = float(price_in.total_price) / probe
    per_output = float(with_out.total_price) / probe - per_input
    return Rates(per_input * factor, per_output * factor, float(price_cached.total_price) / probe * factor)


def unknown_reason(provider: str, model: str) -> str | None:
    """Why a job's batch cost cannot be priced, or None when it can."""
    if rates(provider, model) is not None:
        return None
    known, provider_id = _known(provider)
    profile = known.profile if known is not None else None
    if provider_id and rates(provider, model, batch=False) is None:
        return f"{model} is not in the price library's {provider_id} list"
    if profile is not None and profile.price_note:
        return profile.price_note
    return f"{provider} is not in the price library"


def _known(provider: str) -> tuple[Any, str]:
    from llmbulk import providers

    known = providers.REGISTRY.get(provider)
    return known, known.price_id if known is not None else provider


def _has_batch_rate(price: Any) -> bool:
    """Whether the library priced this at a batch rate: the provider's own model with a batch variant
    (a model borrowed from another provider's list, as Azure's gpt-4o-mini from OpenAI's, gets none)."""
    own = any(model is price.model for model in price.provider.models)
    return own and any(variant.when.get("processing") == "batch" for variant in price.model.price_variants or ())


def job_rates(provider: str, model: str, tokens: dict[str, int], batch: bool = True) -> Rates | None:
    """Rates for a job's summed usage, at the tier of its average request (jobs are rarely mixed)."""
    average = tokens["input_tokens"] // tokens["n"] if tokens.get("n") else None
    return rates(provider, model, batch, average)


def item_cost(
    provider: str, model: str, input_tokens: int | None, output_tokens: int | None, cached_tokens: int | None
) -> float | None:
    """Actual batch cost of one result, or None for an unknown model or missing usage."""
    if input_tokens is None:
        return None
    found = rates(provider, model, True, input_tokens)
    if found is None:
        return None
    return found.cost(input_tokens, output_tokens or 0, cached_tokens or 0)


def pricer(provider: str, model: str) -> Callable[[int | None, int | None, int | None], float | None]:
    """`item_cost` for one job's model, with its rates looked up once per prompt-size bucket."""
    found: dict[int, Rates | None] = {}

    def price(input_tokens: int | None, output_tokens: int | None, cached_tokens: int | None) -> float | None:
        if input_tokens is None:
            return None
        bucket = -(-input_tokens // BUCKET)
        if bucket not in found:
            found[bucket] = rates(provider, model, True, input_tokens)
        rate = found[bucket]
        return None if rate is None else rate.cost(input_tokens, output_tokens or 0, cached_tokens or 0)

    return price


@dataclass(frozen=True, slots=True)
class Estimate:
    """Expected cost of a job before it is sent."""

    input_tokens: int
    likely_output_tokens: int
    max_output_tokens: int
    batch_likely: float | None
    batch_upper: float | None
    sync_likely: float | None

    @property
    def saving(self) -> float | None:
        if self.batch_likely is None or self.sync_likely is None:
            return None
        return self.sync_likely - self.batch_likely


def estimate(
    provider: str,
    model: str,
    request_chars: int,
    n_items: int,
    max_tokens: int | None,
    chars_per_token: float = CHARS_PER_TOKEN,
    past_output_per_item: float | None = None,
) -> Estimate:
    """Likely and upper-bound cost from the rendered requests and the output cap."""
    input_tokens = int(request_chars / chars_per_token)
    cap = max_tokens or 1024
    likely_per_item = past_output_per_item if past_output_per_item is not None else cap / 4
    likely_output = int(likely_per_item * n_items)
    upper_output = cap * n_items
    per_request = input_tokens // n_items if n_items else None
    batch, sync = rates(provider, model, True, per_request), rates(provider, model, False, per_request)
    return Estimate(
        input_tokens,
        likely_output,
        upper_output,
        batch.cost(input_tokens, likely_output) if batch else None,
        batch.cost(input_tokens, upper_output) if batch else None,
        sync.cost(input_tokens, likely_output) if sync else None,
    )


def usd(value: float, signed: bool = False) -> str:
    """Dollars readable at any scale: $1,234.57, $0.0123, and small amounts to 3 significant digits."""
    sign = ("+" if value >= 0 else "-") if signed else ("-" if value < 0 else "")
    amount = abs(value)
    if amount >= 1:
        return f"{sign}${amount:,.2f}"
    decimals = 4 if amount >= 0.01 or amount == 0 else min(10, 2 - math.floor(math.log10(amount)))
    return f"{sign}${amount:.{decimals}f}"
