"""Gemini Batch Mode (Developer API) through the official `google-genai` SDK (imported lazily).

File mode (default): upload the keyed JSONL shard → create (retries off, `display_name` labels job and
shard) → poll through our own state table (the SDK's `done` misses PARTIALLY_SUCCEEDED) → download the
result file by name. Inline mode sends the shard's requests in the create body (< 20 MB) and joins
results on `metadata.key`, never by position.

This module owns the adapter: the SDK client, its calls and the mapping of SDK errors. Beside it:
`lines` (the pure line codec), `status` (job states → `BatchStatus`), `inline` (inline mode) and
`files` (input files and display names).
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
from llmbulk.errors import ConfigError, ProviderError
from llmbulk.models import BatchRef, BatchState, BatchStatus, ItemOutcome, Limits, Task
from llmbulk.providers.base import (
    MediaFiles,
    ProviderSettings,
    RemoteBatch,
    RemoteFile,
    ShardInput,
    job_of,
    listed,
    running,
    split_lines,
    transport_errors,
    whole_line_blocks,
)
from llmbulk.providers.gemini.errors import (
    KEY_HINT,
    NO_REASON,
    api_error,
    failure_reason,
    scrub,
)
from llmbulk.providers.gemini.files import (
    FIND_SKEW_SECONDS,
    LIST_PAGE_SIZE,
    GeminiFiles,
    display_name,
    labelled_shard,
)
from llmbulk.providers.gemini.inline import INLINE_MAX_BYTES, check_inline_size, inline_lines, inline_requests
from llmbulk.providers.gemini.lines import (
    ConfigCache,
    decode_line,
    encode_line,
)
from llmbulk.providers.gemini.status import (
    STATES,
    UNSPECIFIED_STATES,
    batch_status,
    listing_complete,
)
from llmbulk.providers.media_files import GeminiMediaFiles

__all__ = [  # the adapter, and what tests import from here of its parts
    "INLINE_MAX_BYTES",
    "LIMITS",
    "STATES",
    "UNSPECIFIED_STATES",
    "GeminiBatchProvider",
    "batch_status",
]

log = logging.getLogger(__name__)

# Gemini documents no request-count cap for batch jobs, only sizes (2 GB file, 20 MB inline).
ENDPOINT = "generateContent"
DOWNLOAD_BLOCK = 1 << 20  # bytes of a downloaded result file handed on at a time
LIMITS = Limits(
    max_items=10_000_000, max_bytes=2_000_000_000, counts_live=False, counts_available=False,
    endpoints=(ENDPOINT,), input_modes=("file", "inline"),
)  # fmt: skip
RETRY_ATTEMPTS = 5  # idempotent calls only; create always goes out once


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
        self._configs = ConfigCache()
        self.files: GeminiFiles | None = None if settings.inline else GeminiFiles(self)
        self.media_files: MediaFiles | None = GeminiMediaFiles(self)

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
        return encode_line(task, custom_id, self._configs)

    def decode(self, line: bytes) -> ItemOutcome:
        """One result line (`response` or google.rpc.Status `error`) to an outcome."""
        return decode_line(line)

    # ---- calls -------------------------------------------------------------------------------

    def create(self, shard: ShardInput, input_file_id: str | None, labels: dict[str, str]) -> BatchRef:
        """Create the batch job once (the per-call retry override turns the SDK's retries off)."""
        if self.settings.inline:
            check_inline_size(shard)
            src: Any = inline_requests(shard)
        elif input_file_id:
            src = input_file_id
        else:
            raise ProviderError(f"shard {shard.shard_id} has no uploaded file to create a Gemini batch from")
        config = {"display_name": display_name(labels), "http_options": {"retry_options": {"attempts": 1}}}
        job = self._call(
            "create batch", lambda: self.client.batches.create(model=self.settings.model, src=src, config=config)
        )
        if not job.name:
            # The call succeeded but the job has no name: it may exist, so let reconciliation look.
            raise ProviderError("Gemini created a batch but returned no name", retryable=True)
        created = job.create_time.timestamp() if job.create_time else self._clock()
        return BatchRef(provider=self.name, batch_id=job.name, input_file_id=input_file_id, created_at=created)

    def poll(self, batch_ids: list[str]) -> list[BatchStatus]:
        """Current status of each batch, in the same order: many from the batch listing, a few (and any
        the listing did not reach or shows without its output) by get."""
        with self._mapped("poll (list)"):
            found = listed(self._pages, lambda job: str(job.name), batch_ids)
        get = self.client.batches.get
        for name in batch_ids:
            if name not in found or not listing_complete(found[name]):
                found[name] = self._call("poll", functools.partial(get, name=name))
        return [self._status(found[b], b) for b in batch_ids]

    def results(self, status: BatchStatus) -> Iterator[bytes]:
        """Stream every result line: the result file by name, or the job's inlined responses."""
        return split_lines(self.result_blocks(status))

    def result_blocks(self, status: BatchStatus) -> Iterator[bytes]:
        """The result lines in blocks of whole lines."""
        file_name = status.result_refs.get("file_name")
        if file_name:
            yield from self._download_blocks(file_name)
        elif status.result_refs.get("inline"):
            job = self._call("fetch inline results", lambda: self.client.batches.get(name=status.batch_id))
            yield from (line + b"\n" for line in inline_lines(job))

    def cancel(self, batch_id: str) -> None:
        """Ask Gemini to cancel a batch job."""
        self._call("cancel", lambda: self.client.batches.cancel(name=batch_id))

    def find(self, labels: dict[str, str], since: datetime, n_items: int) -> list[BatchRef]:
        """Batch jobs named for these labels created after `since`, newest first."""
        wanted = display_name(labels)
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

    def inventory(self) -> tuple[list[RemoteBatch], list[RemoteFile]]:
        """Every listed batch job and file; labels come from the display name llmbulk gives both."""
        batches: list[RemoteBatch] = []
        with self._mapped("list batches"):
            for job in self.client.batches.list(config={"page_size": LIST_PAGE_SIZE}):
                if not job.name:
                    continue
                status = self._status(job, job.name)
                shard = labelled_shard(job.display_name)
                refs = (getattr(job.src, "file_name", None), status.result_refs.get("file_name"))
                batches.append(
                    RemoteBatch(job.name, live=running(status.state), job_id=job_of(shard) if shard else None,
                                shard_id=shard, file_ids=tuple(str(f) for f in refs if f),
                                created_at=job.create_time.timestamp() if job.create_time else None)
                )  # fmt: skip
        return batches, (self.files or GeminiFiles(self)).inventory()

    def _pages(self, size: int) -> Iterator[list[Any]]:
        """The batch listing, one page (one call) at a time, following `nextPageToken`."""
        pager = self.client.batches.list(config={"page_size": size})
        yield pager.page
        while pager.config.get("page_token"):
            yield pager.next_page()

    def close(self) -> None:
        """Close the SDK client."""
        if self._client is not None:
            self._client.close()
            self._client = None

    # ---- helpers -----------------------------------------------------------------------------

    def _download_blocks(self, file_name: str) -> Iterator[bytes]:
        # Stream to a temporary file (never the whole result in memory), then hand it out in blocks.
        with tempfile.TemporaryFile(prefix="llmbulk-gemini-") as tmp:
            self._call("download results", lambda: self.client.files.download(file=file_name, destination=tmp))
            tmp.seek(0)
            yield from whole_line_blocks(iter(lambda: tmp.read(DOWNLOAD_BLOCK), b""))

    def _status(self, job: Any, batch_id: str | None = None) -> BatchStatus:
        status = batch_status(job, self._clock(), batch_id)
        if status.state is BatchState.FAILED and status.error_code is None:
            error, error_code = self._failure_reason(status.batch_id)
            status = status.model_copy(update={"error": error, "error_code": error_code})
        return status

    def _failure_reason(self, name: str) -> tuple[str, str | None]:
        """Why a job FAILED: the SDK drops the operation's `error`, so read the raw operation once."""
        try:
            response = self.client._api_client.request("get", name, {})
            error = (orjson.loads(response.body or b"{}") or {}).get("error") or {}
        except Exception as exc:  # best effort: the poll itself already succeeded
            log.debug("could not read the failure reason of %s: %s", name, exc.__class__.__name__)
            return NO_REASON, None
        return failure_reason(error, self._scrub)

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
            raise api_error(what, exc, self.settings.model, self._scrub) from exc
        except transport_errors() as exc:
            raise ProviderError(
                f"cannot reach Gemini for {what}{self._where()}: {exc.__class__.__name__}",
                retryable=True,
                hint="check the network or GOOGLE_GEMINI_BASE_URL",
            ) from exc

    def _where(self) -> str:
        return f" at {self.settings.base_url}" if self.settings.base_url else ""

    def _scrub(self, text: str) -> str:
        return scrub(
            text, (self.settings.api_key, *(os.environ.get(name) for name in providers.info(self.name).key_env))
        )
