"""Provider registry: name → adapter factory, limits and key variables, without importing SDKs."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from llmbulk.errors import UsageError
from llmbulk.models import Limits
from llmbulk.providers.base import BatchProvider, ProviderSettings


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    """Everything llmbulk knows about one provider without importing its SDK: the single source of
    its key and base-URL variables, its id in the price library, and where the emulator serves it."""

    name: str
    module: str
    factory: str
    key_env: tuple[str, ...]  # the first is named in "not set" errors; *_TOKEN ones are left to the SDK
    base_url_env: str
    emulator_attr: str
    price_id: str  # genai-prices' provider id


REGISTRY: dict[str, ProviderInfo] = {}


def register(info: ProviderInfo) -> None:
    """Make a provider available by name (built-ins use this too)."""
    REGISTRY[info.name] = info


register(
    ProviderInfo(
        "openai",
        "llmbulk.providers.openai",
        "OpenAIBatchProvider",
        ("OPENAI_API_KEY",),
        "OPENAI_BASE_URL",
        "openai_base_url",
        "openai",
    )
)
register(
    ProviderInfo(
        "anthropic",
        "llmbulk.providers.anthropic",
        "AnthropicBatchProvider",
        ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"),
        "ANTHROPIC_BASE_URL",
        "anthropic_base_url",
        "anthropic",
    )
)
register(
    ProviderInfo(
        "gemini",
        "llmbulk.providers.gemini",
        "GeminiBatchProvider",
        ("GOOGLE_API_KEY", "GEMINI_API_KEY"),
        "GOOGLE_GEMINI_BASE_URL",
        "gemini_base_url",
        "google",
    )
)


def info(name: str) -> ProviderInfo:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UsageError(f"unknown provider {name!r}", hint=f"use one of: {', '.join(sorted(REGISTRY))}") from None


def limits(name: str) -> Limits:
    """A provider's limits (the adapter module imports its SDK lazily, so this is cheap)."""
    return importlib.import_module(info(name).module).LIMITS


def sent_schema(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The output schema as this provider's adapter sends it (unchanged where the adapter sends it as given)."""
    module = importlib.import_module(info(name).module)
    transform = getattr(module, "sent_schema", None)
    return schema if transform is None else transform(schema)  # type: ignore[no-any-return]


def create(name: str, settings: ProviderSettings) -> BatchProvider:
    """A ready adapter for this provider."""
    provider_info = info(name)
    factory = getattr(importlib.import_module(provider_info.module), provider_info.factory)
    return factory(settings)  # type: ignore[no-any-return]
