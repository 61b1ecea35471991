"""Anthropic Message Batches through the official `anthropic` SDK (imported lazily).

No upload: the shard's lines travel in the create body, sent with SDK retries off. Item counts
stay hidden until a batch ends, so progress is reported as unknown rather than a wrong 0%.
Results stream from the batch's absolute `results_url` and are joined on `custom_id` only.
"""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from llmbulk.errors import ConfigError, InputError, ProviderError, QuotaError
from llmbulk.models import CUSTOM_ID_RE, BatchRef, BatchState, BatchStatus, ItemOutcome, Limits, Outcome, Task
from llmbulk.providers.base import ProviderSettings, ShardInput, model_params, same_params, transport_errors

MAX_REQUESTS = 100_000
# The create body is the shard's lines plus a comma per request and a 15-byte wrapper; the
# shard's byte cap leaves room for that under the 256 MB body limit.
BODY_OVERHEAD = MAX_REQUESTS + 64
LIMITS = Limits(
    max_items=MAX_REQUESTS,
    max_bytes=256 * 1024 * 1024 - BODY_OVERHEAD,
    counts_live=False,
    endpoints=("/v1/messages",),
    # API version 2026-10-21 (the one the installed anthropic SDK sends) removed the sampling
    # parameters: a request with any of them, even at its default, ends `invalid_request_error`
    # (Anthropic's migration notes for 2026-10-21). Refused before a job pays for them.
    refused_params=frozenset({"temperature", "top_p", "top_k"}),
    refused_why="Anthropic's API version 2026-10-21 (sent by the anthropic SDK) removed sampling parameters; drop it",
    max_temperature=1.0,  # documented range 0-1
    # What the SDK's transform makes of the schema (as sent) must still resolve; no recursion.
    schema_checks=("sent_form_resolves", "no_recursion"),
)


def sent_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema as Anthropic structured outputs receive it: the SDK's own `transform_schema`."""
    from anthropic import transform_schema

    return dict(transform_schema(copy.deepcopy(schema)))


DEFAULT_MAX_TOKENS = 1024
LIST_PAGE_SIZE = 100
CLOCK_SKEW_SECONDS = 60.0
DOWNLOAD_CHUNK = 1 << 20

# `ended` covers normal ends, expiry and cancellation alike; `batch_status` tells cancellation apart
# by `cancel_initiated_at`. Expired items show up as `expired` result lines either way.
STATES: dict[str, BatchState] = {
    "in_progress": BatchState.RUNNING,
    "canceling": BatchState.CANCELLING,
    "ended": BatchState.ENDED,
}
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
RETRYABLE_HTTP = frozenset({408, 409})  # plus every 5xx (529 overloaded included); 429 is a QuotaError
MESSAGE_ROLES = frozenset({"user", "assistant"})
RENAMED_PARAMS = {"stop": "stop_sequences"}
RESERVED_PARAMS = {
    "stream": "batches never stream",
    "model": "choose the model with --model",
    "messages": "messages come from the prompt or the tasks file",
}
DROPPED_PARAMS = frozenset({"seed"})  # Anthropic has no sampling seed; the CLI documents "where supported"
ERROR_TEXT_LIMIT = 300


