"""OpenAI's (and the OpenAI-compatible profiles') Files API for batch input files.

Each upload is named after its shard (`<shard>.jsonl`), so one whose answer was lost can be found by
name and size (`find`) instead of being uploaded, and paid for, twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from llmbulk.providers.base import ShardInput
from llmbulk.providers.openai_lines import epoch

if TYPE_CHECKING:
    from llmbulk.providers.openai import OpenAIBatchProvider

CLOCK_SKEW_SECONDS = 60


class OpenAIFiles:
    """Batch input files: one upload per shard, named after it so a lost answer can be found."""

    def __init__(self, adapter: OpenAIBatchProvider) -> None:
        self.adapter = adapter
        self._retried: set[str] = set()  # uploads the SDK sent more than once

    def upload(self, shard: ShardInput, labels: dict[str, str]) -> str:
        adapter = self.adapter
        extra: dict[str, Any] = {}
        if adapter.profile.upload_expiry is not None:  # OpenAI, Azure (without it: 500 input files per resource)
            extra["expires_after"] = {"anchor": "created_at", "seconds": adapter.profile.upload_expiry}
        with open(shard.path, "rb") as fh:
            raw = adapter._call(
                "upload",
                lambda: adapter.client.files.with_raw_response.create(
                    file=(f"{shard.shard_id}.jsonl", fh, "application/jsonl"), purpose="batch",
                    extra_headers=adapter._headers, **extra,
                ),
            )  # fmt: skip
            created = raw.parse()
        if raw.retries_taken:
            self._retried.add(str(created.id))
        return str(created.id)

    def may_have_copies(self, file_id: str) -> bool:
        """Whether this upload may have left stray copies: only if the SDK sent it more than once (its own
        retry count: an answer lost after the file was made is always followed by a retry)."""
        return file_id in self._retried

    def find(self, labels: dict[str, str], since: datetime, n_bytes: int) -> list[str]:
        return self.find_many([(labels, n_bytes)], since)[0]

    def find_many(self, wanted: list[tuple[dict[str, str], int]], since: datetime) -> list[list[str]]:
        """Each upload's files by the name `upload` gives a shard's file and its size, in one listing."""
        slots: dict[tuple[str, int], list[int]] = {}
        for index, (labels, n_bytes) in enumerate(wanted):
            slots.setdefault((f"{labels['llmbulk_shard']}.jsonl", n_bytes), []).append(index)
        cutoff = since.timestamp() - CLOCK_SKEW_SECONDS
        found: list[list[str]] = [[] for _ in wanted]
        adapter = self.adapter
        with adapter._mapped("list files"):
            for file in adapter._listed(files=True):
                if (epoch(file.created_at) or 0.0) < cutoff:
                    if adapter.profile.newest_first:
                        break
                    continue
                for index in slots.get((str(file.filename), int(file.bytes or 0)), ()):
                    found[index].append(file.id)
        return found

    def delete(self, file_id: str) -> None:
        adapter = self.adapter
        adapter._call("delete file", lambda: adapter.client.files.delete(file_id, extra_headers=adapter._headers))
