"""Each provider's attachment limits, as data, and the check run on a request's parts before anything is sent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmbulk.attachments.media import IMAGE_TYPES, PDF, gif_frames, image_size, is_image, pdf_pages

MB = 1 << 20


@dataclass(frozen=True, slots=True)
class MediaLimits:
    """What one provider accepts of attachments in one request (None: no documented limit)."""

    types: frozenset[str]
    url_types: frozenset[str]  # media the provider fetches from an https:// URL itself
    max_image_bytes: int | None = None
    max_pdf_bytes: int | None = None
    max_images: int | None = None
    max_total_bytes: int | None = None  # every attachment of a request together (decoded)
    max_pdf_pages: int | None = None
    max_image_side: int | None = None  # pixels, either side
    animated_gif: bool = True


MEDIA_LIMITS = {
    # https://platform.openai.com/docs/guides/images-vision (PNG, JPEG, WebP, non-animated GIF; up to 50 MB
    # of payload and 500 images per request) and /docs/guides/pdf-files (100 pages, 32 MB per file).
    # Chat Completions takes an image by URL, a PDF only inline or by file id.
    "openai": MediaLimits(
        types=frozenset((*IMAGE_TYPES, PDF)), url_types=frozenset(IMAGE_TYPES), max_pdf_bytes=32 * MB,
        max_images=500, max_total_bytes=50 * MB, max_pdf_pages=100, animated_gif=False,
    ),
    # https://docs.anthropic.com/en/docs/build-with-claude/vision (JPEG, PNG, GIF, WebP; 5 MB each, at most
    # 8000x8000 px, 100 images per API request) and /pdf-support (32 MB per request, 100 pages).
    "anthropic": MediaLimits(
        types=frozenset((*IMAGE_TYPES, PDF)), url_types=frozenset((*IMAGE_TYPES, PDF)), max_image_bytes=5 * MB,
        max_pdf_bytes=32 * MB, max_images=100, max_total_bytes=32 * MB, max_pdf_pages=100, max_image_side=8000,
    ),
    # https://ai.google.dev/gemini-api/docs/image-understanding (PNG, JPEG, WebP, HEIC, HEIF; no GIF) and
    # /document-processing (PDF, 1000 pages); inline data at most 20 MB per request. URLs need the Files API.
    "gemini": MediaLimits(
        types=frozenset(("image/png", "image/jpeg", "image/webp", PDF)), url_types=frozenset(),
        max_total_bytes=20 * MB, max_pdf_pages=1000,
    ),
}  # fmt: skip


def problem(limits: MediaLimits, part: dict[str, Any], data: bytes | None) -> str | None:
    """Why one attachment cannot be sent to the provider, or None (`data` is None for a URL)."""
    media_type = part["media_type"]
    kind = "images" if is_image(media_type) else "PDFs"
    if media_type not in limits.types:
        return f"{media_type} is not accepted (it takes {', '.join(sorted(limits.types))})"
    if data is None:
        if media_type not in limits.url_types:
            return f"{kind} cannot be sent by URL here; download the file and give its local path"
        return None
    size = len(data)
    cap = limits.max_image_bytes if is_image(media_type) else limits.max_pdf_bytes
    if cap is not None and size > cap:
        return f"{size:,} bytes is over the {cap // MB} MB limit for {kind}"
    if media_type == "image/gif" and not limits.animated_gif and gif_frames(data) > 1:
        return "an animated GIF is not accepted; give one frame as PNG"
    if limits.max_image_side is not None and is_image(media_type):
        dimensions = image_size(data, media_type)
        if dimensions is not None and max(dimensions) > limits.max_image_side:
            return f"{dimensions[0]}x{dimensions[1]} px is over {limits.max_image_side} px a side"
    if media_type == PDF and limits.max_pdf_pages is not None:
        pages = pdf_pages(data)
        if pages is not None and pages > limits.max_pdf_pages:
            return f"{pages} pages is over the {limits.max_pdf_pages}-page limit"
    return None


def request_problem(limits: MediaLimits, parts: list[dict[str, Any]], total_bytes: int) -> str | None:
    """Why a request's attachments together cannot be sent, or None."""
    images = sum(1 for p in parts if is_image(p["media_type"]))
    if limits.max_images is not None and images > limits.max_images:
        return f"{images} images is over the {limits.max_images} images a request may hold"
    if limits.max_total_bytes is not None and total_bytes > limits.max_total_bytes:
        cap = limits.max_total_bytes // MB
        return f"its attachments total {total_bytes:,} bytes, over the {cap} MB a request may hold"
    return None
