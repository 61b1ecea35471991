"""Who owns an uploaded file: a hash of the API key that uploaded it, never the key itself.

Every provider scopes files to the caller (OpenAI: the project; Anthropic: the workspace; Gemini:
the key's project), so another key's file id answers as the provider answers an unknown one. The
emulator stands a key in for that scope. Files the emulator writes itself (batch results) carry no
owner and stay visible to every key, as before.
"""

from __future__ import annotations

import hashlib
from typing import Any

from starlette.requests import Request


def caller_key(request: Request) -> str:
    """The API key as the providers' auth reads it: a provider header first, then a bearer token."""
    for header in ("x-api-key", "api-key", "x-goog-api-key"):
        value = request.headers.get(header, "").strip()
        if value:
            return value
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.query_params.get("key", "")


def key_hash(key: str) -> str:
    """A short one-way digest of a key: enough to tell keys apart, useless to recover one."""
    return hashlib.sha256(b"llmbulk-emulator-owner\x00" + key.encode()).hexdigest()[:24]


def owner_of(request: Request) -> str:
    return key_hash(caller_key(request))


def owned_by(meta: dict[str, Any] | None, owner: str) -> bool:
    """Whether the caller with this owner hash may see the file (unowned files: everyone)."""
    return meta is not None and meta.get("owner") in (None, owner)
