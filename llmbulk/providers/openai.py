"""OpenAI Batch through the official `openai` SDK (imported lazily).

Upload (purpose=batch) → create (retries off, metadata labels job and shard) → poll → stream the
output *and* error files. Success means `response.status_code == 200`; everything else is
classified retryable or permanent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import orjson

from llmbulk import schemas
from llmbulk.errors import ConfigError, ProviderError, QuotaError
from llmbulk.models import BatchRef, BatchState, BatchStatus, ItemOutcome, Limits, Outcome, Task
from llmbulk.providers.base import ProviderSettings, ShardInput, model_params, transport_errors

ENDPOINTS = ("/v1/chat/completions", "/v1/responses", "/v1/embeddings")
LIMITS = Limits(
    max_items=50_000,
    max_bytes=200 * 1024 * 1024,
    counts_live=True,
    endpoints=ENDPOINTS,
    schema_checks=("strict_answerable",),  # strict mode makes every property required
)


def sent_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema as OpenAI strict structured outputs receive it."""
    return schemas.strict(schema)


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
LIST_POLL_THRESHOLD = 3  # above this many live batches, one list page beats one retrieve each
RETRYABLE_LINE_CODES = frozenset({"batch_expired", "batch_cancelled", "request_timeout"})
RETRYABLE_HTTP = frozenset({408, 409, 429})
REQUEUE_BATCH_CODES = frozenset({"token_limit_exceeded"})


class OpenAIBatchProvider:
    """OpenAI Batch API adapter."""

    name = "openai"
    limits = LIMITS

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        self.endpoint = settings.endpoint or "/v1/chat/completions"
        if self.endpoint not in ENDPOINTS:
            raise ConfigError(f"endpoint {self.endpoint!r} is not supported", hint=f"use one of {', '.join(ENDPOINTS)}")
        self._client: Any = None
        self.files = OpenAIFiles(self)

    @property
    def client(self) -> Any:
        if self._client is None:
            import openai

            self._client = openai.OpenAI(
                api_key=self.settings.api_key, base_url=self.settings.base_url, timeout=self.settings.timeout
            )
        return self._client

    # ---- pure line codecs --------------------------------------------------------------------

    def encode(self, task: Task, custom_id: str) -> bytes:
        params = model_params(task, {})
        max_tokens = params.pop("max_tokens", None)
        schema = task.output_schema
        if self.endpoint == "/v1/embeddings":
            body: dict[str, Any] = {"model": self.settings.model, "input": _user_text(task)}
        elif self.endpoint == "/v1/responses":
            body = {"model": self.settings.model, "input": task.messages, **params}
            if task.system:
                body["instructions"] = task.system
            if max_tokens is not None:
                body["max_output_tokens"] = max_tokens
            if schema is not None:
                body["text"] = {"format": {"type": "json_schema", "name": "output", "schema": schemas.strict(schema),
                                           "strict": True}}  # fmt: skip
        else:
            messages = (
                task.messages if not task.system else [{"role": "system", "content": task.system}, *task.messages]
            )
            body = {"model": self.settings.model, "messages": messages, **params}
            if max_tokens is not None:
                body["max_completion_tokens"] = max_tokens
            if schema is not None:
                body["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "output", "schema": schemas.strict(schema), "strict": True},
                }
        return orjson.dumps({"custom_id": custom_id, "method": "POST", "url": self.endpoint, "body": body})

    def decode(self, line: bytes) -> ItemOutcome:
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

    # ---- calls -------------------------------------------------------------------------------

    def create(self, shard: ShardInput, input_file_id: str | None, labels: dict[str, str]) -> BatchRef:
        batch = self._call(
            "create batch",
            lambda: self.client.with_options(max_retries=0).batches.create(
                input_file_id=input_file_id, endpoint=self.endpoint, completion_window="24h", metadata=labels
            ),
        )
        return BatchRef(provider=self.name, batch_id=batch.id, input_file_id=input_file_id, created_at=batch.created_at)

    def poll(self, batch_ids: list[str]) -> list[BatchStatus]:
        """Many batches are read from the paginated list (one call per 100), a few by retrieve."""
        found: dict[str, Any] = {}
        if len(batch_ids) > LIST_POLL_THRESHOLD:
            wanted = set(batch_ids)
            with self._mapped("poll (list)"):
                for batch in self.client.batches.list(limit=100):
                    if batch.id in wanted:
                        found[batch.id] = batch
                        if len(found) == len(wanted):
                            break
        missing = [b for b in batch_ids if b not in found]
        for batch_id in missing:
            found[batch_id] = self._call("poll", lambda b=batch_id: self.client.batches.retrieve(b))
        return [batch_status(found[b]) for b in batch_ids]

    def results(self, status: BatchStatus) -> Iterator[bytes]:
        for kind in ("output_file_id", "error_file_id"):
            file_id = status.result_refs.get(kind)
            if not file_id:
                continue
            yield from self._stream_file(file_id)

    def cancel(self, batch_id: str) -> None:
        self._call("cancel", lambda: self.client.batches.cancel(batch_id))

    def find(self, labels: dict[str, str], since: datetime, n_items: int) -> list[BatchRef]:
        cutoff = since.timestamp() - 60
        found: list[BatchRef] = []
        page = self._call("list batches", lambda: self.client.batches.list(limit=100))
        for batch in page:
            if batch.created_at < cutoff:
                break
            metadata = batch.metadata or {}
            if all(metadata.get(k) == v for k, v in labels.items()):
                found.append(
                    BatchRef(
                        provider=self.name,
                        batch_id=batch.id,
                        input_file_id=batch.input_file_id,
                        created_at=batch.created_at,
                    )
                )
        return found

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # ---- helpers -----------------------------------------------------------------------------

    def _stream_file(self, file_id: str) -> Iterator[bytes]:
        with self._mapped("download"), self.client.files.with_streaming_response.content(file_id) as resp:
            pending = b""
            for chunk in resp.iter_bytes(1 << 20):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                yield from (line for line in lines if line.strip())
            if pending.strip():
                yield pending

    def _call(self, what: str, fn: Any) -> Any:
        with self._mapped(what):
            return fn()

    @contextmanager
    def _mapped(self, what: str) -> Iterator[None]:
        """SDK exceptions → llmbulk errors (messages never carry the key)."""
        import openai

        try:
            yield
        except openai.AuthenticationError as exc:
            raise ConfigError(f"OpenAI rejected the API key during {what} (401)", hint="check OPENAI_API_KEY") from exc
        except openai.RateLimitError as exc:
            raise QuotaError(f"OpenAI rate limit during {what}: {_message(exc)}") from exc
        except openai.APIStatusError as exc:
            raise ProviderError(
                f"OpenAI {what} failed: HTTP {exc.status_code}: {_message(exc)}",
                retryable=exc.status_code >= 500 or exc.status_code in RETRYABLE_HTTP,
                status=exc.status_code,
            ) from exc
        except openai.APIConnectionError as exc:
            raise ProviderError(
                f"cannot reach OpenAI for {what} at {self.client.base_url}: {exc.__class__.__name__}",
                retryable=True,
                hint="check the network or OPENAI_BASE_URL",
            ) from exc
        except transport_errors() as exc:  # the connection broke mid-body (the SDK retries only before it)
            raise ProviderError(
                f"connection to OpenAI broke during {what}: {exc.__class__.__name__}", retryable=True
            ) from exc


