"""OpenAI Batch, and every OpenAI-compatible vendor (a `Profile`), through the official `openai` SDK.

Upload (purpose=batch) → create (retries off, metadata labels job and shard) → poll → stream the
output *and* error files. The line format lives in `openai_lines`; what differs per vendor (base
URL, auth header, windows, file expiry, status spelling, metadata kept or not) is profile data.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from llmbulk import providers, schemas
from llmbulk.errors import ConfigError, ProviderError, QuotaError
from llmbulk.models import BatchRef, BatchStatus, ItemOutcome, Limits, Task
from llmbulk.providers import openai_lines
from llmbulk.providers.base import (
    MediaFiles,
    ProviderSettings,
    RemoteBatch,
    RemoteFile,
    ShardInput,
    job_of,
    running,
    shard_named,
    split_lines,
    transport_errors,
    whole_line_blocks,
)
from llmbulk.providers.media_files import OpenAIMediaFiles
from llmbulk.providers.openai_files import CLOCK_SKEW_SECONDS, OpenAIFiles
from llmbulk.providers.openai_lines import RETRYABLE_HTTP, STATES, epoch
from llmbulk.providers.profiles import PROFILES, Profile

__all__ = ["LIMITS", "STATES", "OpenAIBatchProvider", "batch_status", "sent_schema"]

ENDPOINTS = ("/v1/chat/completions", "/v1/responses", "/v1/embeddings")
LIMITS = Limits(
    max_items=50_000,
    max_bytes=200 * 1024 * 1024,
    counts_live=True,
    endpoints=ENDPOINTS,
    schema_checks=("strict_answerable",),  # strict mode makes every property required
)
OPENAI = next(p for p in PROFILES if p.name == "openai")
LIST_POLL_THRESHOLD = 3  # above this many live batches, one list page beats one retrieve each
LIST_PAGE = 100
REQUEUE_CREATE_CODES = frozenset({"token_limit_exceeded"})  # Azure's fail-fast quota answer to create
# Azure's answer to an upload past the resource's file quota: 400 {"error": {"code": "quotaExceeded",
# "message": "The quota for files without expiry is reached. The maximum is 500."}}
# (github.com/Azure/azure-sdk-for-java/issues/47401).
FILE_QUOTA_CODES = frozenset({"quotaExceeded"})


def sent_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema as OpenAI strict structured outputs receive it."""
    return schemas.strict(schema)


def batch_status(batch: Any) -> BatchStatus:
    """An SDK `Batch` → a normalized status (OpenAI's own spelling)."""
    return openai_lines.batch_status(batch)


