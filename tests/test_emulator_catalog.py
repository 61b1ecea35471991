"""The model/parameter catalog is the installed packages' own data, and answers by provider and endpoint.

Sources (each rule's): the SDKs' model `Literal` types (openai `ChatModel`, `ResponsesModel`,
`EmbeddingModel`, `ImageModel`, `ModerationModel`, `VideoModel`; anthropic `Model`), their request
`TypedDict`s (openai `CompletionCreateParamsBase` & co., anthropic `MessageCreateParamsBase`),
google-genai's `GenerationConfig`, and genai-prices' Anthropic and Google model lists. The snapshot
is checked against them here; `LLMBULK_WRITE_CATALOG=1` rewrites it (then `ruff format` it).

The snapshot names the package versions it was built from (`SOURCES`), and the test environment pins
exactly those (`.ci/constraints.txt`, used by the README's test command and CI), so a new SDK release
on the package index cannot turn CI red between two commits. Moving to a newer SDK is one change:
bump the pin, reinstall, rewrite the snapshot, and review what the emulator now accepts.
"""

from __future__ import annotations

import os
import pprint
import re
import typing
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from llmbulk import catalog
from llmbulk.catalog import snapshot

SNAPSHOT = Path(catalog.__file__).with_name("snapshot.py")
CONSTRAINTS = Path(__file__).parents[1] / ".ci" / "constraints.txt"
SOURCE_PACKAGES = ("openai", "anthropic", "google-genai", "genai-prices")

# Gemini REST GenerateContentRequest fields (ai.google.dev/api/generate-content#request-body); the
# SDK builds these from its config, so there is no request type to read them from.
GEMINI_REQUEST_FIELDS = (
    "contents", "tools", "toolConfig", "safetySettings", "systemInstruction", "generationConfig", "cachedContent",
    "model",
)  # fmt: skip


def _literals(annotation: Any) -> list[str]:
    """Every string Literal inside an annotation (Union, Required and TypeAlias unwrapped)."""
    if typing.get_origin(annotation) is typing.Literal:
        return [a for a in typing.get_args(annotation) if isinstance(a, str)]
    return [value for arg in typing.get_args(annotation) for value in _literals(arg)]


def _keys(cls: Any) -> tuple[list[str], list[str]]:
    hints = typing.get_type_hints(cls, include_extras=True)
    required = [k for k, v in hints.items() if typing.get_origin(v) is typing.Required]
    return sorted(hints), sorted(required)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _price_names(provider_id: str, keep: str) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
    """genai-prices model ids and exact aliases (by endpoint), and their regex clauses."""
    import genai_prices.data as prices

    names: dict[str, list[str]] = {}
    patterns: list[tuple[str, str]] = []
    provider = next(p for p in prices.providers if p.id == provider_id)
    for model in provider.models:
        if not re.match(keep, model.id):
            continue
        endpoint = _gemini_endpoint(model.id) if provider_id == "google" else catalog.ANTHROPIC_MESSAGES
        exact, regexes = _clauses(model.match)
        names.setdefault(endpoint, []).extend([model.id, *exact])
        patterns.extend((regex, endpoint) for regex in regexes)
    return names, patterns


def _gemini_endpoint(model_id: str) -> str:
    if "embedding" in model_id:
        return catalog.GEMINI_EMBED
    return "bidiGenerateContent" if "live" in model_id else catalog.GEMINI_GENERATE


def _clauses(clause: Any) -> tuple[list[str], list[str]]:
    """`equals` values and `regex` patterns of a genai-prices match (starts_with/contains are price
    lookups, too loose to say a name exists)."""
    if hasattr(clause, "equals"):
        return [clause.equals], []
    if hasattr(clause, "regex") and not clause.regex.startswith("^(?!"):
        return [], [clause.regex]
    exact: list[str] = []
    regexes: list[str] = []
    for inner in getattr(clause, "or_", []):
        more, pats = _clauses(inner)
        exact += more
        regexes += pats
    return exact, regexes