class OpenAIFiles:
    """Batch input files: one upload per shard, named after it so a lost answer can be found."""

    def __init__(self, adapter: OpenAIBatchProvider) -> None:
        self.adapter = adapter

    def upload(self, shard: ShardInput, labels: dict[str, str]) -> str:
        adapter = self.adapter
        with open(shard.path, "rb") as fh:
            created = adapter._call(
                "upload",
                lambda: adapter.client.files.create(
                    file=(f"{shard.shard_id}.jsonl", fh, "application/jsonl"), purpose="batch"
                ),
            )
        return str(created.id)

    def find(self, labels: dict[str, str], since: datetime, n_bytes: int) -> list[str]:
        wanted = f"{labels['llmbulk_shard']}.jsonl"  # the name `upload` gives the shard's file
        cutoff = since.timestamp() - 60
        found: list[str] = []
        with self.adapter._mapped("list files"):
            for file in self.adapter.client.files.list(purpose="batch", order="desc", limit=100):
                if file.created_at < cutoff:
                    break
                if file.filename == wanted and file.bytes == n_bytes:
                    found.append(file.id)
        return found

    def delete(self, file_id: str) -> None:
        self.adapter._call("delete file", lambda: self.adapter.client.files.delete(file_id))


def batch_status(batch: Any) -> BatchStatus:
    """An SDK `Batch` → a normalized status (pure; an unknown status is an error, never a guess)."""
    raw = batch.model_dump(mode="json")
    state = STATES.get(batch.status)
    if state is None:
        raise ProviderError(f"OpenAI batch {batch.id} has unknown status {batch.status!r}", hint="upgrade llmbulk")
    refs = {k: v for k, v in (("output_file_id", batch.output_file_id), ("error_file_id", batch.error_file_id)) if v}
    counts = batch.request_counts
    if state is BatchState.ENDED and not refs and counts is not None and counts.total > 0:
        state = BatchState.FINALIZING  # files not visible yet: keep polling
    errors = (batch.errors.data or []) if batch.errors else []
    error = "; ".join(f"{e.code}: {e.message}" + (f" (line {e.line})" if e.line else "") for e in errors[:3]) or None
    ended = batch.completed_at or batch.failed_at or batch.expired_at or batch.cancelled_at
    return BatchStatus(
        batch_id=batch.id,
        state=state,
        raw_status=batch.status,
        total=counts.total if counts else None,
        completed=counts.completed + counts.failed if counts else None,
        failed=counts.failed if counts else None,
        result_refs=refs,
        error=error,
        error_code=errors[0].code if errors else None,
        ended_at=float(ended) if ended else None,
        raw=raw,
    )


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(getattr(exc, "message", exc)).splitlines()[0]


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
