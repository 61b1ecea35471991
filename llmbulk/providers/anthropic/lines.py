"""The Anthropic line codec: a task → one `{"custom_id", "params"}` request line, a results line → an outcome.

Also the wire around the lines: the create body spliced from a shard's lines, and a results stream
cut back into lines. Structured output goes through the SDK's own `transform_schema` (the only SDK
use here); everything else is pure.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import orjson

from llmbulk.attachments.wire import native_messages
from llmbulk.errors import InputError, ProviderError
from llmbulk.models import CUSTOM_ID_RE, ItemOutcome, Outcome, Task
from llmbulk.providers.base import model_params, same_params

DEFAULT_MAX_TOKENS = 1024
# Item errors that a resend cannot fix; every other error type (including unknown ones) is retried.
PERMANENT_ERROR_TYPES = frozenset(
    {
        "invalid_request_error",
        "authentication_error",
        "permission_error",
        "not_found_error",
        "request_too_large",
        "billing_error",
    }
)
MESSAGE_ROLES = frozenset({"user", "assistant"})
RENAMED_PARAMS = {"stop": "stop_sequences"}
RESERVED_PARAMS = {
    "stream": "batches never stream",
    "model": "choose the model with --model",
    "messages": "messages come from the prompt or the tasks file",
}
DROPPED_PARAMS = frozenset({"seed"})  # Anthropic has no sampling seed; the CLI documents "where supported"


def sent_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema as Anthropic structured outputs receive it: the SDK's own `transform_schema`."""
    from anthropic import transform_schema

    return dict(transform_schema(copy.deepcopy(schema)))


class RequestEncoder:
    """Encodes a job's tasks, remembering the last params and schema seen (a job's tasks share them)."""

    def __init__(self) -> None:
        self._schema_cache: tuple[bytes, dict[str, Any]] | None = None
        self._params_cache: tuple[tuple[tuple[str, Any], ...], int, dict[str, Any], Any] | None = None

    def encode(self, task: Task, custom_id: str, model: str) -> bytes:
        """One `{"custom_id", "params"}` request line for the create body."""
        if not CUSTOM_ID_RE.match(custom_id):
            raise InputError(
                f"custom_id {custom_id!r} is not valid for Anthropic",
                hint="ids must match ^[a-zA-Z0-9_-]{1,64}$; use a shorter job id or row key",
            )
        system_parts = [task.system] if task.system else []
        messages: list[dict[str, Any]] = []
        for message in native_messages(task, "anthropic"):
            role = message.get("role")
            if role in MESSAGE_ROLES:
                messages.append({"role": role, "content": message.get("content")})
            elif role == "system":  # lifted: the top-level `system` is the portable place for it
                system_parts.append(_text_of(message.get("content")))
            else:
                raise InputError(
                    f"item {task.key!r}: message role {role!r} is not supported by Anthropic",
                    hint="use user, assistant or system",
                )
        if not messages:
            raise InputError(f"item {task.key!r} has no user or assistant message", hint="Anthropic needs at least one")
        cached = self._params_cache
        if (
            cached is not None
            and task.output_schema is cached[3]
            and ((not task.params and not cached[0]) or same_params(task.params, cached[0]))
        ):
            max_tokens, extra = cached[1], cached[2]
        else:
            max_tokens, extra = self._params_of(task)
        params: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": messages}
        if system_parts:
            params["system"] = "\n\n".join(system_parts)
        if extra:
            # The same keys, values and order as assigning them one by one after `system`.
            params.update(extra)
        return orjson.dumps({"custom_id": custom_id, "params": params})

    def _params_of(self, task: Task) -> tuple[int, dict[str, Any]]:
        """`max_tokens` and the other request params of a task, remembered for the tasks after it.

        A job's tasks share their params (usually the very same dict), so `encode` reuses the last
        result while the params hold the same names, in the same order, bound to the same objects.
        """
        max_tokens = _max_tokens(task)
        extra: dict[str, Any] = {}
        for name, value in model_params(task, {}).items():
            if name == "max_tokens" or name in DROPPED_PARAMS:
                continue
            if name == "output_config" and isinstance(value, dict):  # e.g. effort; a --schema format wins
                extra["output_config"] = {**value, **extra.get("output_config", {})}
                continue
            if name in RESERVED_PARAMS:
                raise InputError(
                    f"item {task.key!r}: parameter {name!r} cannot be set here", hint=RESERVED_PARAMS[name]
                )
            key = RENAMED_PARAMS.get(name, name)
            extra[key] = [value] if key == "stop_sequences" and isinstance(value, str) else value
        if task.output_schema is not None:  # native structured output: the answer is a JSON text block
            schema = self._output_schema(task, task.output_schema)
            extra["output_config"] = {
                **extra.get("output_config", {}),
                "format": {"type": "json_schema", "schema": schema},
            }
        self._params_cache = (tuple(task.params.items()), max_tokens, extra, task.output_schema)
        return max_tokens, extra

    def _output_schema(self, task: Task, schema: Any) -> dict[str, Any]:
        """The schema as Anthropic's structured outputs take it, through the SDK's own `transform_schema`.

        Every object is closed (`additionalProperties: false`) and unsupported keywords (e.g. numeric
        bounds) move into descriptions; results are still validated against the original schema.
        One job has one schema, so the last transform is kept.
        """
        key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
        if self._schema_cache is not None and self._schema_cache[0] == key:
            return self._schema_cache[1]
        try:
            transformed = sent_schema(schema)
        except (ValueError, TypeError, AttributeError) as exc:
            raise InputError(
                f"item {task.key!r}: the output schema cannot be used for Anthropic structured outputs ({exc})",
                hint="give every property a type (or anyOf/enum/const)",
            ) from exc
        self._schema_cache = (key, transformed)
        return transformed


