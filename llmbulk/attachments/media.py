"""Media types by magic bytes (never by file extension), and cheap facts about a file's content."""

from __future__ import annotations

import re
import struct

PDF = "application/pdf"
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
MEDIA_TYPES = (*IMAGE_TYPES, PDF)
# For URLs only (the bytes are the provider's to fetch): the extension is all there is to go by.
EXTENSION_TYPES = {
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
    ".webp": "image/webp", ".pdf": PDF,
}  # fmt: skip
HEAD_BYTES = 16  # enough bytes to tell every supported type


def sniff(head: bytes) -> str | None:
    """The media type the first bytes of a file announce, or None for anything unsupported."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"%PDF-"):
        return PDF
    return None


def is_image(media_type: str) -> bool:
    return media_type.startswith("image/")


_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")


def pdf_pages(data: bytes) -> int | None:
    """Pages of a PDF where cheap to count (page objects in the clear); None when hidden in compressed streams."""
    pages = len(_PAGE.findall(data))
    return pages or None


def image_size(data: bytes, media_type: str) -> tuple[int, int] | None:
    """(width, height) in pixels for PNG, GIF and JPEG headers; None when the header does not say."""
    if media_type == "image/png" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if media_type == "image/gif" and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return width, height
    if media_type == "image/jpeg":
        return _jpeg_size(data)
    return None


def gif_frames(data: bytes) -> int:
    """Image descriptors in a GIF (more than one: animated), by a scan of its blocks."""
    if len(data) < 13:
        return 0
    pos = 13
    if data[10] & 0x80:  # global colour table
        pos += 3 * (2 ** ((data[10] & 7) + 1))
    frames = 0
    while pos < len(data):
        block = data[pos]
        if block == 0x3B:  # trailer
            break
        if block == 0x21:  # extension: label, then sub-blocks
            pos += 2
        elif block == 0x2C:  # image descriptor, optional local colour table, LZW size, sub-blocks
            frames += 1
            if pos + 10 > len(data):
                break
            flags = data[pos + 9]
            pos += 10 + (3 * (2 ** ((flags & 7) + 1)) if flags & 0x80 else 0) + 1
        else:
            break
        while pos < len(data) and data[pos]:
            pos += data[pos] + 1
        pos += 1
    return frames


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 9 < len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        pos += 2 + length
    return None
