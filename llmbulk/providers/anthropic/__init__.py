"""Anthropic Message Batches through the official `anthropic` SDK (imported lazily).

No upload: the shard's lines travel in the create body, sent with SDK retries off. Item counts
stay hidden until a batch ends, so progress is reported as unknown rather than a wrong 0%.
Results stream from the batch's absolute `results_url` and are joined on `custom_id` only.

This module owns the adapter: the SDK client, its calls and the mapping of SDK errors. Beside it:
`lines` (the line codec, the schema as sent, the create body) and `status` (batches → `BatchStatus`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from llmbulk.errors import ConfigError, ProviderError, QuotaError
from llmbulk.models import BatchRef, BatchStatus, ItemOutcome, Limits, Task
from llmbulk.providers.anthropic.lines import (
    DEFAULT_MAX_TOKENS,
    DROPPED_PARAMS,
    MESSAGE_ROLES,
    PERMANENT_ERROR_TYPES,
    RENAMED_PARAMS,
    RESERVED_PARAMS,
    RequestEncoder,
    decode_line,
    references_files,
    sent_schema,
    write_create_body,
)
from llmbulk.providers.anthropic.status import STATES, batch_status, match_batches, seconds
from llmbulk.providers.base import (
    MediaFiles,
    ProviderSettings,
    RemoteBatch,
    RemoteFile,
    ShardInput,
    listed,
    running,
    split_lines,
    transport_errors,
    whole_line_blocks,
)
from llmbulk.providers.media_files import ANTHROPIC_FILES_BETA, AnthropicMediaFiles

__all__ = [  # the adapter, and what its parts make public (the registry and tests import them from here)
    "DEFAULT_MAX_TOKENS",
    "DROPPED_PARAMS",
    "LIMITS",
    "MESSAGE_ROLES",
    "PERMANENT_ERROR_TYPES",
    "RENAMED_PARAMS",
    "RESERVED_PARAMS",
    "STATES",
    "AnthropicBatchProvider",
    "batch_status",
    "match_batches",
    "sent_schema",
    "split_lines",
    "write_create_body",
]

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

LIST_PAGE_SIZE = 100
CLOCK_SKEW_SECONDS = 60.0
DOWNLOAD_CHUNK = 1 << 20
RETRYABLE_HTTP = frozenset({408, 409})  # plus every 5xx (529 overloaded included); 429 is a QuotaError
ERROR_TEXT_LIMIT = 300


class AnthropicBatchProvider:
    """Anthropic Message Batches adapter."""

    name = "anthropic"
    limits = LIMITS
    files = None  # no input files: the requests travel in the create body

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        self._client: Any = None
        self._encoder = RequestEncoder()
        self.media_files: MediaFiles | None = AnthropicMediaFiles(self)
        self._results_urls: dict[str, str] = {}  # batch id → results_url, as this adapter's polls read it

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
        return self._encoder.encode(task, custom_id, self.settings.model)

    def decode(self, line: bytes) -> ItemOutcome:
        """One results line (`succeeded`, `errored`, `canceled` or `expired`) to an outcome."""
        return decode_line(line)

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
                # Requests referencing Files API uploads go through the beta, as `beta.messages.batches.create`
                # sends them (`?beta=true` and the files beta header).
                options: Any = (
                    {"headers": {"anthropic-beta": ANTHROPIC_FILES_BETA}, "params": {"beta": "true"}}
                    if references_files(shard.path)
                    else {}
                )
                batch = self._call(
                    "create batch",
                    lambda: client.post("/v1/messages/batches", content=body, cast_to=MessageBatch, options=options),
                )
        finally:
            body_path.unlink(missing_ok=True)
        return BatchRef(provider=self.name, batch_id=batch.id, created_at=seconds(batch.created_at))

    def poll(self, batch_ids: list[str]) -> list[BatchStatus]:
        """Many batches are read from the batch listing (whole `MessageBatch` objects, newest first), a
        few, and any the listing did not reach, by retrieve."""
        with self._mapped("poll (list)"):
            found = listed(self._pages, lambda batch: str(batch.id), batch_ids)
        retrieve = self.client.messages.batches.retrieve
        for batch_id in batch_ids:
            if batch_id not in found:
                found[batch_id] = self._call("poll", functools.partial(retrieve, batch_id))
        statuses = [batch_status(found[b]) for b in batch_ids]
        for status in statuses:
            if status.result_refs.get("results_url"):
                self._results_urls[status.batch_id] = status.result_refs["results_url"]
        return statuses

    def results(self, status: BatchStatus) -> Iterator[bytes]:
        """Stream the results JSONL of an ended batch, one raw line at a time."""
        return split_lines(self.result_blocks(status))

    def result_blocks(self, status: BatchStatus) -> Iterator[bytes]:
        """The results JSONL of an ended batch in blocks of whole lines.

        From the `results_url` this adapter's own poll read: the SDK's `results()` would retrieve the
        batch again first, one more call per batch. A status recorded by another process is not
        trusted for the URL (an emulator's port, for one, changes between runs): `results()` then.
        """
        url = self._results_urls.get(status.batch_id)
        if not url:
            with (
                self._mapped("download results"),
                self.client.messages.batches.with_streaming_response.results(status.batch_id) as streamed,
            ):
                yield from whole_line_blocks(streamed.iter_bytes(DOWNLOAD_CHUNK))
            return
        with self._mapped("download results"):
            # An absolute URL is used as is, with the client's key and version headers (as the SDK's own
            # `results()` sends it); `Accept: application/binary` as the SDK sends.
            response = self.client.get(
                url, cast_to=_raw_response(), stream=True, options={"headers": {"Accept": "application/binary"}}
            )
            try:
                yield from whole_line_blocks(response.iter_bytes(DOWNLOAD_CHUNK))
            finally:
                response.close()

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

    def inventory(self) -> tuple[list[RemoteBatch], list[RemoteFile]]:
        """Every listed batch (Anthropic batches carry no labels; its batches use no files)."""
        with self._mapped("list batches"):
            everything = self.client.messages.batches.list(limit=LIST_PAGE_SIZE)  # the SDK pages on
            batches = [
                RemoteBatch(batch.id, live=running(batch_status(batch).state), created_at=seconds(batch.created_at))
                for batch in everything
            ]
        return batches, []

    def _pages(self, size: int) -> Iterator[list[Any]]:
        """The batch listing, newest first, one page (one call) at a time (`after_id` = the page's last id)."""
        for page in self.client.messages.batches.list(limit=size).iter_pages():
            yield page.data

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


def _raw_response() -> type:
    """`Response` of the SDK's own HTTP library (httpx2 for anthropic 2.x): as `cast_to`, the body is
    left unread, to stream."""
    import sys

    import anthropic

    client_class = anthropic.DefaultHttpxClient.__mro__[1]  # the library's Client, which the SDK's extends
    return sys.modules[client_class.__module__.partition(".")[0]].Response  # type: ignore[no-any-return]


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
