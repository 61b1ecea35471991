"""Gemini's Files API for batch input files, and the display name that labels files and jobs alike.

Each upload and each job is named after its job and shard, so one lost to a crash between the call
and llmbulk's record of it can be found again (`find`) instead of being paid for twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from llmbulk.errors import ProviderError
from llmbulk.providers.base import RemoteFile, ShardInput, job_of, shard_named

if TYPE_CHECKING:
    from llmbulk.providers.gemini import GeminiBatchProvider

FIND_SKEW_SECONDS = 60.0
LIST_PAGE_SIZE = 100
JSONL_MIME = "application/jsonl"  # explicit: Python's mimetypes does not know .jsonl


def display_name(labels: dict[str, str]) -> str:
    """The batch (and file) display name: unique per job and shard, used to find orphans."""
    return f"llmbulk-{labels['llmbulk_job']}-{labels['llmbulk_shard']}"


def labelled_shard(name: str | None) -> str | None:
    """The shard a display name of `display_name`'s form labels (its job and shard agree), else None."""
    if not name or not name.startswith("llmbulk-"):
        return None
    shard = shard_named(name.removeprefix("llmbulk-").partition("-")[2])
    return shard if shard is not None and name == f"llmbulk-{job_of(shard)}-{shard}" else None


class GeminiFiles:
    """Batch input files through the Files API, named after their shard so a lost answer can be found."""

    def __init__(self, adapter: GeminiBatchProvider) -> None:
        self.adapter = adapter

    def upload(self, shard: ShardInput, labels: dict[str, str]) -> str:
        adapter = self.adapter
        config: dict[str, Any] = {"mime_type": JSONL_MIME, "display_name": display_name(labels)}
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

    def may_have_copies(self, file_id: str) -> bool:
        """Always: the SDK's resumable upload does not say how often it sent the bytes."""
        return True

    def find(self, labels: dict[str, str], since: datetime, n_bytes: int) -> list[str]:
        """Uploaded files carrying this shard's display name and size, newest first."""
        return self.find_many([(labels, n_bytes)], since)[0]

    def find_many(self, wanted: list[tuple[dict[str, str], int]], since: datetime) -> list[list[str]]:
        """`find` for several uploads in one listing."""
        slots: dict[tuple[str, int], list[int]] = {}
        for index, (labels, n_bytes) in enumerate(wanted):
            slots.setdefault((display_name(labels), n_bytes), []).append(index)
        cutoff = since.timestamp() - FIND_SKEW_SECONDS
        found: list[list[tuple[float, str]]] = [[] for _ in wanted]
        with self.adapter._mapped("list files"):
            for file in self.adapter.client.files.list(config={"page_size": LIST_PAGE_SIZE}):
                created = file.create_time.timestamp() if file.create_time else 0.0
                if created < cutoff or not file.name:
                    continue
                for index in slots.get((str(file.display_name), int(file.size_bytes or 0)), ()):
                    found[index].append((created, file.name))
        return [[name for _, name in sorted(matches, reverse=True)] for matches in found]

    def inventory(self) -> list[RemoteFile]:
        """Every listed file (uploads carry their shard's display name; result files do not)."""
        found: list[RemoteFile] = []
        with self.adapter._mapped("list files"):
            for file in self.adapter.client.files.list(config={"page_size": LIST_PAGE_SIZE}):
                if file.name:
                    created = file.create_time.timestamp() if file.create_time else None
                    shard = labelled_shard(file.display_name)
                    found.append(RemoteFile(file.name, file.display_name or "", shard, created))
        return found

    def delete(self, file_id: str) -> None:
        self.adapter._call("delete file", lambda: self.adapter.client.files.delete(name=file_id))
