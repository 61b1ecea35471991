"""Anthropic Message Batches through the official `anthropic` SDK (imported lazily).

Requests travel in the create body (no upload); create runs with SDK retries off. Per-item
counts are hidden until a batch ends, so progress is "unknown" rather than a wrong 0%. Results
are streamed from the batch's absolute `results_url` and joined on `custom_id` only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import orjson

from llmbulk.errors import ConfigError, InputError, ProviderError, QuotaError
from llmbulk.models import CUSTOM_ID_RE, BatchRef, BatchState, BatchStatus, ItemOutcome, Limits, Outcome, Task
from llmbulk.providers.base import ProviderSettings, ShardInput

LIMITS = Limits(max_items=100_000, max_bytes=256 * 1024 * 1024, counts_live=False)
DEFAULT_MAX_TOKENS = 1024
STATES: dict[str, BatchState] = {
    "in_progress": BatchState.RUNNING,
    "canceling": BatchState.CANCELLING,
    "ended": BatchState.ENDED,
}
PERMANENT_ERRORS = frozenset(
    {
        "invalid_request_error",
        "authentication_error",
        "permission_error",
        "not_found_error",
        "request_too_large",
        "billing_error",
    }
)
_PARAM_NAMES = {"temperature": "temperature", "top_p": "top_p", "stop": "stop_sequences", "top_k": "top_k"}


class AnthropicBatchProvider:
    """Anthropic Message Batches adapter."""

    name = "anthropic"
    limits = LIMITS

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        self._client: Any = None

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
        if not CUSTOM_ID_RE.match(custom_id):
            raise InputError(f"custom_id {custom_id!r} is not valid for Anthropic (^[a-zA-Z0-9_-]{{1,64}}$)")
        system_parts = [task.system] if task.system else []
        messages = []
        for message in task.messages:
            if message.get("role") == "system":
                system_parts.append(str(message.get("content")))
            else:
                messages.append({"role": message["role"], "content": message["content"]})
        params: dict[str, Any] = {"model": self.settings.model, "max_tokens": DEFAULT_MAX_TOKENS, "messages": messages}
        for name, value in task.params.items():
            if name == "max_tokens":
                if int(value) < 1:
                    raise InputError(f"item {task.key!r}: max_tokens must be at least 1 for Anthropic")
                params["max_tokens"] = int(value)
            elif name != "seed":  # Anthropic has no seed parameter
                key = _PARAM_NAMES.get(name, name)
                params[key] = [value] if key == "stop_sequences" and isinstance(value, str) else value
        if system_parts:
            params["system"] = "\n\n".join(system_parts)
        return orjson.dumps({"custom_id": custom_id, "params": params})

    def decode(self, line: bytes) -> ItemOutcome:
        data = orjson.loads(line)
        custom_id = data["custom_id"]
        result = data["result"]
        kind = result["type"]
        if kind == "succeeded":
            message = result["message"]
            usage = message.get("usage") or {}
            texts, tool_inputs = [], []
            for block in message.get("content") or []:
                if block.get("type") == "text":
                    texts.append(block.get("text", ""))
                elif block.get("type") == "tool_use":
                    tool_inputs.append(block.get("input"))
            output = orjson.dumps(tool_inputs[0]).decode() if tool_inputs else "".join(texts)
            return ItemOutcome(
                custom_id,
                Outcome.SUCCEEDED,
                output=output,
                finish_reason=message.get("stop_reason"),
                input_tokens=(usage.get("input_tokens") or 0) + (usage.get("cache_read_input_tokens") or 0),
                output_tokens=usage.get("output_tokens"),
                cached_tokens=usage.get("cache_read_input_tokens"),
            )
        if kind == "errored":
            inner = (result.get("error") or {}).get("error") or {}
            error_type = inner.get("type") or "api_error"
            permanent = error_type in PERMANENT_ERRORS
            return ItemOutcome(
                custom_id,
                Outcome.PERMANENT if permanent else Outcome.RETRYABLE,
                error_type=error_type,
                error_code=error_type,
                error_message=inner.get("message"),
            )
        if kind in ("canceled", "expired"):
            message = "the batch was cancelled first" if kind == "canceled" else "the batch expired first"
            return ItemOutcome(custom_id, Outcome.RETRYABLE, error_type=kind, error_code=kind, error_message=message)
        raise ValueError(f"unknown result type {kind!r}")

    # ---- calls -------------------------------------------------------------------------------

    def upload(self, shard: ShardInput, labels: dict[str, str]) -> str | None:
        return None  # requests travel in the create body

    def create(self, shard: ShardInput, input_file_id: str | None, labels: dict[str, str]) -> BatchRef:
        with open(shard.path, "rb") as fh:
            requests = [orjson.loads(line) for line in fh if line.strip()]
        batch = self._call(
            "create batch", lambda: self.client.with_options(max_retries=0).messages.batches.create(requests=requests)
        )
        return BatchRef(provider=self.name, batch_id=batch.id, created_at=batch.created_at.timestamp())

    def poll(self, batch_ids: list[str]) -> list[BatchStatus]:
        return [
            self.status(self._call("poll", lambda b=b: self.client.messages.batches.retrieve(b))) for b in batch_ids
        ]

    def status(self, batch: Any) -> BatchStatus:
        """A MessageBatch, normalized."""
        state = STATES.get(batch.processing_status)
        if state is None:
            raise ProviderError(
                f"Anthropic batch {batch.id} has unknown status {batch.processing_status!r}", hint="upgrade llmbulk"
            )
        if state is BatchState.ENDED and batch.cancel_initiated_at is not None:
            state = BatchState.CANCELLED
        counts = batch.request_counts
        total = counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired
        ended = state in (BatchState.ENDED, BatchState.CANCELLED)
        return BatchStatus(
            batch_id=batch.id,
            state=state,
            raw_status=batch.processing_status,
            total=total,
            completed=total - counts.processing if ended else None,
            failed=counts.errored + counts.canceled + counts.expired if ended else None,
            counts_known=ended,
            result_refs={"results_url": batch.results_url} if batch.results_url else {},
            ended_at=batch.ended_at.timestamp() if batch.ended_at else None,
            raw=batch.model_dump(mode="json"),
        )

    def results(self, status: BatchStatus) -> Iterator[bytes]:
        with (
            self._mapped("download results"),
            self.client.messages.batches.with_streaming_response.results(status.batch_id) as response,
        ):
            pending = b""
            for chunk in response.iter_bytes(1 << 20):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                yield from (line for line in lines if line.strip())
            if pending.strip():
                yield pending

    def cancel(self, batch_id: str) -> None:
        self._call("cancel", lambda: self.client.messages.batches.cancel(batch_id))

    def find(self, labels: dict[str, str], since: datetime, n_items: int) -> list[BatchRef]:
        """Batches carry no labels: match those created after the intent with the shard's request count."""
        cutoff = since.timestamp() - 60
        found: list[BatchRef] = []
        for batch in self._call("list batches", lambda: self.client.messages.batches.list(limit=100)):
            created = batch.created_at.timestamp()
            if created < cutoff:
                break
            counts = batch.request_counts
            total = counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired
            if total == n_items:
                found.append(BatchRef(provider=self.name, batch_id=batch.id, created_at=created))
        return found

    def delete_file(self, file_id: str) -> None:
        return None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # ---- errors --------------------------------------------------------------------------------

    def _call(self, what: str, fn: Any) -> Any:
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
            raise QuotaError(f"Anthropic rate limit during {what}: {_message(exc)}") from exc
        except anthropic.APIStatusError as exc:
            hint = "lower --max-bytes-per-batch" if exc.status_code == 413 else None
            raise ProviderError(
                f"Anthropic {what} failed: HTTP {exc.status_code}: {_message(exc)}",
                retryable=exc.status_code >= 500 or exc.status_code in (408, 409),
                hint=hint,
            ) from exc
        except anthropic.APIConnectionError as exc:
            raise ProviderError(
                f"cannot reach Anthropic for {what}: {exc.__class__.__name__}",
                retryable=True,
                hint="check the network or ANTHROPIC_BASE_URL",
            ) from exc


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return exc.__class__.__name__
