"""Attachments in a request: what each one is (inline base64, a stored file, a URL) and its digest.

Shared by the three providers' part checks (`parts_openai`, `parts_anthropic`, `parts_gemini`):
base64 and data-URL decoding, the caller's stored files (read and hashed once per batch), and
`Seen`, the (media type, sha256) pair the deterministic answer is built from. URL attachments are
never fetched: their digest is the sha256 of the URL string, their type the URL's extension.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from llmbulk.emulator import media
from llmbulk.emulator.engine import Emulator
from llmbulk.emulator.owners import owned_by

_DATA_URL = re.compile(r"^data:([^;,]*)((?:;[^;,]*)*),(.*)$", re.DOTALL)
MB = 1024 * 1024


@dataclass(frozen=True)
class Seen:
    """One attachment as the answer names it."""

    media_type: str
    sha256: str

    @classmethod
    def of(cls, data: bytes, declared: str) -> Seen:
        return cls(media.sniff(data) or declared, hashlib.sha256(data).hexdigest())

    @classmethod
    def url(cls, url: str) -> Seen:
        return cls(media.extension_type(url), hashlib.sha256(url.encode()).hexdigest())


@dataclass(frozen=True)
class Stored:
    """An uploaded file the request references: its record, bytes and digest."""

    meta: dict[str, Any]
    data: bytes
    seen: Seen


def b64decode(text: Any) -> bytes | None:
    """Strict base64 (the APIs refuse characters outside the alphabet), or None."""
    if not isinstance(text, str):
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def data_url(text: Any) -> tuple[str, bytes | None] | None:
    """`data:<type>;base64,<data>` → (type, decoded bytes or None when not base64); None if no data URL."""
    match = _DATA_URL.match(text) if isinstance(text, str) else None
    if match is None:
        return None
    if "base64" not in match.group(2).split(";"):
        return match.group(1), None
    return match.group(1), b64decode(match.group(3))


def is_web_url(text: Any) -> bool:
    return isinstance(text, str) and text.startswith(("https://", "http://"))


class Files:
    """The caller's uploaded files for one batch, each read and hashed once however many rows use it.

    `owner` is the key hash the batch was created with; None (a batch from before owners were
    recorded) sees every file of the provider.
    """

    CACHE_BYTES = 256 * MB  # beyond this, files are read again per reference rather than held

    def __init__(self, emu: Emulator, provider: str, owner: str | None) -> None:
        self.emu, self.provider, self.owner = emu, provider, owner
        self._cache: dict[str, Stored | None] = {}
        self._held = 0

    def get(self, file_id: str) -> Stored | None:
        """The file if it exists, is this provider's and belongs to the caller; else None."""
        if file_id in self._cache:
            return self._cache[file_id]
        stored = self._read(file_id)
        size = len(stored.data) if stored is not None else 0
        if self._held + size <= self.CACHE_BYTES:
            self._cache[file_id], self._held = stored, self._held + size
        return stored

    def _read(self, file_id: str) -> Stored | None:
        meta = self.emu.get_file(file_id)
        if meta is None or meta["provider"] != self.provider:
            return None
        if self.owner is not None and not owned_by(meta, self.owner):
            return None
        try:
            data = self.emu.file_path(file_id).read_bytes()
        except FileNotFoundError:  # deleted while the batch ran
            return None
        return Stored(meta, data, Seen.of(data, meta.get("mime_type") or "application/octet-stream"))

    def expired(self, stored: Stored, ttl: float | None = None) -> bool:
        """Past its `expires_at` (or `created_at + ttl`) by the emulator's clock."""
        meta = stored.meta
        deadline = meta.get("expires_at")
        if deadline is None and ttl is not None:
            deadline = meta["created_at"] + ttl
        return deadline is not None and self.emu.config.clock() >= deadline
