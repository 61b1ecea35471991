"""Each provider's Files API for attachments (#22), through the adapter's own SDK client.

OpenAI: `purpose="user_data"`; Chat Completions references only PDFs by file id (images go inline),
the Responses API both. Anthropic: the beta Files API. Gemini: the Files API, files kept 48 hours.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

from llmbulk.attachments.media import IMAGE_TYPES, PDF
from llmbulk.providers.base import MediaFile

ANTHROPIC_FILES_BETA = "files-api-2025-04-14"
GEMINI_KEPT = 48 * 3600  # https://ai.google.dev/gemini-api/docs/files: files are deleted after 48 hours
# A Gemini batch may take up to 48 hours too: only a file uploaded within the last hour is referenced
# (its 47 hours left cover the batch's target turnaround of 24 h with margin), else it is uploaded anew.
GEMINI_MIN_VALID = 47 * 3600


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    timestamp = getattr(value, "timestamp", None)
    return float(timestamp()) if callable(timestamp) else None


class OpenAIMediaFiles:
    """OpenAI Files with `purpose="user_data"`."""

    min_valid = 0.0

    def __init__(self, adapter: Any) -> None:
        self.adapter = adapter
        responses = adapter.endpoint == "/v1/responses"
        self.referable = frozenset((*IMAGE_TYPES, PDF) if responses else (PDF,))

    def upload(self, name: str, data: bytes, media_type: str) -> MediaFile:
        adapter = self.adapter
        created = adapter._call(
            "upload attachment",
            lambda: adapter.client.with_options(max_retries=0).files.create(
                file=(name, data, media_type), purpose="user_data", extra_headers=adapter._headers
            ),
        )
        return MediaFile(str(created.id), str(created.filename), created.bytes, None, _epoch(created.expires_at))

    def listing(self) -> Iterator[MediaFile]:
        with self.adapter._mapped("list files"):
            for file in self.adapter._listed(files=True, purpose="user_data"):
                yield MediaFile(str(file.id), str(file.filename), file.bytes, None, _epoch(file.expires_at))

    def delete(self, file_id: str) -> None:
        adapter = self.adapter
        adapter._call("delete file", lambda: adapter.client.files.delete(file_id, extra_headers=adapter._headers))


class AnthropicMediaFiles:
    """Anthropic's beta Files API; a batch referencing its files is created with the beta header."""

    min_valid = 0.0
    referable = frozenset((*IMAGE_TYPES, PDF))

    def __init__(self, adapter: Any) -> None:
        self.adapter = adapter

    def upload(self, name: str, data: bytes, media_type: str) -> MediaFile:
        client = self.adapter.client.with_options(max_retries=0)
        created = self.adapter._call(
            "upload attachment", lambda: client.beta.files.upload(file=(name, data, media_type))
        )
        return MediaFile(str(created.id), str(created.filename), created.size_bytes)

    def listing(self) -> Iterator[MediaFile]:
        with self.adapter._mapped("list files"):
            for file in self.adapter.client.beta.files.list(limit=1000):
                yield MediaFile(str(file.id), str(file.filename), file.size_bytes)

    def delete(self, file_id: str) -> None:
        self.adapter._call("delete file", lambda: self.adapter.client.beta.files.delete(file_id))


class GeminiMediaFiles:
    """Gemini's Files API: requests reference a file's URI; the file is deleted 48 hours after upload."""

    min_valid = float(GEMINI_MIN_VALID)
    referable = frozenset(("image/png", "image/jpeg", "image/webp", PDF))

    def __init__(self, adapter: Any) -> None:
        self.adapter = adapter

    def upload(self, name: str, data: bytes, media_type: str) -> MediaFile:
        adapter = self.adapter
        config: dict[str, Any] = {"mime_type": media_type, "display_name": name}
        if adapter.settings.base_url:  # keep the configured host for the upload URL (a proxy, the emulator)
            config["http_options"] = {"base_url": adapter.settings.base_url}
        uploaded = adapter._call(
            "upload attachment", lambda: adapter.client.files.upload(file=io.BytesIO(data), config=config)
        )
        return self._file(uploaded)

    def listing(self) -> Iterator[MediaFile]:
        with self.adapter._mapped("list files"):
            for file in self.adapter.client.files.list(config={"page_size": 100}):
                yield self._file(file)

    def delete(self, file_id: str) -> None:
        self.adapter._call("delete file", lambda: self.adapter.client.files.delete(name=file_id))

    @staticmethod
    def _file(file: Any) -> MediaFile:
        return MediaFile(
            str(file.name), str(file.display_name or ""), file.size_bytes, file.uri, _epoch(file.expiration_time)
        )
