"""Image and file parts in an OpenAI batch line's body (Chat Completions and Responses), checked as
the endpoints check them; a refused line lands in the batch's error file with the endpoint's error.

Wording quoted from the API: `Invalid 'input[101].content[1].image_url'. Expected a base64-encoded
data URL with an image MIME type (e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), but got empty
base64-encoded bytes.` (anomalyco/opencode#23983), `... but got unsupported MIME type '…'`,
`Invalid base64 image_url.` (sipherxyz/comfyui-art-venture#75), `You uploaded an unsupported image.
Please make sure your image has of one the following formats: ['png', 'jpeg', 'gif', 'webp'].`
(vercel/ai#1544), `Expected a valid URL, but got a value with an invalid format.`
(openai/openai-python#1483). The file-part messages follow them [wording unverified].
"""

from __future__ import annotations

from typing import Any

from llmbulk.emulator import media
from llmbulk.emulator.parts import MB, Files, Seen, data_url, is_web_url
from llmbulk.emulator.rules import Problem

IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")  # Vision guide: PNG, JPEG, WEBP, non-animated GIF
MAX_PAYLOAD = 50 * MB  # Vision guide: "Up to 50 MB total payload size per request"
MAX_IMAGES = 500  # Vision guide: "Up to 500 individual image inputs per request"
MAX_PDF_BYTES = 32 * MB  # File inputs guide: files up to 32 MB per request
MAX_PDF_PAGES = 100  # File inputs guide: up to 100 pages
INPUT_PURPOSES = ("user_data", "assistants", "vision")  # File inputs guide uploads with purpose "user_data"
UNSUPPORTED_IMAGE = ("You uploaded an unsupported image. Please make sure your image has of one the following "
                     "formats: ['png', 'jpeg', 'gif', 'webp'].")  # fmt: skip
EXAMPLE = {
    "image": "data:image/png;base64,aW1nIGJ5dGVzIGhlcmU=",
    "pdf": "data:application/pdf;base64,SGVsbG8sIFdvcmxkIQ==",
}


def _bad(message: str, param: str | None = None, code: str | None = "invalid_value") -> Problem:
    return Problem(400, "invalid_request_error", message, param, code)


def openai_attachments(endpoint: str, body: dict[str, Any], files: Files) -> tuple[list[Seen], Problem | None]:
    """Every image/file part's attachment in order, or the first problem the endpoint reports."""
    key = "messages" if endpoint == "/v1/chat/completions" else "input" if endpoint == "/v1/responses" else None
    items = body.get(key) if key else None
    seen: list[Seen] = []
    images = payload = 0
    for i, item in enumerate(items if isinstance(items, list) else []):
        content = item.get("content") if isinstance(item, dict) else None
        for j, part in enumerate(content if isinstance(content, list) else []):
            found, problem = _part(part, f"{key}[{i}].content[{j}]", files)
            if problem is not None:
                return seen, problem
            if found is None:
                continue
            item_seen, data = found
            seen.append(item_seen)
            payload += len(data or b"")
            if item_seen.media_type in IMAGE_TYPES:
                images += 1
            if images > MAX_IMAGES:
                return seen, _bad(
                    f"Invalid '{key}': too many images: {images} > {MAX_IMAGES}.", key, None
                )  # unverified
            if payload > MAX_PAYLOAD:
                return seen, Problem(
                    413,
                    "invalid_request_error",
                    f"Request too large: {payload} bytes of images and files exceed the {MAX_PAYLOAD}-byte limit"
                    " per request.",
                )
    return seen, None


def _part(part: Any, where: str, files: Files) -> tuple[tuple[Seen, bytes | None] | None, Problem | None]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "image_url":
        spec = part.get("image_url")
        url = spec.get("url") if isinstance(spec, dict) else spec
        return _image_url(url, f"{where}.image_url.url")
    if kind == "input_image":
        if part.get("file_id"):
            return _file(part["file_id"], f"{where}.file_id", files, image=True)
        return _image_url(part.get("image_url"), f"{where}.image_url")
    if kind == "file":
        spec = part.get("file") if isinstance(part.get("file"), dict) else {}
        if spec.get("file_id"):
            return _file(spec["file_id"], f"{where}.file.file_id", files, image=False)
        return _file_data(spec.get("file_data"), f"{where}.file.file_data")
    if kind == "input_file":
        if part.get("file_id"):
            return _file(part["file_id"], f"{where}.file_id", files, image=False)
        if part.get("file_url"):
            return (Seen.url(part["file_url"]), None), None
        return _file_data(part.get("file_data"), f"{where}.file_data")
    return None, None