def build() -> dict[str, Any]:
    from anthropic.types import message_create_params, model
    from google.genai import types as genai_types
    from openai.types import (
        completion_create_params,
        embedding_create_params,
        embedding_model,
        image_model,
        moderation_create_params,
        moderation_model,
        video_model,
    )
    from openai.types.chat import completion_create_params as chat_params
    from openai.types.responses import response_create_params
    from openai.types.shared import chat_model, responses_model

    chat = _literals(chat_model.ChatModel)
    openai_models = {
        "/v1/chat/completions": chat,
        "/v1/responses": chat + _literals(responses_model.ResponsesModel),
        "/v1/embeddings": _literals(embedding_model.EmbeddingModel),
        "/v1/completions": _literals(typing.get_type_hints(completion_create_params.CompletionCreateParamsBase,
                                                           include_extras=True)["model"]),
        "/v1/moderations": _literals(moderation_model.ModerationModel),
        "/v1/images/generations": _literals(image_model.ImageModel),
        "/v1/images/edits": _literals(image_model.ImageModel),
        "/v1/videos": _literals(video_model.VideoModel),
    }  # fmt: skip
    anthropic_names, anthropic_patterns = _price_names("anthropic", r"claude-")
    anthropic_names.setdefault(catalog.ANTHROPIC_MESSAGES, []).extend(_literals(model.Model))
    gemini_names, gemini_patterns = _price_names("google", r"(gemini|gemma)-")
    openai_params = {
        "/v1/chat/completions": _keys(chat_params.CompletionCreateParamsBase),
        "/v1/responses": _keys(response_create_params.ResponseCreateParamsBase),
        "/v1/embeddings": _keys(embedding_create_params.EmbeddingCreateParams),
        "/v1/completions": _keys(completion_create_params.CompletionCreateParamsBase),
        "/v1/moderations": _keys(moderation_create_params.ModerationCreateParams),
    }
    anthropic_params = _keys(message_create_params.MessageCreateParamsBase)
    generation = sorted({n for f in genai_types.GenerationConfig.model_fields for n in (f, _camel(f))})
    return {
        "SOURCES": {name: metadata.version(name) for name in SOURCE_PACKAGES},
        "MODELS": {
            "openai": {k: sorted(set(v)) for k, v in openai_models.items()},
            "anthropic": {k: sorted(set(v)) for k, v in anthropic_names.items()},
            "gemini": {k: sorted(set(v)) for k, v in gemini_names.items()},
        },
        "PATTERNS": {"anthropic": sorted(set(anthropic_patterns)), "gemini": sorted(set(gemini_patterns))},
        "PARAMS": {
            "openai": {k: v[0] for k, v in openai_params.items()},
            "anthropic": {catalog.ANTHROPIC_MESSAGES: anthropic_params[0]},
            "gemini": {
                catalog.GEMINI_GENERATE: sorted({n for f in GEMINI_REQUEST_FIELDS for n in (f, _snake(f))}),
                "generationConfig": generation,
            },
        },
        "REQUIRED": {
            "openai": {k: v[1] for k, v in openai_params.items()},
            "anthropic": {catalog.ANTHROPIC_MESSAGES: anthropic_params[1]},
            "gemini": {catalog.GEMINI_GENERATE: ["contents"]},
        },
    }


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def _as_data(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _as_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_data(v) for v in value]
    return value


def _render(data: dict[str, Any]) -> str:
    header = '"""Generated by tests/test_emulator_catalog.py from the installed SDKs and genai-prices."""\n\n'
    body = "".join(f"{name} = {pprint.pformat(value, width=110, sort_dicts=True)}\n\n" for name, value in data.items())
    return header + body.rstrip() + "\n"


def test_snapshot_matches_the_installed_packages() -> None:
    """Source: the installed SDK types and genai-prices data (the installed SDK wins over docs)."""
    fresh = build()
    current = {name: _as_data(getattr(snapshot, name, None)) for name in fresh}
    fresh = _as_data(fresh)
    if current != fresh and os.environ.get("LLMBULK_WRITE_CATALOG") == "1":
        SNAPSHOT.write_text(_render(fresh))
        pytest.skip("catalog snapshot rewritten; run ruff format on it and commit")
    if current["SOURCES"] != fresh["SOURCES"]:
        pytest.fail(
            f"installed {fresh['SOURCES']}, but llmbulk/catalog/snapshot.py was built from {current['SOURCES']}: "
            "install with `pip install -c .ci/constraints.txt -e '.[test]'`, or, to move to the new versions, "
            "pin them in .ci/constraints.txt and rerun this test with LLMBULK_WRITE_CATALOG=1"
        )
    assert current == fresh, "llmbulk/catalog/snapshot.py is stale: rerun this test with LLMBULK_WRITE_CATALOG=1"


