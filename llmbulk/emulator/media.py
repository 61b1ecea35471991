"""What an attachment's bytes are: media type by magic bytes, image size in pixels, PDF page count.

The providers decide by the bytes, not by a name or a declared type (Anthropic answers "Image does
not match the provided media type"), so the emulator does too. Parsing stops at the headers: the
emulator never decodes pixels.
"""

from __future__ import annotations

import re
import struct

IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
PDF = "application/pdf"
_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")


def sniff(data: bytes) -> str | None:
    """The media type the bytes are, among the ones the emulator knows, or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:1024].lstrip().startswith(b"%PDF-") or b"%PDF-" in data[:1024]:
        return PDF
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypheif"):
        return "image/heic" if data[8:12].startswith(b"hei") else "image/heif"
    return None


def image_size(data: bytes, media_type: str) -> tuple[int, int] | None:
    """(width, height) from the image's header, or None when the header cannot be read."""
    try:
        if media_type == "image/png" and len(data) >= 24:
            return struct.unpack(">II", data[16:24])
        if media_type == "image/gif" and len(data) >= 10:
            return struct.unpack("<HH", data[6:10])
        if media_type == "image/webp":
            return _webp_size(data)
        if media_type == "image/jpeg":
            return _jpeg_size(data)
    except struct.error:
        return None
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    index = 2
    while index + 9 < len(data):
        if data[index] != 0xFF:
            return None
        marker = data[index + 1]
        length = struct.unpack(">H", data[index + 2 : index + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            height, width = struct.unpack(">HH", data[index + 5 : index + 9])
            return width, height
        index += 2 + length
    return None


def is_animated_gif(data: bytes) -> bool:
    """More than one image descriptor after the header: an animation (OpenAI takes non-animated GIFs)."""
    return data.count(b"\x00\x2c") > 1 and data.count(b"NETSCAPE2.0") > 0


def pdf_pages(data: bytes) -> int:
    """Page objects in the PDF (`/Type /Page`, not `/Pages`); enough for generated and simple PDFs."""
    return len(_PAGE.findall(data))


def extension_type(url: str) -> str:
    """The media type a URL's extension names (URL attachments are never fetched)."""
    path = url.split("?", 1)[0].split("#", 1)[0].lower()
    for ending, media_type in ((".png", "image/png"), (".jpg", "image/jpeg"), (".jpeg", "image/jpeg"),
                               (".gif", "image/gif"), (".webp", "image/webp"), (".pdf", PDF)):  # fmt: skip
        if path.endswith(ending):
            return media_type
    return "application/octet-stream"
