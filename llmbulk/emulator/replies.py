"""The emulator's deterministic responder: a neutral request in, a plausible answer out.

Answers are derived from a hash of the request, so a rerun gives the same output. A prompt that
lists choices ("positive, negative or neutral") is answered with one of them; a requested JSON
schema is answered with a document valid for it. With attachments (images, PDFs), the choice and
the schema document come from the attachments' sha256 values and the model alone, so a file gets the
same label whatever the prompt's wording or the provider; a free-text answer ends with
` [seen: <media type> <sha256[:12]>, ...]` (issue #22's contract).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

_CHOICES = re.compile(r"\b(?:as|is|into|either|one of)\s+([\w-]+(?:,\s*[\w-]+)*,?\s+or\s+[\w-]+)", re.IGNORECASE)
_WORDS = "alpha bright calm deep eager fair gentle honest ideal jolly keen lively merry noble open".split()  # noqa: SIM905


@dataclass
class NeutralRequest:
    """A chat request in no provider's format."""

    model: str
    messages: list[dict[str, Any]]
    system: str | None = None
    max_tokens: int | None = None
    json_schema: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    attachments: list[tuple[str, str]] = field(default_factory=list)  # (media type, sha256 hex), in order

    def prompt_text(self) -> str:
        return "\n".join(_text(m.get("content")) for m in self.messages)


@dataclass
class NeutralResponse:
    """What the emulated model answered."""

    text: str
    input_tokens: int
    output_tokens: int
    finish_reason: str  # "stop" or "length"


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in content)
    return "" if content is None else str(content)


def _seed(request: NeutralRequest) -> int:
    payload = orjson.dumps([request.model, request.system, request.prompt_text()])
    return int.from_bytes(hashlib.blake2b(payload, digest_size=8).digest(), "big")


def _content_seed(request: NeutralRequest) -> int:
    """The seed of a choice or schema answer: the attachments' digests (in order) and the model."""
    payload = orjson.dumps([request.model, [sha for _, sha in request.attachments]])
    return int.from_bytes(hashlib.blake2b(payload, digest_size=8).digest(), "big")


def respond(request: NeutralRequest, invalid_json: bool = False) -> NeutralResponse:
    """A deterministic answer to the request."""
    seed = _seed(request)
    chosen = _content_seed(request) if request.attachments else seed
    prompt = (request.system or "") + "\n" + request.prompt_text()
    if request.json_schema is not None:
        text = "{not valid json" if invalid_json else orjson.dumps(_instance(request.json_schema, chosen)).decode()
    else:
        match = _CHOICES.search(prompt)
        if match:
            options = [o.strip() for o in re.split(r",\s*|\s+or\s+", match.group(1)) if o.strip()]
            text = options[chosen % len(options)]
        else:
            words = [_WORDS[(seed >> (4 * i)) % len(_WORDS)] for i in range(6)]
            text = f"Emulated answer: {' '.join(words)}."
            if request.attachments:
                text += " [seen: " + ", ".join(f"{kind} {sha[:12]}" for kind, sha in request.attachments) + "]"
    tokens = max(1, len(text) // 4)
    finish = "stop"
    if request.max_tokens is not None and tokens > request.max_tokens:
        text = text[: request.max_tokens * 4]
        tokens, finish = request.max_tokens, "length"
    return NeutralResponse(text, max(1, len(prompt) // 4), tokens, finish)


def _stable(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big")


def _instance(schema: dict[str, Any], seed: int, depth: int = 0) -> Any:
    if "enum" in schema:
        return schema["enum"][seed % len(schema["enum"])]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return _instance(options[0], seed, depth + 1)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: _instance(v, (seed >> 1) ^ _stable(k), depth + 1) for k, v in props.items()}
    if kind == "array":
        count = max(schema.get("minItems", 1), 1 + seed % 3)
        count = min(count, schema.get("maxItems", count))
        return [_instance(schema.get("items", {}), seed + i, depth + 1) for i in range(count)]
    if kind == "integer":
        low = schema.get("minimum", 0)
        return int(low + seed % 10)
    if kind == "number":
        low, high = schema.get("minimum", 0.0), schema.get("maximum", 1.0)
        return round(low + (high - low) * ((seed % 1000) / 1000), 3)
    if kind == "boolean":
        return bool(seed % 2)
    if kind == "null":
        return None
    words = [_WORDS[(seed >> (3 * i)) % len(_WORDS)] for i in range(3)]
    return " ".join(words)