class AnthropicBatchProvider:
    """Anthropic Message Batches adapter."""

    name = "anthropic"
    limits = LIMITS
    files = None  # no input files: the requests travel in the create body

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        self._client: Any = None
        self._schema_cache: tuple[bytes, dict[str, Any]] | None = None
        self._params_cache: tuple[tuple[tuple[str, Any], ...], int, dict[str, Any], Any] | None = None

    @property
    def client(self) -> Any:
        if self._client is None:
            import anthropic

            self._client = anthropic.Anthropic(
                api_key=self.settings.api_key, base_url=self.settings.base_url, timeout=self.settings.timeout
            )
        return self._client

    # ---- pure line codecs --------------------------------------------------------------------

    def encode(self, task: Task, custom_id: str) -> bytes:
        """One `{"custom_id", "params"}` request line for the create body."""
        if not CUSTOM_ID_RE.match(custom_id):
            raise InputError(
                f"custom_id {custom_id!r} is not valid for Anthropic",
                hint="ids must match ^[a-zA-Z0-9_-]{1,64}$; use a shorter job id or row key",
            )
        system_parts = [task.system] if task.system else []
        messages: list[dict[str, Any]] = []
        for message in task.messages:
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
        params: dict[str, Any] = {"model": self.settings.model, "max_tokens": max_tokens, "messages": messages}
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

    def decode(self, line: bytes) -> ItemOutcome:
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

    # ---- calls -------------------------------------------------------------------------------

    def create(self, shard: ShardInput, input_file_id: str | None, labels: dict[str, str]) -> BatchRef:
        """Send the shard's lines as one batch (no SDK retries: create is not idempotent).

        The shard lines are already in the wire format, so the `{"requests": [...]}` body is spliced
        together in a file beside the shard and streamed from there: memory stays flat whatever the
        shard's size, where building the request list for the SDK's `create` would hold every
        request as Python objects (several times the 256 MB body cap).
        """
        from anthropic.types.messages import MessageBatch

        body_path = write_create_body(shard.path)
        try:
            with open(body_path, "rb") as body:
                client = self.client.with_options(max_retries=0)
                batch = self._call(
                    "create batch", lambda: client.post("/v1/messages/batches", content=body, cast_to=MessageBatch)
                )
        finally:
            body_path.unlink(missing_ok=True)
        return BatchRef(provider=self.name, batch_id=batch.id, created_at=_seconds(batch.created_at))

    def poll(self, batch_ids: list[str]) -> list[BatchStatus]:
        """Retrieve each batch and normalize its status."""
        retrieve = self.client.messages.batches.retrieve
        return [batch_status(self._call("poll", functools.partial(retrieve, b))) for b in batch_ids]

    def results(self, status: BatchStatus) -> Iterator[bytes]:
        """Stream the results JSONL of an ended batch, one raw line at a time."""
        with (
            self._mapped("download results"),
            self.client.messages.batches.with_streaming_response.results(status.batch_id) as response,
        ):
            yield from split_lines(response.iter_bytes(DOWNLOAD_CHUNK))

    def cancel(self, batch_id: str) -> None:
        """Ask Anthropic to cancel a batch."""
        self._call("cancel", lambda: self.client.messages.batches.cancel(batch_id))

    def find(self, labels: dict[str, str], since: datetime, n_items: int) -> list[BatchRef]:
        """Batches carry no labels: those created since the intent with the shard's request count.

        Each is returned with `owned=None`: the caller proves ownership from its result ids.
        """
        with self._mapped("list batches"):
            page = self.client.messages.batches.list(limit=LIST_PAGE_SIZE)
            return match_batches(page, since.timestamp() - CLOCK_SKEW_SECONDS, n_items)

    def close(self) -> None:
        """Release the SDK client."""
        if self._client is not None:
            self._client.close()
            self._client = None

    # ---- helpers -----------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        with self._mapped(what):
            return fn()

    @contextmanager
    def _mapped(self, what: str) -> Iterator[None]:
        """SDK exceptions → llmbulk errors (messages never carry the key or the raw body dict)."""
        import anthropic

        try:
            yield
        except anthropic.AuthenticationError as exc:
            raise ConfigError(
                f"Anthropic rejected the API key during {what} (401)", hint="check ANTHROPIC_API_KEY"
            ) from exc
        except anthropic.RateLimitError as exc:
            raise QuotaError(f"Anthropic rate limit during {what}: {self._message(exc)}") from exc
        except anthropic.APIStatusError as exc:
            code = exc.status_code
            # An ended batch's results_url can answer 404 for a short while: ask again later.
            late_results = code == 404 and what == "download results"
            raise ProviderError(
                f"Anthropic {what} failed: HTTP {code}: {self._message(exc)}",
                retryable=code >= 500 or code in RETRYABLE_HTTP or late_results,
                hint="the results are not visible yet; collect again shortly" if late_results else _status_hint(code),
                status=code,
            ) from exc
        except anthropic.APIConnectionError as exc:
            raise ProviderError(
                f"cannot reach Anthropic for {what} at {self.client.base_url}: {exc.__class__.__name__}",
                retryable=True,
                hint="check the network or ANTHROPIC_BASE_URL",
            ) from exc
        except transport_errors() as exc:  # the connection broke mid-body (the SDK retries only before it)
            raise ProviderError(
                f"connection to Anthropic broke during {what}: {exc.__class__.__name__}", retryable=True
            ) from exc
        except anthropic.AnthropicError as exc:  # e.g. results asked for before the batch has a results_url
            raise ProviderError(f"Anthropic {what} failed: {self._scrub(_first_line(str(exc)))}") from exc

    def _message(self, exc: Any) -> str:
        """The API's own error message, never `str(exc)` (which embeds the whole body dict)."""
        body = getattr(exc, "body", None)
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and error.get("message"):
            return self._scrub(_first_line(str(error["message"])))
        if isinstance(body, str) and body.strip():
            return self._scrub(_first_line(body))
        return exc.__class__.__name__

    def _scrub(self, text: str) -> str:
        key = self.settings.api_key
        return text.replace(key, "***") if key else text


