"""Provider registry: name → adapter factory, limits, key and base-URL variables, without importing SDKs.

OpenAI-compatible vendors are profiles of the OpenAI adapter (`profiles.py`): registered here as data,
one entry each, so `--provider groq` is a lookup, not a code path.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from llmbulk.errors import ConfigError, UsageError
from llmbulk.models import Limits
from llmbulk.providers.base import BatchProvider, ProviderSettings
from llmbulk.providers.profiles import PROFILES, Profile


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    """Everything llmbulk knows about one provider without importing its SDK: the single source of
    its key and base-URL variables, its id in the price library, and where the emulator serves it."""

    name: str
    module: str
    factory: str
    key_env: tuple[str, ...]  # the first is named in "not set" errors
    base_url_env: str
    emulator_path: str  # where the emulator serves this provider, under its URL
    price_id: str  # genai-prices' provider id ("" = not in the price library)
    sdk_only_env: tuple[str, ...] = ()  # key variables the SDK reads itself (bearer tokens), never passed
    profile: Profile | None = None  # an OpenAI-compatible vendor's differences from OpenAI


REGISTRY: dict[str, ProviderInfo] = {}


def register(info: ProviderInfo) -> None:
    """Make a provider available by name (built-ins use this too)."""
    REGISTRY[info.name] = info


OPENAI = ("llmbulk.providers.openai", "OpenAIBatchProvider")
register(
    ProviderInfo(
        "anthropic", "llmbulk.providers.anthropic", "AnthropicBatchProvider",
        ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"), "ANTHROPIC_BASE_URL", "/anthropic", "anthropic",
        sdk_only_env=("ANTHROPIC_AUTH_TOKEN",),
    )
)  # fmt: skip
register(
    ProviderInfo(
        "gemini", "llmbulk.providers.gemini", "GeminiBatchProvider", ("GOOGLE_API_KEY", "GEMINI_API_KEY"),
        "GOOGLE_GEMINI_BASE_URL", "/gemini", "google",
    )
)  # fmt: skip

# Each OpenAI-family profile's key and base-URL variables (vendor docs cited in profiles.py;
# DEEPINFRA_TOKEN is the name DeepInfra's examples use; NOVITA_API_KEY and the *_BASE_URL names of
# the vendors are llmbulk's choice, unverified as vendor conventions), the emulator path (mirroring
# the vendor's own path) and the price-library id ("" = not in it).
_OPENAI_FAMILY: dict[str, tuple[tuple[str, ...], str, str, str]] = {
    "openai": (("OPENAI_API_KEY",), "OPENAI_BASE_URL", "/openai/v1", "openai"),
    "azure": (("AZURE_OPENAI_API_KEY",), "AZURE_OPENAI_ENDPOINT", "/azure/openai/v1", "azure"),
    "groq": (("GROQ_API_KEY",), "GROQ_BASE_URL", "/groq/openai/v1", "groq"),
    "deepinfra": (("DEEPINFRA_TOKEN", "DEEPINFRA_API_KEY"), "DEEPINFRA_BASE_URL", "/deepinfra/v1/openai", ""),
    "doubleword": (("DOUBLEWORD_API_KEY",), "DOUBLEWORD_BASE_URL", "/doubleword/v1", "doubleword"),
    "nebius": (("NEBIUS_API_KEY",), "NEBIUS_BASE_URL", "/nebius/v1", ""),
    "novita": (("NOVITA_API_KEY",), "NOVITA_BASE_URL", "/novita/openai/v1", "novita"),
    "openai-compatible": (("OPENAI_COMPATIBLE_API_KEY",), "OPENAI_COMPATIBLE_BASE_URL", "/compat/v1", ""),
}
for _profile in PROFILES:
    _keys, _base_env, _path, _price = _OPENAI_FAMILY[_profile.name]
    register(ProviderInfo(_profile.name, *OPENAI, _keys, _base_env, _path, _price, profile=_profile))


def info(name: str) -> ProviderInfo:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UsageError(f"unknown provider {name!r}", hint=f"use one of: {', '.join(sorted(REGISTRY))}") from None


def limits(name: str) -> Limits:
    """A provider's limits (the adapter module imports its SDK lazily, so this is cheap)."""
    provider = info(name)
    base: Limits = importlib.import_module(provider.module).LIMITS
    if provider.profile is None:
        return base
    profile = provider.profile
    return base.model_copy(
        update={"max_items": profile.max_items, "max_bytes": profile.max_bytes, "endpoints": profile.endpoints}
    )


def sent_schema(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The output schema as this provider's adapter sends it (unchanged where the adapter sends it as given)."""
    module = importlib.import_module(info(name).module)
    transform = getattr(module, "sent_schema", None)
    return schema if transform is None else transform(schema)  # type: ignore[no-any-return]


def create(name: str, settings: ProviderSettings) -> BatchProvider:
    """A ready adapter for this provider."""
    provider_info = info(name)
    factory = getattr(importlib.import_module(provider_info.module), provider_info.factory)
    if provider_info.profile is not None:
        return factory(settings, provider_info.profile)  # type: ignore[no-any-return]
    return factory(settings)  # type: ignore[no-any-return]


def check_target(name: str, base_url: str | None, window: str | None) -> None:
    """Refuse a --base-url or --completion-window the provider cannot take, before anything is recorded."""
    if base_url is not None:
        check_base_url(base_url)
    if window is None:
        return
    profile = info(name).profile
    if profile is None:
        raise UsageError(f"{name} takes no --completion-window", hint="its batches have one fixed window")
    if not profile.window_ok(window):
        raise UsageError(
            f"--completion-window {window!r} is not accepted by {name}", hint=f"{name} takes: {profile.windows_text}"
        )


def target(name: str, env: Mapping[str, str], base_url: str | None, need_key: bool) -> tuple[str | None, str | None]:
    """The base URL and API key to reach `name`, from --base-url and the environment; one-line errors."""
    provider = info(name)
    profile = provider.profile
    key = next((env[v] for v in provider.key_env if env.get(v) and v not in provider.sdk_only_env), None)
    present = key is not None or any(env.get(v) for v in provider.sdk_only_env)
    if need_key and not present and (profile is None or profile.key_required):
        raise ConfigError(
            f"{provider.key_env[0]} is not set",
            hint=f"export {provider.key_env[0]}=… for the real {name} API, or add --emulate to use the local emulator",
        )
    url = base_url or env.get(provider.base_url_env) or (profile.base_url if profile else None)
    if need_key and profile is not None and profile.base_url_required and url is None:
        raise ConfigError(
            f"{provider.base_url_env} is not set and no --base-url was given",
            hint="--base-url https://NAME.openai.azure.com (your resource)"
            if profile.deployment_names
            else "--base-url http://HOST:PORT/v1 (your gateway's OpenAI-compatible root)",
        )
    if url is not None and profile is not None and profile.deployment_names:
        url = azure_v1(url)
    return url, key


def check_base_url(url: str) -> None:
    """An http(s) URL without credentials: the job keeps it in its state, where no key may go."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--base-url {url!r} is not an http(s) URL", hint="e.g. --base-url http://localhost:4000/v1")
    if parts.username or parts.password:
        raise UsageError("--base-url carries credentials", hint="put the key in the provider's key variable instead")


def azure_v1(url: str) -> str:
    """An Azure resource endpoint as the v1 API's base URL (`…/openai/v1`), given either form."""
    trimmed = url.rstrip("/")
    return trimmed if trimmed.endswith("/openai/v1") else f"{trimmed}/openai/v1"
