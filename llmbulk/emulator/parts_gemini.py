"""Inline data and file references in a Gemini request's parts, checked as generateContent checks them.

A refused item of a batch gets a `google.rpc.Status`: 3 INVALID_ARGUMENT for the request's own
faults, 7 PERMISSION_DENIED for a file the key cannot see. Wording: `Invalid value at
'contents[0].parts[1].inline_data.data' (TYPE_BYTES), Base64 decoding failed for "…"` (proto JSON
transcoder), `Request payload size exceeds the limit: 20971520 bytes.` and `Unsupported MIME type: …`
(Gemini API answers), `You do not have permission to access the File … or it may not exist.`
(google-gemini/deprecated-generative-ai-python#692); `Unable to process input image…` is the API's
answer to bytes that are no image.
"""

from __future__ import annotations

import re
from typing import Any

from llmbulk.emulator import media
from llmbulk.emulator.parts import MB, Files, Seen, b64decode

# Gemini image understanding guide: PNG, JPEG, WEBP, HEIC, HEIF; document guide: PDF.
SUPPORTED = ("image/png", "image/jpeg", "image/webp", "image/heic", "image/heif", "application/pdf")
MAX_INLINE = 20 * MB  # "inline data ... total request size under 20 MB" (Gemini file input guide)
FILE_TTL = 48 * 3600  # Files API: stored 48 hours
_FILE_REF = re.compile(r"(?:^|/)(files/[A-Za-z0-9_-]+)$")
UNREADABLE_IMAGE = ("Unable to process input image. Please retry or report in "
                    "https://developers.generativeai.google/guide/troubleshooting")  # fmt: skip
Status = dict[str, Any]


def _status(code: int, message: str) -> Status:
    return {"code": code, "message": message}


def gemini_attachments(request: Any, files: Files) -> tuple[list[Seen], Status | None]:
    """Every inline/file part's attachment in order, or the google.rpc.Status the API answers with."""
    seen: list[Seen] = []
    inline = 0
    contents = request.get("contents") if isinstance(request, dict) else None
    for i, content in enumerate(contents if isinstance(contents, list) else []):
        parts = content.get("parts") if isinstance(content, dict) else None
        for j, part in enumerate(parts if isinstance(parts, list) else []):
            if not isinstance(part, dict):
                continue
            blob = part.get("inlineData", part.get("inline_data"))
            ref = part.get("fileData", part.get("file_data"))
            found: tuple[Seen, bytes | None] | None
            if isinstance(blob, dict):
                found, problem = _inline(blob, f"contents[{i}].parts[{j}].inline_data")
                if found is not None:
                    inline += len(found[1] or b"")
                    if inline > MAX_INLINE:
                        problem = _status(3, f"Request payload size exceeds the limit: {MAX_INLINE} bytes.")
            elif isinstance(ref, dict):
                found, problem = _reference(ref, files)
            else:
                continue
            if problem is not None:
                return seen, problem
            if found is not None:
                seen.append(found[0])
    return seen, None


def _inline(blob: dict[str, Any], where: str) -> tuple[tuple[Seen, bytes] | None, Status | None]:
    declared = blob.get("mimeType", blob.get("mime_type"))
    if declared not in SUPPORTED:
        return None, _status(3, f"Unsupported MIME type: {declared}")
    raw = blob.get("data")
    data = b64decode(raw)
    if data is None:
        shown = str(raw)[:20]
        return None, _status(3, f"Invalid value at '{where}.data' (TYPE_BYTES), Base64 decoding failed for \"{shown}\"")
    problem = _content(data, str(declared))
    return (None, problem) if problem else ((Seen.of(data, str(declared)), data), None)


def _content(data: bytes, declared: str) -> Status | None:
    actual = media.sniff(data)
    if declared == media.PDF and actual != media.PDF:
        return _status(3, "The document has no pages.")  # wording unverified
    if declared != media.PDF and (actual is None or actual == media.PDF):
        return _status(3, UNREADABLE_IMAGE)
    return None


def _reference(ref: dict[str, Any], files: Files) -> tuple[tuple[Seen, bytes | None] | None, Status | None]:
    uri = ref.get("fileUri", ref.get("file_uri"))
    if not isinstance(uri, str) or not uri:
        return None, _status(3, "* GenerateContentRequest.contents.parts.file_data.file_uri: file_uri is required\n")
    match = _FILE_REF.search(uri)
    if match is None:  # a URL the API would fetch itself (never fetched here)
        return (Seen.url(uri), None), None
    name = match.group(1)
    stored = files.get(name)
    if stored is None or stored.meta.get("purpose") != "input" or files.expired(stored, FILE_TTL):
        message = f"You do not have permission to access the File {name.removeprefix('files/')} or it may not exist."
        return None, _status(7, message)
    mime = stored.meta.get("mime_type") or ""
    if mime not in SUPPORTED:
        return None, _status(3, f"Unsupported MIME type: {mime}")
    problem = _content(stored.data, mime)
    return (None, problem) if problem else ((stored.seen, stored.data), None)