def _image_url(url: Any, where: str) -> tuple[tuple[Seen, bytes | None] | None, Problem | None]:
    if is_web_url(url):
        return (Seen.url(url), None), None
    parsed = data_url(url)
    expected = (
        f"Invalid '{where}'. Expected a base64-encoded data URL with an image MIME type (e.g. '{EXAMPLE['image']}')"
    )
    if parsed is None:
        return None, _bad(f"Invalid '{where}'. Expected a valid URL, but got a value with an invalid format.", where)
    declared, data = parsed
    if declared not in IMAGE_TYPES:
        return None, _bad(f"{expected}, but got unsupported MIME type '{declared}'.", where)
    if data is None:
        return None, _bad("Invalid base64 image_url.", where, None)
    if not data:
        return None, _bad(f"{expected}, but got empty base64-encoded bytes.", where)
    if media.sniff(data) not in IMAGE_TYPES or (media.sniff(data) == "image/gif" and media.is_animated_gif(data)):
        return None, _bad(
            UNSUPPORTED_IMAGE,
            None,
            "invalid_image_format",
        )
    return (Seen.of(data, declared), data), None


def _file_data(value: Any, where: str) -> tuple[tuple[Seen, bytes | None] | None, Problem | None]:
    parsed = data_url(value)
    expected = f"Invalid '{where}'. Expected a base64-encoded data URL with an application/pdf MIME type (e.g. '{EXAMPLE['pdf']}')"  # noqa: E501
    if parsed is None:
        return None, _bad(f"{expected}, but got a value with an invalid format.", where)
    declared, data = parsed
    if declared != media.PDF:
        return None, _bad(f"{expected}, but got unsupported MIME type '{declared}'.", where)
    if not data:
        return None, _bad(
            f"{expected}, but got {'empty' if data is not None else 'invalid'} base64-encoded bytes.", where
        )
    return _pdf(data, where)


def _pdf(data: bytes, where: str) -> tuple[tuple[Seen, bytes] | None, Problem | None]:
    if media.sniff(data) != media.PDF:
        return None, _bad(f"Invalid '{where}'. The file is not a valid PDF.", where, "invalid_file")  # unverified
    if len(data) > MAX_PDF_BYTES:
        return None, _bad(
            f"Invalid '{where}'. The file is {len(data)} bytes; PDF inputs are limited to {MAX_PDF_BYTES} bytes.",
            where,
            "file_too_large",
        )
    if media.pdf_pages(data) > MAX_PDF_PAGES:
        return None, _bad(
            f"Invalid '{where}'. The PDF has {media.pdf_pages(data)} pages; at most {MAX_PDF_PAGES} are supported.",
            where,
            "too_many_pages",
        )
    return (Seen.of(data, media.PDF), data), None


def _file(file_id: Any, where: str, files: Files,
          image: bool) -> tuple[tuple[Seen, bytes | None] | None, Problem | None]:  # fmt: skip
    stored = files.get(str(file_id))
    if stored is None or files.expired(stored):  # another project's file is "No such File object" too
        return None, Problem(404, "invalid_request_error", f"No such File object: {file_id}", where)
    purpose = stored.meta.get("purpose")
    if purpose not in INPUT_PURPOSES:
        return None, _bad(
            f"Invalid '{where}': file {file_id} has purpose '{purpose}'; files used as model input must have"
            " purpose 'user_data'.",
            where,
        )
    if image:
        if stored.seen.media_type not in IMAGE_TYPES:
            return None, _bad(
                UNSUPPORTED_IMAGE,
                None,
                "invalid_image_format",
            )
        return (stored.seen, stored.data), None
    return _pdf(stored.data, where)
