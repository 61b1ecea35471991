"""Which models each provider serves on which endpoint, and which request parameters it takes.

Pure functions over data, no SDK import at run time (the SDKs cost 0.3-1.5 s to import; the import
rules keep them in their adapters). The data is `snapshot.py`, generated from maintained sources:
the installed SDKs' model `Literal` types and request `TypedDict`s (openai, anthropic), google-genai's
`GenerationConfig` fields, and genai-prices' model lists (Anthropic and Gemini names the SDKs do not
list). `tests/test_emulator_catalog.py` fails when the snapshot no longer matches the installed
packages and rewrites it with `LLMBULK_WRITE_CATALOG=1`.

New models appear weekly: `parse_models("openai:gpt-7@/v1/chat/completions,gemini:gemini-9")`
names extra ones (`LLMBULK_EMULATOR_MODELS` / `emulator serve --models`), and a model this catalog
does not know is `None` ("unknown"), never `False` ("known not to serve this endpoint").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache

from llmbulk.catalog import snapshot, vendors

# Endpoint names: OpenAI batch URLs, Anthropic's one route, Gemini model methods.
ANTHROPIC_MESSAGES = "/v1/messages"
GEMINI_GENERATE = "generateContent"
GEMINI_EMBED = "embedContent"
DEFAULT_ENDPOINT = {"openai": "/v1/chat/completions", "anthropic": ANTHROPIC_MESSAGES, "gemini": GEMINI_GENERATE}

# Largest `max_tokens` per model family, longest prefix wins. No installed package carries output
# limits (genai-prices has context windows only), so this one table is by hand, from:
# OpenAI platform.openai.com/docs/models (gpt-4o/-mini 16,384: "This model supports at most 16384
# completion tokens", ExtractThinker#346; gpt-3.5-turbo 4,096, NextChat#3195);
# Anthropic platform.claude.com/docs/models/<model>/overview ("Max output: 64K tokens" for Haiku 4.5
# and Sonnet 4.5; 32K Opus 4/4.1; 128K for the 5.x line);
# Gemini ai.google.dev/gemini-api/docs/models (output token limit 65,536 for 2.5; 8,192 for 2.0/1.5).
OUTPUT_LIMITS: dict[str, dict[str, int]] = {
    "openai": {
        "gpt-4o": 16_384, "gpt-4o-mini": 16_384, "chatgpt-4o-latest": 16_384, "gpt-4.1": 32_768,
        "gpt-4-turbo": 4_096, "gpt-4-0125-preview": 4_096, "gpt-4-1106-preview": 4_096, "gpt-4": 8_192,
        "gpt-3.5-turbo": 4_096, "gpt-5": 128_000, "o1": 100_000, "o3": 100_000, "o4-mini": 100_000,
    },
    "anthropic": {
        "claude-haiku-4-5": 64_000, "claude-sonnet-4-5": 64_000, "claude-opus-4-5": 64_000,
        "claude-sonnet-4-6": 64_000, "claude-sonnet-4-0": 64_000, "claude-sonnet-4-2": 64_000,
        "claude-3-7-sonnet": 64_000, "claude-opus-4-0": 32_000, "claude-opus-4-1": 32_000,
        "claude-opus-4-2": 32_000, "claude-3-5-haiku": 8_192, "claude-3-5-sonnet": 8_192,
        "claude-3-haiku": 4_096, "claude-3-opus": 4_096, "claude-opus-5": 128_000, "claude-sonnet-5": 128_000,
        "claude-haiku-5": 128_000, "claude-fable-5": 128_000, "claude-mythos-5": 128_000,
    },
    "gemini": {
        "gemini-2.5-flash": 65_536, "gemini-2.5-pro": 65_536, "gemini-2.0-flash": 8_192,
        "gemini-1.5-flash": 8_192, "gemini-1.5-pro": 8_192,
    },
}  # fmt: skip

_SPEC = re.compile(
    r"^\s*(openai|anthropic|gemini|azure|groq|deepinfra|doubleword|nebius|novita|openai-compatible):([^@\s]+)"
    r"(?:@(\S+))?\s*$"
)


@dataclass(frozen=True)
class Catalog:
    """The snapshot plus extra models; answers "does this model serve this endpoint?"."""

    extra: Mapping[str, Mapping[str, frozenset[str]]] = field(default_factory=dict)

    def endpoints(self, provider: str, model: str) -> frozenset[str] | None:
        """The endpoints `model` serves, or None when neither the snapshot nor `extra` knows it."""
        name = _canonical(provider, model)
        added = self.extra.get(provider, {})
        if model in added or name in added:
            return added.get(model) or added[name]
        if provider in vendors.VENDORS:
            return vendors.endpoints(provider, model)
        table = _model_table(provider)
        for candidate in _candidates(provider, name):
            if candidate in table:
                return table[candidate]
        for pattern, endpoint in snapshot.PATTERNS.get(provider, ()):
            if re.match(pattern, name):
                return frozenset({endpoint})
        return None

    def serves(self, provider: str, model: str, endpoint: str) -> bool | None:
        """True: it does; False: the model is known and serves other endpoints only; None: unknown model."""
        found = self.endpoints(provider, model)
        return None if found is None else endpoint in found


def default_catalog() -> Catalog:
    return _DEFAULT


def parse_models(text: str | Iterable[str]) -> dict[str, dict[str, frozenset[str]]]:
    """`provider:model[@endpoint]` items (comma- or space-separated) → {provider: {model: endpoints}}.

    Without `@endpoint` the provider's default is meant (chat completions, messages, generateContent).
    Raises ValueError naming the first malformed item.
    """
    items = re.split(r"[,\s]+", text) if isinstance(text, str) else list(text)
    parsed: dict[str, dict[str, frozenset[str]]] = {}
    for item in (i for i in items if i.strip()):
        match = _SPEC.match(item)
        if not match:
            raise ValueError(
                f"model spec {item!r} is not provider:model[@endpoint] (provider: openai, anthropic, gemini or"
                " an OpenAI-compatible vendor)"
            )
        provider, model, endpoint = match.groups()
        models = parsed.setdefault(provider, {})
        default = DEFAULT_ENDPOINT.get(provider, vendors.CHAT)
        models[model] = models.get(model, frozenset()) | {endpoint or default}
    return parsed


@cache
def output_limit(provider: str, model: str) -> int | None:
    """The most `max_tokens` the model may be asked for, when its family is in `OUTPUT_LIMITS`."""
    limits = OUTPUT_LIMITS.get(provider, {})
    name = _canonical(provider, model)
    best = max((p for p in limits if name == p or name.startswith(p + "-")), key=len, default=None)
    return None if best is None else limits[best]


def request_params(provider: str, endpoint: str) -> frozenset[str]:
    """Top-level body parameters the provider accepts on that endpoint (from the SDK's request types)."""
    return _params(provider, endpoint)


@cache
def required_params(provider: str, endpoint: str) -> frozenset[str]:
    return frozenset(snapshot.REQUIRED.get(provider, {}).get(endpoint, ()))


# ---- internals -------------------------------------------------------------------------------------


_DEFAULT = Catalog()


@cache
def _model_table(provider: str) -> dict[str, frozenset[str]]:
    table: dict[str, set[str]] = {}
    for endpoint, names in snapshot.MODELS.get(provider, {}).items():
        for name in names:
            table.setdefault(name, set()).add(endpoint)
    return {name: frozenset(endpoints) for name, endpoints in table.items()}


@cache
def _params(provider: str, endpoint: str) -> frozenset[str]:
    return frozenset(snapshot.PARAMS.get(provider, {}).get(endpoint, ()))


def _canonical(provider: str, model: str) -> str:
    if provider == "gemini" and model.startswith("models/"):
        return model[len("models/") :]
    return model


_DATED = re.compile(r"^(.+?)(?:-\d{8}|@\d{8}|-\d{4}-\d{2}-\d{2}|-\d{3}|-latest)$")


def _candidates(provider: str, name: str) -> Iterable[str]:
    """The name, then what it is a snapshot or fine-tune of (`-20251001`, `-001`, `ft:base:…`)."""
    yield name
    if provider == "openai" and name.startswith("ft:"):
        yield name.split(":")[1]
    dated = _DATED.match(name)
    if dated:
        yield dated.group(1)
        yield dated.group(1) + "-latest"  # genai-prices names some families by their alias
