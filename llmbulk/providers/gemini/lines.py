"""The Gemini batch line codec (pure, no SDK): a task → one keyed request line, one result line → an outcome.

Request lines are `{"key", "request"}` with a GenerateContentRequest in REST JSON (camelCase, no
model); result lines carry a `response` or a google.rpc.Status `error`, whose status names decide
whether a resend may help.
"""

from __future__ import annotations

import functools
from typing import Any

import orjson

from llmbulk.attachments.wire import gemini_parts, has_parts
from llmbulk.errors import InputError
from llmbulk.models import ItemOutcome, Outcome, Task
from llmbulk.providers.base import model_params, same_params

ROLES = {"user": "user", "assistant": "model", "model": "model"}
GENERATION_PARAMS = {
    "max_tokens": "maxOutputTokens",
    "max_completion_tokens": "maxOutputTokens",
    "max_output_tokens": "maxOutputTokens",
    "temperature": "temperature",
    "top_p": "topP",
    "top_k": "topK",
    "stop": "stopSequences",
    "seed": "seed",
}

# google.rpc.Status: lines may carry a gRPC code (0–16) or an HTTP code; both become a status name.
GRPC_STATUSES = {
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    15: "DATA_LOSS",
    16: "UNAUTHENTICATED",
}
HTTP_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
# Resending the same request cannot fix these; everything else (quota, overload, unknown) may pass later.
PERMANENT_STATUSES = frozenset(
    {
        "INVALID_ARGUMENT",
        "FAILED_PRECONDITION",
        "PERMISSION_DENIED",
        "NOT_FOUND",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "UNAUTHENTICATED",
    }
)


class ConfigCache:
    """The last task params seen and the `generationConfig` made of them (a job's tasks share theirs)."""

    __slots__ = ("config", "schema", "seen")

    def __init__(self) -> None:
        self.seen: tuple[tuple[str, Any], ...] | None = None
        self.schema: Any = None
        self.config: dict[str, Any] = {}


def encode_line(task: Task, custom_id: str, configs: ConfigCache | None = None) -> bytes:
    """One keyed JSONL line: `{"key", "request": GenerateContentRequest (REST camelCase)}`."""
    return orjson.dumps({"key": custom_id, "request": request(task, configs)})


def decode_line(line: bytes) -> ItemOutcome:
    """One result line (`response` or google.rpc.Status `error`) to an outcome."""
    data = orjson.loads(line)
    custom_id = data["key"]
    error = data.get("error")
    if error:
        return _decode_error(custom_id, error)
    response = data.get("response")
    if response is None:
        return ItemOutcome(
            custom_id,
            Outcome.RETRYABLE,
            error_type="api_error",
            error_code="empty_result",
            error_message="the result line has neither a response nor an error",
        )
    return _decode_response(custom_id, response)


def request(task: Task, configs: ConfigCache | None = None) -> dict[str, Any]:
    """A GenerateContentRequest in REST JSON (camelCase), without the model."""
    system = [task.system] if task.system else []
    contents = []
    for message in task.messages:
        role = message.get("role")
        if role == "system":
            system.append(_text(message["content"]))
            continue
        gemini_role = ROLES.get(role) if isinstance(role, str) else None
        if gemini_role is None:
            raise InputError(
                f"row {task.row_index}: Gemini has no message role {role!r}", hint="use user, assistant or system"
            )
        content = message["content"]
        if type(content) is list and has_parts(content):
            contents.append({"role": gemini_role, "parts": gemini_parts(task, content)})
            continue
        contents.append({"role": gemini_role, "parts": [{"text": content if type(content) is str else _text(content)}]})
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
    params = task.params
    seen = configs.seen if configs is not None else None
    if (
        seen is not None
        and task.output_schema is configs.schema  # type: ignore[union-attr]
        and ((not params and not seen) or same_params(params, seen))
    ):
        config = configs.config  # type: ignore[union-attr]
    else:
        config = generation_config(model_params(task, {}), task.output_schema)
        if configs is not None:
            configs.seen, configs.config, configs.schema = tuple(params.items()), config, task.output_schema
    if config:
        body["generationConfig"] = config
    return body


def generation_config(params: dict[str, Any], schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """llmbulk's OpenAI-style params → `generationConfig`; other snake_case names pass through camelCased."""
    config: dict[str, Any] = {}
    for name, value in params.items():
        if value is None:
            continue
        field = GENERATION_PARAMS.get(name) or _camel(name)
        if field == "stopSequences" and isinstance(value, str):
            value = [value]
        config[field] = value
    if schema is not None:
        config["responseMimeType"] = "application/json"
        config["responseJsonSchema"] = schema
    return config


def status_name(status: Any, code: Any) -> str | None:
    """A google.rpc.Status name from its `status`, or from a gRPC or HTTP `code`."""
    if status:
        return str(status)
    if isinstance(code, int):
        return GRPC_STATUSES.get(code) or HTTP_STATUSES.get(code) or ("INTERNAL" if code >= 500 else None)
    return None


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI-style parts: keep the text ones
        return "".join(p if isinstance(p, str) else str(p.get("text") or "") for p in content)
    return str(content)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _get(obj: Any, camel: str) -> Any:
    """A field by its REST camelCase name, or its snake_case twin (accepted defensively)."""
    if not isinstance(obj, dict):
        return None
    value = obj.get(camel)
    if value is None:
        value = obj.get(_snake(camel))
    return value


@functools.cache
def _snake(camel: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)


def _decode_error(custom_id: str, error: dict[str, Any]) -> ItemOutcome:
    code = error.get("code")
    status = status_name(error.get("status"), code)
    return ItemOutcome(
        custom_id,
        Outcome.PERMANENT if status in PERMANENT_STATUSES else Outcome.RETRYABLE,
        error_type="api_error",
        error_code=status or (str(code) if code is not None else "unknown"),
        error_message=error.get("message"),
    )


def _decode_response(custom_id: str, response: dict[str, Any]) -> ItemOutcome:
    usage = _get(response, "usageMetadata") or {}
    input_tokens = _get(usage, "promptTokenCount")
    candidates_tokens = _get(usage, "candidatesTokenCount")
    thoughts = _get(usage, "thoughtsTokenCount")
    cached = _get(usage, "cachedContentTokenCount")
    candidates = _get(response, "candidates") or []
    if not candidates:
        reason = _get(_get(response, "promptFeedback"), "blockReason")
        return ItemOutcome(
            custom_id,
            Outcome.PERMANENT,
            input_tokens=input_tokens,
            error_type="blocked",
            error_code="blocked",
            error_message=f"Gemini blocked the prompt ({reason})" if reason else "Gemini returned no candidates",
        )
    candidate = candidates[0]
    parts = _get(_get(candidate, "content"), "parts") or []
    # Thought summaries (only sent when asked for) are not the answer.
    texts = [p["text"] for p in parts if isinstance(p, dict) and p.get("text") is not None and not p.get("thought")]
    # Gemini counts thinking apart from candidates; llmbulk's output tokens include reasoning (as OpenAI's do).
    output_tokens = (
        None if candidates_tokens is None and thoughts is None else (candidates_tokens or 0) + (thoughts or 0)
    )
    return ItemOutcome(
        custom_id,
        Outcome.SUCCEEDED,
        output="".join(texts) if texts else None,
        finish_reason=_get(candidate, "finishReason"),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_tokens=cached,
        reasoning_tokens=thoughts,
    )