def decode_line(line: bytes) -> ItemOutcome:
    """One results line (`succeeded`, `errored`, `canceled` or `expired`) to an outcome."""
    data = orjson.loads(line)
    custom_id = data["custom_id"]
    result = data["result"]
    kind = result["type"]
    if kind == "succeeded":
        return _decode_message(custom_id, result["message"])
    if kind == "errored":
        return _decode_error(custom_id, result.get("error") or {})
    if kind in ("canceled", "expired"):
        # Never attempted: the batch was cancelled or hit its 24 h window first. Resend.
        reason = "the batch was cancelled before this request ran" if kind == "canceled" else "the batch expired"
        return ItemOutcome(
            custom_id, Outcome.RETRYABLE, error_type="batch_error", error_code=kind, error_message=reason
        )
    raise ProviderError(f"Anthropic result for {custom_id!r} has unknown type {kind!r}", hint="upgrade llmbulk")


def write_create_body(shard_path: Path) -> Path:
    """`{"requests": [line, line, ...]}` from a shard's JSONL lines, written next to the shard."""
    body_path = shard_path.with_name(f".{shard_path.name}.{os.getpid()}.create-body.json")
    with open(shard_path, "rb") as lines, open(body_path, "wb") as out:
        out.write(b'{"requests":[')
        separator = b""
        for line in lines:
            request = line.strip()
            if request:
                out.write(separator + request)
                separator = b",\n"
        out.write(b"]}")
    return body_path


def _max_tokens(task: Task) -> int:
    value = task.params.get("max_tokens")
    if value is None:
        return DEFAULT_MAX_TOKENS
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(
            f"item {task.key!r}: max_tokens must be a whole number of at least 1 for Anthropic, not {value!r}"
        )
    return value


def _text_of(content: Any) -> str:
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


def _decode_message(custom_id: str, message: dict[str, Any]) -> ItemOutcome:
    texts: list[str] = []
    tool_input: Any = None
    has_tool = False
    for block in message.get("content") or []:
        if block.get("type") == "text":
            texts.append(block.get("text") or "")
        elif block.get("type") == "tool_use" and not has_tool:
            # Jobs submitted before native structured outputs forced a `record_output` tool call:
            # its input is the answer. Native structured output arrives as a plain JSON text block.
            has_tool, tool_input = True, block.get("input")
    usage = message.get("usage") or {}
    cache_read = usage.get("cache_read_input_tokens") or 0
    cache_write = usage.get("cache_creation_input_tokens") or 0
    input_tokens = usage.get("input_tokens")
    return ItemOutcome(
        custom_id,
        Outcome.SUCCEEDED,
        output=orjson.dumps(tool_input).decode() if has_tool else "".join(texts),
        finish_reason=message.get("stop_reason"),
        # Anthropic's input_tokens excludes cache reads and writes; llmbulk counts cached tokens inside input.
        input_tokens=None if input_tokens is None else input_tokens + cache_read + cache_write,
        output_tokens=usage.get("output_tokens"),
        cached_tokens=usage.get("cache_read_input_tokens"),
    )


def _decode_error(custom_id: str, response: dict[str, Any]) -> ItemOutcome:
    error = response.get("error") or {}
    error_type = str(error.get("type") or "unknown_error")
    details = error.get("details")
    code = details.get("error_code") if isinstance(details, dict) else None
    return ItemOutcome(
        custom_id,
        Outcome.PERMANENT if error_type in PERMANENT_ERROR_TYPES else Outcome.RETRYABLE,
        error_type=error_type,
        error_code=str(code or error_type),
        error_message=error.get("message"),
    )


FILE_SOURCE = b'"source":{"type":"file"'  # a content block referencing a Files API upload, as `encode` writes it


def references_files(shard: Path) -> bool:
    """Whether a shard's requests reference Files API uploads (the batch is then created with the beta)."""
    tail = b""
    with open(shard, "rb") as fh:
        while block := fh.read(1 << 20):
            if FILE_SOURCE in tail + block:
                return True
            tail = block[-len(FILE_SOURCE) :]
    return False