# ---- pure helpers (tested directly) ------------------------------------------------------------


def batch_status(batch: Any) -> BatchStatus:
    """An SDK `MessageBatch` → a normalized status (pure; an unknown status is an error, never a guess)."""
    state = STATES.get(batch.processing_status)
    if state is None:
        raise ProviderError(
            f"Anthropic batch {batch.id} has unknown status {batch.processing_status!r}", hint="upgrade llmbulk"
        )
    if state is BatchState.ENDED and batch.cancel_initiated_at is not None:
        state = BatchState.CANCELLED
    counts = batch.request_counts
    total = _total(counts)
    # Anthropic keeps every bucket but `processing` at 0 until the end: before that, unknown.
    known = batch.processing_status == "ended"
    return BatchStatus(
        batch_id=batch.id,
        state=state,
        raw_status=batch.processing_status,
        total=total,
        completed=total - counts.processing if known else None,
        failed=counts.errored + counts.canceled + counts.expired if known else None,
        counts_known=known,
        result_refs={"results_url": batch.results_url} if known and batch.results_url else {},
        ended_at=_seconds(batch.ended_at) if batch.ended_at else None,
        raw=batch.model_dump(mode="json"),
    )


def split_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Byte chunks → JSONL lines without line endings, blank lines dropped (they crash JSONL readers)."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                yield line.rstrip(b"\r")
    if pending.strip():
        yield pending.rstrip(b"\r")


def match_batches(batches: Iterable[Any], cutoff: float, n_items: int) -> list[BatchRef]:
    """Batches (newest first) created at/after `cutoff` holding exactly `n_items` requests."""
    found: list[BatchRef] = []
    for batch in batches:
        created = _seconds(batch.created_at)
        if created < cutoff:
            break  # newest first: everything after this is older, so stop paging
        if _total(batch.request_counts) == n_items:
            # A match by shape only: its result ids must prove it is ours before it is adopted.
            ref = BatchRef(provider=AnthropicBatchProvider.name, batch_id=batch.id, created_at=created, owned=None)
            found.append(ref)
    return found


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


def _total(counts: Any) -> int:
    return int(counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired)


def _seconds(moment: datetime) -> float:
    """UNIX seconds; a naive datetime is taken as UTC (the API sends RFC 3339 with a zone)."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= ERROR_TEXT_LIMIT else line[:ERROR_TEXT_LIMIT] + "…"


def _status_hint(code: int) -> str | None:
    if code == 413:
        return "the batch body is over Anthropic's limit: lower --max-bytes-per-batch"
    if code == 402:
        return "check the Anthropic account's billing"
    if code == 403:
        return "the key lacks permission for Message Batches in this workspace"
    return None
