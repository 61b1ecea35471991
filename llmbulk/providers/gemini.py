"""Gemini Batch Mode (Developer API) through the official `google-genai` SDK (imported lazily).

File mode (default): upload the keyed JSONL shard → create (retries off, `display_name` labels job and
shard) → poll through our own state table (the SDK's `done` misses PARTIALLY_SUCCEEDED) → download the
result file by name. Inline mode sends the shard's requests in the create body (< 20 MB) and joins
results on `metadata.key`, never by position.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import orjson

from llmbulk import providers
from llmbulk.errors import ConfigError, InputError, ProviderError, QuotaError, UsageError
from llmbulk.models import BatchRef, BatchState, BatchStatus, ItemOutcome, Limits, Outcome, Task
from llmbulk.providers.base import ProviderSettings, ShardInput, model_params, same_params, transport_errors

log = logging.getLogger(__name__)

# Gemini documents no request-count cap for batch jobs, only sizes (2 GB file, 20 MB inline).
ENDPOINT = "generateContent"
LIMITS = Limits(
    max_items=10_000_000, max_bytes=2_000_000_000, counts_live=False, counts_available=False,
    endpoints=(ENDPOINT,), input_modes=("file", "inline"),
)  # fmt: skip
INLINE_MAX_BYTES = 20_000_000
KEY_HINT = "set GOOGLE_API_KEY or GEMINI_API_KEY (GOOGLE_API_KEY wins when both are set)"
RETRY_ATTEMPTS = 5  # idempotent calls only; create always goes out once
FINALIZE_GRACE_SECONDS = 1800.0  # SUCCEEDED without a visible output for this long is reported as FAILED
FIND_SKEW_SECONDS = 60.0
LIST_PAGE_SIZE = 100
JSONL_MIME = "application/jsonl"  # explicit: Python's mimetypes does not know .jsonl

# PENDING/QUEUED mean "accepted, not started": the same VALIDATING state llmbulk records right
# after create. PAUSED/UPDATING are Vertex states of a job that resumes, so they count as RUNNING.
_JOB_STATES: dict[str, BatchState] = {
    "QUEUED": BatchState.VALIDATING,
    "PENDING": BatchState.VALIDATING,
    "RUNNING": BatchState.RUNNING,
    "PAUSED": BatchState.RUNNING,
    "UPDATING": BatchState.RUNNING,
    "SUCCEEDED": BatchState.ENDED,
    "PARTIALLY_SUCCEEDED": BatchState.ENDED,
    "FAILED": BatchState.FAILED,
    "CANCELLING": BatchState.CANCELLING,
    "CANCELLED": BatchState.CANCELLED,
    "EXPIRED": BatchState.EXPIRED,
}
# SDK `JobState` values, and the wire's `BATCH_STATE_*` (the SDK renames six of them and passes
# the others through verbatim, with a UserWarning).
STATES: dict[str, BatchState] = {
    f"{prefix}_STATE_{name}": state for prefix in ("JOB", "BATCH") for name, state in _JOB_STATES.items()
}
UNSPECIFIED_STATES = frozenset({"JOB_STATE_UNSPECIFIED", "BATCH_STATE_UNSPECIFIED"})
RESULT_STATES = frozenset({BatchState.ENDED, BatchState.EXPIRED, BatchState.CANCELLED})

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
RETRYABLE_CALL_STATUSES = frozenset({"UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED", "ABORTED"})


class GeminiBatchProvider:
    """Gemini Developer API Batch Mode adapter."""

    name = "gemini"
    limits = LIMITS

    def __init__(
        self,
        settings: ProviderSettings,
        *,
        http_client: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if settings.endpoint not in (None, ENDPOINT):
            raise ConfigError(
                f"endpoint {settings.endpoint!r} is not supported by Gemini batches", hint=f"omit it or use {ENDPOINT}"
            )
        self.settings = settings
        if settings.inline:
            self.limits = LIMITS.narrowed(None, INLINE_MAX_BYTES)
        self._http_client = http_client  # an `httpx2.Client` (tests, emulator); the SDK owns one otherwise
        self._clock = clock
        self._client: Any = None
        self._configs = _ConfigCache()
        self.files: GeminiFiles | None = None if settings.inline else GeminiFiles(self)

    @property
    def client(self) -> Any:
        """The one `genai.Client` of this adapter (a temporary client fails once it is closed)."""
        if self._client is None:
            from google import genai
            from google.genai import types

            # The SDK itself reads GOOGLE_GENAI_API_VERSION ("beta" → v1beta) and GOOGLE_GEMINI_BASE_URL.
            options = types.HttpOptions(
                timeout=int(self.settings.timeout * 1000),  # milliseconds
                retry_options=types.HttpRetryOptions(attempts=RETRY_ATTEMPTS),
            )
            if self.settings.base_url:
                options.base_url = self.settings.base_url
            if self._http_client is not None:
                options.httpx_client = self._http_client
            try:
                self._client = genai.Client(vertexai=False, api_key=self.settings.api_key or None, http_options=options)
            except ValueError as exc:
                if "api key" in str(exc).lower():
                    raise ConfigError("no Gemini API key found", hint=KEY_HINT) from exc
                raise ConfigError(f"cannot set up the Gemini client: {self._scrub(str(exc))}") from exc
        return self._client

    # ---- pure line codecs --------------------------------------------------------------------

    def encode(self, task: Task, custom_id: str) -> bytes:
        """One keyed JSONL line: `{"key", "request": GenerateContentRequest (REST camelCase)}`."""
        return orjson.dumps({"key": custom_id, "request": _request(task, self._configs)})

    def decode(self, line: bytes) -> ItemOutcome:
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

    # ---- calls -------------------------------------------------------------------------------

    def create(self, shard: ShardInput, input_file_id: str | None, labels: dict[str, str]) -> BatchRef:
        """Create the batch job once (the per-call retry override turns the SDK's retries off)."""
        if self.settings.inline:
            _check_inline_size(shard)
            src: Any = self._inline_requests(shard)
        elif input_file_id:
            src = input_file_id
        else:
            raise ProviderError(f"shard {shard.shard_id} has no uploaded file to create a Gemini batch from")
        config = {"display_name": _display_name(labels), "http_options": {"retry_options": {"attempts": 1}}}
        job = self._call(
            "create batch", lambda: self.client.batches.create(model=self.settings.model, src=src, config=config)
        )
        if not job.name:
            # The call succeeded but the job has no name: it may exist, so let reconciliation look.
            raise ProviderError("Gemini created a batch but returned no name", retryable=True)
        created = job.create_time.timestamp() if job.create_time else self._clock()
        return BatchRef(provider=self.name, batch_id=job.name, input_file_id=input_file_id, created_at=created)

    def poll(self, batch_ids: list[str]) -> list[BatchStatus]:
        """Current status of each batch, in the same order."""
        get = self.client.batches.get
        return [self._status(self._call("poll", functools.partial(get, name=b)), b) for b in batch_ids]

    def results(self, status: BatchStatus) -> Iterator[bytes]:
        """Stream every result line: the result file by name, or the job's inlined responses."""
        file_name = status.result_refs.get("file_name")
        if file_name:
            yield from self._download_lines(file_name)
        elif status.result_refs.get("inline"):
            job = self._call("fetch inline results", lambda: self.client.batches.get(name=status.batch_id))
            yield from _inline_lines(job)

    def cancel(self, batch_id: str) -> None:
        """Ask Gemini to cancel a batch job."""
        self._call("cancel", lambda: self.client.batches.cancel(name=batch_id))

    def find(self, labels: dict[str, str], since: datetime, n_items: int) -> list[BatchRef]:
        """Batch jobs named for these labels created after `since`, newest first."""
        wanted = _display_name(labels)
        cutoff = since.timestamp() - FIND_SKEW_SECONDS
        found: list[BatchRef] = []
        with self._mapped("list batches"):
            # Assumes the listing is newest first, as the OpenAI and Anthropic listings are.
            for job in self.client.batches.list(config={"page_size": LIST_PAGE_SIZE}):
                created = job.create_time.timestamp() if job.create_time else None
                if created is not None and created < cutoff:
                    break
                if job.display_name == wanted and job.name:
                    found.append(BatchRef(provider=self.name, batch_id=job.name, created_at=created))
        # Callers adopt found[-1] as the oldest match, whatever order the listing used.
        return sorted(found, key=lambda ref: ref.created_at or 0.0, reverse=True)

    def close(self) -> None:
        """Close the SDK client."""
        if self._client is not None:
            self._client.close()
            self._client = None

    # ---- helpers -----------------------------------------------------------------------------

    def _inline_requests(self, shard: ShardInput) -> list[Any]:
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

    def _download_lines(self, file_name: str) -> Iterator[bytes]:
        # Stream to a temporary file (never the whole result in memory), then hand out lines.
        with tempfile.TemporaryFile(prefix="llmbulk-gemini-") as tmp:
            self._call("download results", lambda: self.client.files.download(file=file_name, destination=tmp))
            tmp.seek(0)
            for line in tmp:
                if line.strip():
                    yield line.rstrip(b"\r\n")

    def _status(self, job: Any, batch_id: str | None = None) -> BatchStatus:
        status = batch_status(job, self._clock(), batch_id)
        if status.state is BatchState.FAILED and status.error_code is None:
            error, error_code = self._failure_reason(status.batch_id)
            status = status.model_copy(update={"error": error, "error_code": error_code})
        return status

    def _failure_reason(self, name: str) -> tuple[str, str | None]:
        """Why a job FAILED: the SDK drops the operation's `error`, so read the raw operation once."""
        fallback = (
            "Gemini reports the batch FAILED without a reason (the SDK does not expose it); "
            "check the input file and model name"
        )
        try:
            response = self.client._api_client.request("get", name, {})
            error = (orjson.loads(response.body or b"{}") or {}).get("error") or {}
        except Exception as exc:  # best effort: the poll itself already succeeded
            log.debug("could not read the failure reason of %s: %s", name, exc.__class__.__name__)
            return fallback, None
        if not isinstance(error, dict) or not (error.get("message") or error.get("status") or error.get("code")):
            return fallback, None
        status = _status_name(error.get("status"), error.get("code"))
        message = self._scrub(str(error.get("message") or "no message"))
        return f"Gemini failed the batch: {status or error.get('code')}: {message}", status

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        with self._mapped(what):
            return fn()

    @contextmanager
    def _mapped(self, what: str) -> Iterator[None]:
        """SDK exceptions → llmbulk errors (messages never carry the key)."""
        from google.genai import errors

        try:
            yield
        except errors.APIError as exc:
            raise self._api_error(what, exc) from exc
        except transport_errors() as exc:
            raise ProviderError(
                f"cannot reach Gemini for {what}{self._where()}: {exc.__class__.__name__}",
                retryable=True,
                hint="check the network or GOOGLE_GEMINI_BASE_URL",
            ) from exc

    def _api_error(self, what: str, exc: Any) -> ProviderError | ConfigError:
        code = int(exc.code or 0)
        status = str(exc.status or HTTP_STATUSES.get(code, "") or "")
        message = self._scrub(str(exc.message or str(exc).splitlines()[0]))
        if code in (401, 403) or status in ("UNAUTHENTICATED", "PERMISSION_DENIED") or "API_KEY_INVALID" in str(exc):
            return ConfigError(
                f"Gemini refused {what} (HTTP {code} {status}): {message}",
                hint=f"{KEY_HINT}, and check the key may use model {self.settings.model}",
            )
        if code == 429 or status == "RESOURCE_EXHAUSTED":
            return QuotaError(f"Gemini quota exhausted during {what}: {message}")
        return ProviderError(
            f"Gemini {what} failed: HTTP {code} {status}: {message}",
            retryable=code >= 500 or code == 408 or status in RETRYABLE_CALL_STATUSES,
            status=code,
        )

    def _where(self) -> str:
        return f" at {self.settings.base_url}" if self.settings.base_url else ""

    def _scrub(self, text: str) -> str:
        """Remove any API key value from a message before it reaches users or logs."""
        for key in (self.settings.api_key, *(os.environ.get(name) for name in providers.info(self.name).key_env)):
            if key and key.strip():
                text = text.replace(key.strip(), "***")
        return text


class GeminiFiles:
    """Batch input files through the Files API, named after their shard so a lost answer can be found."""

    def __init__(self, adapter: GeminiBatchProvider) -> None:
        self.adapter = adapter

    def upload(self, shard: ShardInput, labels: dict[str, str]) -> str:
        adapter = self.adapter
        config: dict[str, Any] = {"mime_type": JSONL_MIME, "display_name": _display_name(labels)}
        if adapter.settings.base_url:
            # The SDK sends the bytes to the server's x-goog-upload-url verbatim unless told to keep
            # the configured host (a proxy or the emulator).
            config["http_options"] = {"base_url": adapter.settings.base_url}
        with adapter._mapped("upload"):
            try:
                uploaded = adapter.client.files.upload(file=str(shard.path), config=config)
            except (KeyError, ValueError) as exc:  # the SDK's own resumable-upload protocol failures
                raise ProviderError(
                    f"Gemini upload of shard {shard.shard_id} did not complete: {adapter._scrub(str(exc))}",
                    retryable=True,
                ) from exc
        if not uploaded.name:
            raise ProviderError("Gemini upload returned no file name", retryable=True)
        return str(uploaded.name)

    def find(self, labels: dict[str, str], since: datetime, n_bytes: int) -> list[str]:
        """Uploaded files carrying this shard's display name and size, newest first."""
        wanted = _display_name(labels)
        cutoff = since.timestamp() - FIND_SKEW_SECONDS
        found: list[tuple[float, str]] = []
        with self.adapter._mapped("list files"):
            for file in self.adapter.client.files.list(config={"page_size": LIST_PAGE_SIZE}):
                created = file.create_time.timestamp() if file.create_time else 0.0
                if file.display_name == wanted and file.size_bytes == n_bytes and created >= cutoff and file.name:
                    found.append((created, file.name))
        return [name for _, name in sorted(found, reverse=True)]

    def delete(self, file_id: str) -> None:
        self.adapter._call("delete file", lambda: self.adapter.client.files.delete(name=file_id))


def batch_status(job: Any, now: float, batch_id: str | None = None) -> BatchStatus:
    """An SDK `BatchJob` → a normalized status (pure; an unknown state is an error, never a guess).

    A FAILED job's reason is not in the SDK's object (the adapter reads it from the raw operation).
    `now` decides whether a SUCCEEDED job without a visible output is still finalizing.
    """
    name = job.name or batch_id or "?"
    raw_status = _state_value(job.state)
    if raw_status is None or raw_status in UNSPECIFIED_STATES:
        raise ProviderError(f"Gemini reports no state for batch {name} ({raw_status})", retryable=True)
    state = STATES.get(raw_status)
    if state is None:
        raise ProviderError(f"Gemini batch {name} has unknown state {raw_status!r}", hint="upgrade llmbulk")
    dest = job.dest
    refs: dict[str, str] = {}
    if dest is not None and dest.file_name:
        refs["file_name"] = dest.file_name
    elif dest is not None and dest.inlined_responses is not None:
        refs["inline"] = "1"
    ended = job.end_time or job.update_time
    ended_at = ended.timestamp() if ended else None
    error = error_code = None
    if state is BatchState.ENDED and not refs:
        if ended_at is None or now - ended_at < FINALIZE_GRACE_SECONDS:
            state = BatchState.FINALIZING  # output not visible yet: keep polling
        else:
            state = BatchState.FAILED
            error_code = "no_output"
            error = (
                f"Gemini reports the batch {raw_status} but no output appeared within "
                f"{FINALIZE_GRACE_SECONDS / 60:.0f} minutes"
            )
    raw = job.model_dump(
        mode="json",
        exclude_none=True,
        exclude={"dest": {"inlined_responses", "inlined_embed_content_responses"}},
    )
    return BatchStatus(
        batch_id=name,
        state=state,
        raw_status=raw_status,
        counts_known=False,  # the SDK drops metadata.batchStats
        result_refs=refs,
        error=error,
        error_code=error_code,
        ended_at=ended_at if state.terminal else None,
        raw=raw,
    )


def _display_name(labels: dict[str, str]) -> str:
    """The batch (and file) display name: unique per job and shard, used to find orphans."""
    return f"llmbulk-{labels['llmbulk_job']}-{labels['llmbulk_shard']}"


def _check_inline_size(shard: ShardInput) -> None:
    if shard.n_bytes > INLINE_MAX_BYTES:
        raise UsageError(
            f"shard {shard.shard_id} is {shard.n_bytes:,} bytes; Gemini inline batches must stay under "
            f"{INLINE_MAX_BYTES:,} bytes",
            hint="use file mode (the default) or lower --max-bytes-per-batch",
        )


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI-style parts: keep the text ones
        return "".join(p if isinstance(p, str) else str(p.get("text") or "") for p in content)
    return str(content)


class _ConfigCache:
    """The last task params seen and the `generationConfig` made of them (a job's tasks share theirs)."""

    __slots__ = ("config", "schema", "seen")

    def __init__(self) -> None:
        self.seen: tuple[tuple[str, Any], ...] | None = None
        self.schema: Any = None
        self.config: dict[str, Any] = {}


def _request(task: Task, configs: _ConfigCache | None = None) -> dict[str, Any]:
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
        contents.append({"role": gemini_role, "parts": [{"text": content if type(content) is str else _text(content)}]})
    request: dict[str, Any] = {"contents": contents}
    if system:
        request["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
    params = task.params
    seen = configs.seen if configs is not None else None
    if (
        seen is not None
        and task.output_schema is configs.schema  # type: ignore[union-attr]
        and ((not params and not seen) or same_params(params, seen))
    ):
        config = configs.config  # type: ignore[union-attr]
    else:
        config = _generation_config(model_params(task, {}), task.output_schema)
        if configs is not None:
            configs.seen, configs.config, configs.schema = tuple(params.items()), config, task.output_schema
    if config:
        request["generationConfig"] = config
    return request


def _generation_config(params: dict[str, Any], schema: dict[str, Any] | None = None) -> dict[str, Any]:
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


def _status_name(status: Any, code: Any) -> str | None:
    if status:
        return str(status)
    if isinstance(code, int):
        return GRPC_STATUSES.get(code) or HTTP_STATUSES.get(code) or ("INTERNAL" if code >= 500 else None)
    return None


def _decode_error(custom_id: str, error: dict[str, Any]) -> ItemOutcome:
    code = error.get("code")
    status = _status_name(error.get("status"), code)
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


def _state_value(state: Any) -> str | None:
    if state is None:
        return None
    return str(getattr(state, "value", state))


def _inline_lines(job: Any) -> Iterator[bytes]:
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
