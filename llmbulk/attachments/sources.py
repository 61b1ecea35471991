"""Where an attachment's bytes come from: a local path (relative to the input's folder), an `https://` URL,
or a `data:` URI. Resolving a value reads the file once to learn its media type, sha256 and size;
`load` reads it again when a request line is encoded and refuses a file that changed in between.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from llmbulk.attachments import ATTACHMENT
from llmbulk.attachments.media import EXTENSION_TYPES, MEDIA_TYPES, sniff
from llmbulk.errors import InputError

HINT = (
    "give a local path (relative to the input's folder), an https:// URL or a data: URI"
    " of a PNG, JPEG, WebP, GIF or PDF"
)
_resolved: dict[tuple[str, int, int], tuple[str, str, int]] = {}  # (path, mtime_ns, size) → (media type, sha256, size)
_loaded: dict[str, bytes] = {}  # sha256 → bytes, for the last few files encoded
_LOADED_BYTES = 64 << 20  # what the encode cache may hold


def resolve(value: Any, base: Path, where: str) -> dict[str, Any]:
    """The neutral attachment part for a column value; `where` names the row for errors."""
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{where}: the attachment value is {'empty' if not value else repr(value)}", hint=HINT)
    text = value.strip()
    if text.startswith("data:"):
        media_type, data = _data_uri(text, where)
        return _part(media_type, hashlib.sha256(data).hexdigest(), len(data), text)
    if text.startswith(("https://", "http://")):
        if text.startswith("http://"):
            raise InputError(f"{where}: attachment URL {text} is not https", hint="providers fetch https:// URLs only")
        suffix = Path(urlsplit(text).path).suffix.lower()
        by_extension = EXTENSION_TYPES.get(suffix)
        if by_extension is None:
            raise InputError(f"{where}: cannot tell the media type of {text} from its extension", hint=HINT)
        # The provider fetches the URL: what identifies the content here is the URL itself.
        return _part(by_extension, hashlib.sha256(text.encode()).hexdigest(), 0, text)
    path = (base / text).resolve()
    try:
        stat = path.stat()
    except OSError:
        raise InputError(f"{where}: attachment {path} does not exist", hint=HINT) from None
    if not path.is_file():
        raise InputError(f"{where}: attachment {path} is not a regular file", hint=HINT)
    identity = (str(path), stat.st_mtime_ns, stat.st_size)
    known = _resolved.get(identity)
    if known is None:
        data = path.read_bytes()
        sniffed = sniff(data[:16])
        if sniffed is None:
            raise InputError(f"{where}: {path} is not a PNG, JPEG, WebP, GIF or PDF (by its first bytes)", hint=HINT)
        known = _resolved[identity] = (sniffed, hashlib.sha256(data).hexdigest(), len(data))
    return _part(known[0], known[1], known[2], str(path))


def load(part: dict[str, Any]) -> bytes:
    """The part's bytes, as resolved (refused when the file changed since); URLs have none."""
    sha256 = part["sha256"]
    data = _loaded.get(sha256)
    if data is not None:
        return data
    source = part["source"]
    if source.startswith("data:"):
        data = _data_uri(source, source[:40])[1]
    else:
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise InputError(f"attachment {source} cannot be read: {exc.strerror}", hint="restore the file") from exc
        if hashlib.sha256(data).hexdigest() != sha256:
            raise InputError(
                f"attachment {source} changed after the job was packed",
                hint="restore the file as it was, or submit a new job with --new-job",
            )
    if sum(map(len, _loaded.values())) + len(data) > _LOADED_BYTES:
        _loaded.clear()
    _loaded[sha256] = data
    return data


def is_url(part: dict[str, Any]) -> bool:
    return str(part["source"]).startswith("https://")


def file_name(part: dict[str, Any]) -> str:
    """A name for the provider's `filename` field: the source's base name, or one from the hash."""
    source = str(part["source"])
    if not source.startswith(("data:", "https://")):
        return os.path.basename(source)
    extension = {"application/pdf": "pdf"}.get(part["media_type"], part["media_type"].split("/")[-1])
    return f"{part['sha256'][:16]}.{extension}"


def _part(media_type: str, sha256: str, size: int, source: str) -> dict[str, Any]:
    return {"type": ATTACHMENT, "media_type": media_type, "sha256": sha256, "size": size, "source": source}


def _data_uri(text: str, where: str) -> tuple[str, bytes]:
    header, sep, payload = text[5:].partition(",")
    if not sep:
        raise InputError(f"{where}: the data: URI has no ',' before its data", hint=HINT)
    fields = header.split(";")
    try:
        data = base64.b64decode(payload, validate=True) if "base64" in fields[1:] else unquote_to_bytes(payload)
    except (binascii.Error, ValueError) as exc:
        raise InputError(f"{where}: the data: URI's base64 does not decode ({exc})", hint=HINT) from exc
    media_type = sniff(data[:16])
    if media_type is None or media_type not in MEDIA_TYPES:
        raise InputError(f"{where}: the data: URI does not hold a PNG, JPEG, WebP, GIF or PDF", hint=HINT)
    return media_type, data