class OpenAIBatchProvider:
    """OpenAI's Batch API, or a vendor's OpenAI-compatible one as its profile describes it."""

    def __init__(self, settings: ProviderSettings, profile: Profile = OPENAI) -> None:
        self.settings, self.profile, self.name = settings, profile, profile.name
        self.limits = LIMITS.model_copy(
            update={"max_items": profile.max_items, "max_bytes": profile.max_bytes, "endpoints": profile.endpoints}
        )
        self.endpoint = settings.endpoint or profile.endpoints[0]
        if self.endpoint not in profile.endpoints:
            raise ConfigError(
                f"endpoint {self.endpoint!r} is not supported by {self.name}",
                hint=f"use one of {', '.join(profile.endpoints)}",
            )
        self.window = settings.completion_window or profile.windows[0]
        self.key_env = providers.info(self.name).key_env[0]
        self._client: Any = None
        self._headers: dict[str, Any] = {}
        self.files = OpenAIFiles(self)
        # Attachments by file id (#22): OpenAI's own Files API only (vendors document no user_data files).
        self.media_files: MediaFiles | None = OpenAIMediaFiles(self) if profile is OPENAI else None

    @property
    def client(self) -> Any:
        if self._client is None:
            import openai

            key = self.settings.api_key
            self._client = openai.OpenAI(
                api_key=key or "unused", base_url=self.settings.base_url, timeout=self.settings.timeout
            )
            # Per request, as the SDK only lets a request (not the client) drop its bearer header.
            if self.profile is not OPENAI:  # OpenAI's organization and project are no other vendor's business
                self._headers.update({"OpenAI-Organization": openai.Omit(), "OpenAI-Project": openai.Omit()})
            if self.profile.auth_header != "authorization" or not key:
                self._headers["Authorization"] = openai.Omit()
            if self.profile.auth_header != "authorization" and key:
                self._headers[self.profile.auth_header] = key
        return self._client

    # ---- pure line codecs --------------------------------------------------------------------

    def encode(self, task: Task, custom_id: str) -> bytes:
        return openai_lines.encode(task, custom_id, self.settings.model, self.endpoint)

    def decode(self, line: bytes) -> ItemOutcome:
        return openai_lines.decode(line)

    # ---- calls -------------------------------------------------------------------------------

    def create(self, shard: ShardInput, input_file_id: str | None, labels: dict[str, str]) -> BatchRef:
        extra: dict[str, Any] = {}
        if self.profile.output_expiry is not None:  # where the vendor is known to take it (profiles.py)
            extra["output_expires_after"] = {"anchor": "created_at", "seconds": self.profile.output_expiry}
        batch = self._call(
            "create batch",
            lambda: self.client.with_options(max_retries=0).batches.create(
                input_file_id=input_file_id, endpoint=self.endpoint, completion_window=self.window,
                metadata=labels, extra_headers=self._headers, **extra,
            ),
        )  # fmt: skip
        return BatchRef(
            provider=self.name, batch_id=batch.id, input_file_id=input_file_id, created_at=epoch(batch.created_at)
        )

    def poll(self, batch_ids: list[str]) -> list[BatchStatus]:
        """Many batches are read from the paginated list (one call per 100), a few by retrieve."""
        found: dict[str, Any] = {}
        if len(batch_ids) > LIST_POLL_THRESHOLD:
            wanted = set(batch_ids)
            with self._mapped("poll (list)"):
                for batch in self._listed():
                    if batch.id in wanted:
                        found[batch.id] = batch
                        if len(found) == len(wanted):
                            break
        for batch_id in [b for b in batch_ids if b not in found]:
            found[batch_id] = self._call(
                "poll", lambda b=batch_id: self.client.batches.retrieve(b, extra_headers=self._headers)
            )
        return [openai_lines.batch_status(found[b], self.profile.status_aliases) for b in batch_ids]

    def results(self, status: BatchStatus) -> Iterator[bytes]:
        return split_lines(self.result_blocks(status))

    def result_blocks(self, status: BatchStatus) -> Iterator[bytes]:
        for kind in ("output_file_id", "error_file_id"):
            file_id = status.result_refs.get(kind)
            if file_id:
                yield from self._stream_file(file_id)

    def cancel(self, batch_id: str) -> None:
        self._call("cancel", lambda: self.client.batches.cancel(batch_id, extra_headers=self._headers))

    def find(self, labels: dict[str, str], since: datetime, n_items: int) -> list[BatchRef]:
        """Batches created since `since` carrying these labels; where the vendor may drop metadata, an
        unlabelled batch of the right size is returned unproven (`owned=None`): the caller proves it
        from its result ids before adopting it, and never adopts one it cannot prove."""
        cutoff = since.timestamp() - CLOCK_SKEW_SECONDS
        found: list[BatchRef] = []
        with self._mapped("list batches"):
            for batch in self._listed():
                created = epoch(batch.created_at) or 0.0
                if created < cutoff:
                    if self.profile.newest_first:
                        break
                    continue  # a vendor whose list order is not documented is read to the end
                metadata = getattr(batch, "metadata", None) or {}
                if metadata:
                    owned: bool | None = all(metadata.get(k) == v for k, v in labels.items())
                elif self.profile.keeps_metadata:
                    owned = False
                else:
                    total = openai_lines.batch_status(batch, self.profile.status_aliases).total
                    owned = None if total in (None, 0, n_items) else False
                if owned is not False:
                    found.append(
                        BatchRef(provider=self.name, batch_id=batch.id, input_file_id=batch.input_file_id,
                                 created_at=created, owned=owned)
                    )  # fmt: skip
        return found

    def inventory(self) -> tuple[list[RemoteBatch], list[RemoteFile]]:
        """Every listed batch (labels from its metadata) and every batch input and output file."""
        batches: list[RemoteBatch] = []
        with self._mapped("list batches"):
            for batch in self._listed():
                metadata = getattr(batch, "metadata", None) or {}
                shard = shard_named(metadata.get("llmbulk_shard"))
                job = metadata.get("llmbulk_job")
                status = openai_lines.batch_status(batch, self.profile.status_aliases)
                files = (batch.input_file_id, batch.output_file_id, batch.error_file_id)
                batches.append(
                    RemoteBatch(batch_id=batch.id, live=running(status.state),
                                job_id=job if shard is not None and job_of(shard) == job else None,
                                shard_id=shard if shard is not None and job_of(shard) == job else None,
                                file_ids=tuple(f for f in files if f), created_at=epoch(batch.created_at))
                )  # fmt: skip
        found: list[RemoteFile] = []
        seen: set[str] = set()
        with self._mapped("list files"):
            for purpose in ("batch", "batch_output"):  # inputs, then outputs and error files
                for file in self._listed(files=True, purpose=purpose):
                    if file.id in seen:
                        continue  # a vendor that ignores the purpose filter lists every file twice
                    seen.add(file.id)
                    name = str(file.filename or "")
                    shard = shard_named(name.removesuffix(".jsonl")) if file.purpose == "batch" else None
                    found.append(RemoteFile(file.id, name, shard, epoch(file.created_at)))
        return batches, found

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # ---- helpers -----------------------------------------------------------------------------

    def _listed(self, files: bool = False, purpose: str = "batch") -> Iterator[Any]:
        """Every listed batch (or batch input file), page by page, `after` = the last id.

        Not the SDK's auto-pager: a vendor that documents no paging (Groq) omits `has_more` and
        answers every page alike, which would page forever; a page with nothing new ends it here.
        """
        seen: set[str] = set()
        after: str | None = None
        while True:
            extra: dict[str, Any] = {"after": after} if after else {}
            if files:
                extra.update(purpose=purpose, order="desc")
            listing = self.client.files.list if files else self.client.batches.list
            page = listing(limit=LIST_PAGE, extra_headers=self._headers, **extra)
            fresh = [b for b in page.data if b.id not in seen]
            yield from fresh
            seen.update(b.id for b in fresh)
            if not fresh or page.has_more is not True:
                return
            after = page.data[-1].id

    def _stream_file(self, file_id: str) -> Iterator[bytes]:
        content = self.client.files.with_streaming_response.content
        with self._mapped("download"), content(file_id, extra_headers=self._headers) as resp:
            yield from whole_line_blocks(resp.iter_bytes(1 << 20))

    def _call(self, what: str, fn: Any) -> Any:
        with self._mapped(what):
            return fn()

    @contextmanager
    def _mapped(self, what: str) -> Iterator[None]:
        """SDK exceptions → llmbulk errors (messages never carry the key)."""
        import openai

        label = "OpenAI" if self.profile is OPENAI else self.name
        try:
            yield
        except openai.AuthenticationError as exc:
            raise ConfigError(
                f"{label} rejected the API key during {what} (401)", hint=f"check {self.key_env}"
            ) from exc
        except openai.RateLimitError as exc:
            raise QuotaError(f"{label} rate limit during {what}: {_message(exc)}") from exc
        except openai.APIStatusError as exc:
            if exc.status_code == 400 and (getattr(exc, "code", None) in REQUEUE_CREATE_CODES):
                raise QuotaError(f"{label} enqueued-token limit during {what}: {_message(exc)}") from exc
            if exc.status_code == 400 and (getattr(exc, "code", None) in FILE_QUOTA_CODES):
                raise QuotaError(
                    f"{label} file quota during {what}: {_message(exc)}",
                    hint="`llmbulk gc --apply` deletes the files llmbulk left there; `llmbulk limits set` caps them",
                ) from exc
            raise ProviderError(
                f"{label} {what} failed: HTTP {exc.status_code}: {_message(exc)}",
                retryable=exc.status_code >= 500 or exc.status_code in RETRYABLE_HTTP,
                status=exc.status_code,
            ) from exc
        except openai.APIConnectionError as exc:
            raise ProviderError(
                f"cannot reach {label} for {what} at {self.client.base_url}: {exc.__class__.__name__}",
                retryable=True,
                hint=f"check the network or {providers.info(self.name).base_url_env}",
            ) from exc
        except transport_errors() as exc:  # the connection broke mid-body (the SDK retries only before it)
            raise ProviderError(
                f"connection to {label} broke during {what}: {exc.__class__.__name__}", retryable=True
            ) from exc


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(getattr(exc, "message", exc)).splitlines()[0]
