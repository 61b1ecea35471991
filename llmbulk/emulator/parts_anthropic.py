"""Image and document blocks in an Anthropic request, checked as the Messages API checks them.

Wording quoted from the API's answers (anthropics/claude-code#15746, #8184, #19631, #12750):
`messages.N.content.M.image.source.base64.data: Image does not match the provided media type image/png`,
`...base64.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'`,
`...image.source.base64: image exceeds 5 MB maximum: 8259148 bytes > 5242880 bytes`,
`...image.source.base64: image cannot be empty`. Others are modelled on them [wording unverified].
File sources need no beta header: anthropic 2.16 types `{"type": "file"}` sources in the generally
available Messages params (the Files API left beta), so the installed SDK wins over the contract.
"""

from __future__ import annotations

from typing import Any

from llmbulk.emulator import media
from llmbulk.emulator.parts import MB, Files, Seen, b64decode, is_web_url
from llmbulk.emulator.rules import Problem

IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")  # Vision guide: supported formats
MAX_IMAGE_BYTES = 5 * MB  # Vision guide: "API: Maximum 5MB per image" (decoded bytes, per the error above)
MAX_PIXELS = 8000  # Vision guide: images larger than 8000x8000 px are rejected
MAX_IMAGES = 100  # Vision guide: up to 100 images per API request
MAX_PDF_BYTES = 32 * MB  # PDF support guide: maximum request size 32 MB
MAX_PDF_PAGES = 100  # PDF support guide: maximum 100 pages per request
FILE_DOCUMENT_TYPES = ("application/pdf", "text/plain")  # Files API guide: file types per block


def _bad(message: str) -> Problem:
    return Problem(400, "invalid_request_error", message)


def anthropic_attachments(params: Any, files: Files) -> tuple[list[Seen], Problem | None]:
    """Every image/document block's attachment in order, or the first problem the API reports."""
    seen: list[Seen] = []
    messages = params.get("messages") if isinstance(params, dict) else None
    images = pages = pdf_bytes = 0
    for i, message in enumerate(messages if isinstance(messages, list) else []):
        content = message.get("content") if isinstance(message, dict) else None
        for j, block in enumerate(content if isinstance(content, list) else []):
            kind = block.get("type") if isinstance(block, dict) else None
            if kind not in ("image", "document"):
                continue
            where = f"messages.{i}.content.{j}.{kind}.source"
            found, problem = _block(kind, block.get("source"), where, files)
            if problem is not None:
                return seen, problem
            if found is None:
                continue
            item, data = found
            seen.append(item)
            if kind == "image":
                images += 1
                if images > MAX_IMAGES:
                    return seen, _bad(f"messages: too many images: {images} > {MAX_IMAGES}")  # wording unverified
            elif data is not None and item.media_type == media.PDF:
                pages += media.pdf_pages(data)
                pdf_bytes += len(data)
                if pages > MAX_PDF_PAGES:
                    return seen, _bad(f"A maximum of {MAX_PDF_PAGES} PDF pages may be provided.")
                if pdf_bytes > MAX_PDF_BYTES:
                    return seen, _bad(f"{where}: PDF exceeds 32 MB maximum: {pdf_bytes} bytes > {MAX_PDF_BYTES} bytes")
    return seen, None


def _block(kind: str, source: Any, where: str,
           files: Files) -> tuple[tuple[Seen, bytes | None] | None, Problem | None]:  # fmt: skip
    if not isinstance(source, dict):
        return None, _bad(f"{where}: Field required")
    source_type = source.get("type")
    if source_type == "url":
        url = source.get("url")
        if not is_web_url(url):
            return None, _bad(f"{where}.url.url: Input should be a valid URL")
        return (Seen.url(str(url)), None), None
    if source_type == "file":
        return _file(kind, source.get("file_id"), where, files)
    if source_type == "base64":
        return _inline(kind, source, f"{where}.base64")
    if kind == "document" and source_type in ("text", "content"):
        return None, None  # plain text documents carry no attachment bytes
    tags = "'base64', 'url', 'file'" if kind == "image" else "'base64', 'content', 'text', 'url', 'file'"
    return None, _bad(
        f"{where}: Input tag '{source_type}' found using 'type' does not match any of the expected tags: {tags}"
    )


def _inline(kind: str, source: dict[str, Any], where: str) -> tuple[tuple[Seen, bytes] | None, Problem | None]:
    declared = source.get("media_type")
    if kind == "image" and declared not in IMAGE_TYPES:
        return None, _bad(f"{where}.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'")
    if kind == "document" and declared != media.PDF:
        return None, _bad(f"{where}.media_type: Input should be 'application/pdf'")
    if not source.get("data"):
        return None, _bad(f"{where}: {kind} cannot be empty")
    data = b64decode(source.get("data"))
    if data is None:
        return None, _bad(f"{where}.data: Invalid base64 data")  # wording unverified
    if kind == "document":
        if media.sniff(data) != media.PDF:
            return None, _bad(f"{where}.data: The PDF specified was not valid.")
        return (Seen.of(data, media.PDF), data), None
    if len(data) > MAX_IMAGE_BYTES:
        return None, _bad(f"{where}: image exceeds 5 MB maximum: {len(data)} bytes > {MAX_IMAGE_BYTES} bytes")
    if media.sniff(data) != declared:
        return None, _bad(f"{where}.data: Image does not match the provided media type {declared}")
    size = media.image_size(data, str(declared))
    if size is not None and max(size) > MAX_PIXELS:
        return None, _bad(
            f"{where}.data: At least one of the image dimensions exceed max allowed size: {MAX_PIXELS} pixels"
        )
    return (Seen.of(data, str(declared)), data), None


def _file(kind: str, file_id: Any, where: str,
          files: Files) -> tuple[tuple[Seen, bytes] | None, Problem | None]:  # fmt: skip
    if not isinstance(file_id, str) or not file_id:
        return None, _bad(f"{where}.file.file_id: Field required")
    stored = files.get(file_id)
    if stored is None:  # unknown, deleted, or another key's (Files are scoped to the workspace)
        return None, Problem(404, "not_found_error", f"File not found: {file_id}")  # wording unverified
    if files.expired(stored):
        return None, Problem(404, "not_found_error", f"File {file_id} has expired.", code="file_expired")
    mime = stored.meta.get("mime_type", "")
    actual = stored.seen.media_type
    if kind == "image" and actual not in IMAGE_TYPES:
        return None, _bad(
            f"{where}: File {file_id} has mime type {mime}, which is not a supported image type"
        )  # unverified
    if kind == "document" and actual not in FILE_DOCUMENT_TYPES and mime not in FILE_DOCUMENT_TYPES:
        return None, _bad(
            f"{where}: File {file_id} has mime type {mime}, which is not supported in a document block"
        )  # unverified
    if kind == "image" and len(stored.data) > MAX_IMAGE_BYTES:
        return None, _bad(f"{where}: image exceeds 5 MB maximum: {len(stored.data)} bytes > {MAX_IMAGE_BYTES} bytes")
    return (stored.seen, stored.data), None
