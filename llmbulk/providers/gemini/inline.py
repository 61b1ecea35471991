"""Gemini inline mode: the shard's requests travel in the create body (under 20 MB), and the answers
come back inside the job, joined on `metadata.key`, never by position."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import orjson

from llmbulk.errors import UsageError
from llmbulk.providers.base import ShardInput

log = logging.getLogger(__name__)

INLINE_MAX_BYTES = 20_000_000


def check_inline_size(shard: ShardInput) -> None:
    """Refuse a shard too large for an inline batch (before anything is sent)."""
    if shard.n_bytes > INLINE_MAX_BYTES:
        raise UsageError(
            f"shard {shard.shard_id} is {shard.n_bytes:,} bytes; Gemini inline batches must stay under "
            f"{INLINE_MAX_BYTES:,} bytes",
            hint="use file mode (the default) or lower --max-bytes-per-batch",
        )


def inline_requests(shard: ShardInput) -> list[Any]:
    """The shard's keyed request lines as the SDK's `InlinedRequest`s, each keyed in its metadata."""
    from google.genai import types

    requests = []
    with open(shard.path, "rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            data = orjson.loads(line)
            request = data["request"]
            config = dict(request.get("generationConfig") or {})
            if request.get("systemInstruction"):
                config["systemInstruction"] = request["systemInstruction"]
            requests.append(
                types.InlinedRequest(
                    contents=[types.Content.model_validate(c) for c in request["contents"]],
                    config=types.GenerateContentConfig.model_validate(config) if config else None,
                    metadata={"key": str(data["key"])},
                )
            )
    return requests


def inline_lines(job: Any) -> Iterator[bytes]:
    """Inlined responses as result lines keyed by `metadata.key` (positions are not trusted)."""
    responses = (job.dest.inlined_responses if job.dest else None) or []
    unkeyed = 0
    for item in responses:
        key = (item.metadata or {}).get("key")
        if not key:
            unkeyed += 1  # cannot be joined safely; the item will be reported as missing and retried
            continue
        if item.error is not None:
            line: dict[str, Any] = {"key": key, "error": item.error.model_dump(mode="json", exclude_none=True)}
        elif item.response is not None:
            line = {"key": key, "response": item.response.model_dump(mode="json", by_alias=True, exclude_none=True)}
        else:
            line = {"key": key}
        yield orjson.dumps(line)
    if unkeyed:
        log.warning("Gemini returned %d inline results without metadata.key; they are treated as missing", unkeyed)
