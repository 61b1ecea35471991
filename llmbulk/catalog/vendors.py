"""Model names the OpenAI-compatible vendors serve, for the emulator: genai-prices' lists, read lazily.

Groq, Novita and Doubleword models are those genai-prices lists for them (its `match` rules, aliases
included). An emulated Azure resource has one Global Batch deployment per model of Azure's global
batch availability table, named after the model (learn.microsoft.com/azure/ai-foundry/openai/how-to/
batch, "Global batch model availability"); other names are not deployments. DeepInfra, Nebius and
gateways are not in the price library: any name is served. `LLMBULK_EMULATOR_MODELS=groq:…` adds names.
"""

from __future__ import annotations

from functools import cache
from typing import Any

CHAT, RESPONSES, COMPLETIONS, EMBEDDINGS = "/v1/chat/completions", "/v1/responses", "/v1/completions", "/v1/embeddings"
VENDORS = ("azure", "groq", "deepinfra", "doubleword", "nebius", "novita", "openai-compatible")
PRICE_LISTED = ("groq", "doubleword", "novita")  # vendors whose model names genai-prices knows
AZURE_DEPLOYMENTS = (
    "gpt-5.4-mini", "gpt-5.4", "gpt-5.1", "gpt-5", "o3", "o4-mini", "gpt-4.1", "gpt-4.1-nano", "gpt-4.1-mini",
    "o3-mini", "gpt-4o", "gpt-4o-mini",
)  # fmt: skip


def endpoints(provider: str, model: str) -> frozenset[str] | None:
    """The endpoints a vendor serves `model` on, or None when the vendor does not know the name."""
    if provider == "azure":
        return frozenset({CHAT, RESPONSES}) if model in AZURE_DEPLOYMENTS else None
    if provider not in PRICE_LISTED:
        return frozenset({CHAT, COMPLETIONS, EMBEDDINGS})  # any name: the price library does not list them
    if not any(entry.is_match(model) for entry in _price_models(provider)):
        return None
    return frozenset({EMBEDDINGS}) if "embed" in model.lower() else frozenset({CHAT, COMPLETIONS})


@cache
def _price_models(provider_id: str) -> tuple[Any, ...]:
    from genai_prices import data

    return tuple(next(p for p in data.providers if p.id == provider_id).models)