def test_the_pinned_versions_are_the_snapshots_sources() -> None:
    """The constraints file the README's test command installs with pins what the snapshot was built from."""
    pins = dict(
        line.split("#")[0].strip().split("==", 1)
        for line in CONSTRAINTS.read_text().splitlines()
        if "==" in line.split("#")[0]
    )
    assert {name: pins.get(name) for name in SOURCE_PACKAGES} == dict(snapshot.SOURCES)


@pytest.mark.parametrize(
    ("provider", "model", "endpoint", "expected"),
    [
        ("openai", "gpt-4o-mini", "/v1/chat/completions", True),
        ("openai", "gpt-4o-mini", "/v1/embeddings", False),  # a chat model: every embeddings line fails
        ("openai", "text-embedding-3-small", "/v1/embeddings", True),
        ("openai", "text-embedding-3-small", "/v1/chat/completions", False),
        ("openai", "gpt-5.5-pro", "/v1/responses", True),  # ResponsesModel only
        ("openai", "gpt-5.5-pro", "/v1/chat/completions", False),
        ("openai", "ft:gpt-4o-mini:acme::abc123", "/v1/chat/completions", True),
        ("openai", "gpt-nonexistent-9", "/v1/chat/completions", None),
        ("anthropic", "claude-haiku-4-5", "/v1/messages", True),
        ("anthropic", "claude-haiku-4-5-20251001", "/v1/messages", True),
        ("anthropic", "claude-sonnet-4-5-20250929", "/v1/messages", True),  # genai-prices, not the SDK Literal
        ("anthropic", "claude-nonexistent-9", "/v1/messages", None),
        ("gemini", "gemini-2.5-flash", "generateContent", True),
        ("gemini", "models/gemini-2.5-flash", "generateContent", True),
        ("gemini", "gemini-2.0-flash-001", "generateContent", True),
        ("gemini", "gemini-embedding-001", "generateContent", False),
        ("gemini", "gemini-nonexistent-9", "generateContent", None),
    ],
)
def test_models_by_provider_and_endpoint(provider: str, model: str, endpoint: str, expected: bool | None) -> None:
    """Source: SDK Literals (OpenAI, Anthropic) and genai-prices (Anthropic dated names, Gemini)."""
    assert catalog.default_catalog().serves(provider, model, endpoint) is expected


def test_extra_models_extend_the_catalog_and_bad_specs_are_named() -> None:
    extra = catalog.parse_models("openai:gpt-7@/v1/responses, gemini:gemini-9 anthropic:claude-next")
    found = catalog.Catalog(extra)
    assert found.serves("openai", "gpt-7", "/v1/responses") is True
    assert found.serves("openai", "gpt-7", "/v1/chat/completions") is False
    assert found.serves("gemini", "models/gemini-9", "generateContent") is True
    assert found.serves("anthropic", "claude-next", "/v1/messages") is True
    with pytest.raises(ValueError, match="'mistral:large'"):
        catalog.parse_models("openai:gpt-7,mistral:large")


def test_output_limits_and_params() -> None:
    """Sources: provider model pages (see OUTPUT_LIMITS); SDK request types for the parameter names."""
    assert catalog.output_limit("openai", "gpt-4o-mini-2024-07-18") == 16_384
    assert catalog.output_limit("anthropic", "claude-haiku-4-5-20251001") == 64_000
    assert catalog.output_limit("gemini", "models/gemini-2.5-flash") == 65_536
    assert catalog.output_limit("openai", "gpt-nonexistent") is None
    assert {"model", "messages", "temperature"} <= catalog.request_params("openai", "/v1/chat/completions")
    assert "frobnicate" not in catalog.request_params("openai", "/v1/chat/completions")
    assert catalog.required_params("anthropic", "/v1/messages") == {"model", "max_tokens", "messages"}
    assert "temperature" not in catalog.request_params("anthropic", "/v1/messages")  # gone in API 2026-10-21
    assert {"maxOutputTokens", "max_output_tokens"} <= catalog.request_params("gemini", "generationConfig")
