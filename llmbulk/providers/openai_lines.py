"""The OpenAI batch wire format, pure: request lines, result lines, and batch objects → statuses.

Shared by every OpenAI-compatible profile. Vendors bend the batch object (Azure's REST answers carry
ISO timestamps and `"Validating"`, Novita's `"PROGRESS"`, string `errors` and string `created_at`), so
`batch_status` reads fields defensively; an unknown status is still an error, never a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from llmbulk import schemas
from llmbulk.attachments.wire import native_messages
from llmbulk.errors import ProviderError
from llmbulk.models import BatchState, BatchStatus, ItemOutcome, Outcome, Task
from llmbulk.providers.base import model_params

STATES: dict[str, BatchState] = {
    "validating": BatchState.VALIDATING,
    "failed": BatchState.FAILED,
    "in_progress": BatchState.RUNNING,
    "finalizing": BatchState.FINALIZING,
    "completed": BatchState.ENDED,
    "expired": BatchState.EXPIRED,
    "cancelling": BatchState.CANCELLING,
    "cancelled": BatchState.CANCELLED,
}
RETRYABLE_LINE_CODES = frozenset({"batch_expired", "batch_cancelled", "request_timeout"})
RETRYABLE_HTTP = frozenset({408, 409, 429})


def encode(task: Task, custom_id: str, model: str, endpoint: str) -> bytes:
    """One request line for `endpoint` (chat completions, responses or embeddings)."""
    params = model_params(task, {})
    max_tokens = params.pop("max_tokens", None)
    schema = task.output_schema
    if endpoint == "/v1/embeddings":
        body: dict[str, Any] = {"model": model, "input": _user_text(task)}
    elif endpoint == "/v1/responses":
        body = {"model": model, "input": native_messages(task, "openai_responses"), **params}
        if task.system:
            body["instructions"] = task.system
        if max_tokens is not None:
            body["max_output_tokens"] = max_tokens
        if schema is not None:
            body["text"] = {"format": {"type": "json_schema", "name": "output", "schema": schemas.strict(schema),
                                       "strict": True}}  # fmt: skip
    else:
        messages = native_messages(task, "openai_chat")
        messages = messages if not task.system else [{"role": "system", "content": task.system}, *messages]
        body = {"model": model, "messages": messages, **params}
        if max_tokens is not None:
            body["max_completion_tokens"] = max_tokens
        if schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": schemas.strict(schema), "strict": True},
            }
    return orjson.dumps({"custom_id": custom_id, "method": "POST", "url": endpoint, "body": body})


def decode(line: bytes) -> ItemOutcome:
    """One output- or error-file line. Success is `response.status_code == 200`, not `error is None`."""
    data = orjson.loads(line)
    custom_id = data["custom_id"]
    response = data.get("response")
    if response and response.get("status_code") == 200:
        return _decode_success(custom_id, response.get("body") or {})
    if response:
        status = int(response.get("status_code") or 0)
        error = (response.get("body") or {}).get("error") or {}
        retryable = status in RETRYABLE_HTTP or status >= 500
        return ItemOutcome(
            custom_id,
            Outcome.RETRYABLE if retryable else Outcome.PERMANENT,
            error_type=error.get("type"),
            error_code=str(error.get("code") or status),
            error_message=error.get("message"),
        )
    error = data.get("error") or {}
    code = error.get("code") or "unknown_error"
    # Errors without an HTTP response are the batch's doing (expiry, cancel, timeout): resubmit.
    return ItemOutcome(
        custom_id,
        Outcome.RETRYABLE if code in RETRYABLE_LINE_CODES or not code.startswith("invalid") else Outcome.PERMANENT,
        error_type="batch_error",
        error_code=code,
        error_message=error.get("message"),
    )


def raw_status(batch: Any, aliases: Mapping[str, str] | None = None) -> str:
    """The batch's status in OpenAI's spelling (a vendor's own spelling mapped, any case)."""
    status = str(getattr(batch, "status", None) or "")
    return (aliases or {}).get(status, status).lower()


def batch_status(batch: Any, aliases: Mapping[str, str] | None = None) -> BatchStatus:
    """An SDK `Batch` (or a vendor's variant of it) → a normalized status (pure)."""
    raw = batch.model_dump(mode="json", warnings=False)  # a vendor's string timestamps are kept as sent
    status = raw_status(batch, aliases)
    state = STATES.get(status)
    if state is None:
        raise ProviderError(f"batch {batch.id} has unknown status {batch.status!r}", hint="upgrade llmbulk")
    refs = {k: v for k in ("output_file_id", "error_file_id") if (v := getattr(batch, k, None))}
    total, completed, failed = _counts(batch)
    if state is BatchState.ENDED and not refs and total:
        state = BatchState.FINALIZING  # files not visible yet: keep polling
    errors = _errors(getattr(batch, "errors", None))
    error = "; ".join(f"{e['code']}: {e['message']}" + (f" (line {e['line']})" if e.get("line") else "")
                      for e in errors[:3]) or None  # fmt: skip
    ended = next((t for k in ("completed_at", "failed_at", "expired_at", "cancelled_at")
                  if (t := epoch(getattr(batch, k, None))) is not None), None)  # fmt: skip
    return BatchStatus(
        batch_id=batch.id,
        state=state,
        raw_status=str(batch.status),
        total=total,
        completed=None if completed is None else completed + (failed or 0),
        failed=failed,
        result_refs=refs,
        error=error,
        error_code=errors[0]["code"] if errors else None,
        ended_at=ended,
        raw=raw,
    )


def epoch(value: Any) -> float | None:
    """A timestamp as UNIX seconds: OpenAI's integers, or the ISO or numeric strings some vendors send."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _counts(batch: Any) -> tuple[int | None, int | None, int | None]:
    counts = getattr(batch, "request_counts", None)
    if counts is None:
        return None, None, None
    read = counts.get if isinstance(counts, dict) else lambda k: getattr(counts, k, None)
    values = [read(k) for k in ("total", "completed", "failed")]
    if any(not isinstance(v, int) for v in values):  # Azure's REST examples show nulls while validating
        return None, None, None
    return values[0], values[1], values[2]


def _errors(errors: Any) -> list[dict[str, Any]]:
    """`errors.data` as dicts; a vendor's plain-string `errors` (Novita) becomes one error."""
    if not errors:
        return []
    if isinstance(errors, str):
        return [{"code": "batch_failed", "message": errors, "line": None}]
    data = errors.get("data") if isinstance(errors, dict) else getattr(errors, "data", None)
    out = []
    for item in data or []:
        get = item.get if isinstance(item, dict) else lambda k, i=item: getattr(i, k, None)
        out.append({"code": get("code") or "batch_failed", "message": get("message") or "", "line": get("line")})
    return out


def _user_text(task: Task) -> str:
    return "\n".join(str(m["content"]) for m in task.messages if m.get("role") == "user")


def _decode_success(custom_id: str, body: dict[str, Any]) -> ItemOutcome:
    usage = body.get("usage") or {}
    obj = body.get("object")
    if obj == "list":  # embeddings
        vectors = [d.get("embedding") for d in body.get("data") or []]
        return ItemOutcome(
            custom_id,
            Outcome.SUCCEEDED,
            output=orjson.dumps(vectors[0] if len(vectors) == 1 else vectors).decode(),
            input_tokens=usage.get("prompt_tokens"),
            output_tokens=0,
        )
    if obj == "response":
        texts = [
            part.get("text", "")
            for item in body.get("output") or []
            if item.get("type") == "message"
            for part in item.get("content") or []
            if part.get("type") == "output_text"
        ]
        return ItemOutcome(
            custom_id,
            Outcome.SUCCEEDED,
            output="".join(texts),
            finish_reason=body.get("status"),
            input_tokens=usage.get("input_tokens"),
            output_tokens=usage.get("output_tokens"),
            cached_tokens=(usage.get("input_tokens_details") or {}).get("cached_tokens"),
            reasoning_tokens=(usage.get("output_tokens_details") or {}).get("reasoning_tokens"),
        )
    choice = (body.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    return ItemOutcome(
        custom_id,
        Outcome.SUCCEEDED,
        output=message.get("content") if message.get("content") is not None else message.get("refusal"),
        finish_reason=choice.get("finish_reason"),
        input_tokens=usage.get("prompt_tokens"),
        output_tokens=usage.get("completion_tokens"),
        cached_tokens=(usage.get("prompt_tokens_details") or {}).get("cached_tokens"),
        reasoning_tokens=(usage.get("completion_tokens_details") or {}).get("reasoning_tokens"),
    )
