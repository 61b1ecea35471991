"""Neutral attachment parts → each provider's own content parts, checked against its limits as they are built.

Called by the providers' line encoders only for messages whose content is a list; text-only tasks never
come here. Bytes are read (and base64-encoded) here, at encode time, so a request line holds exactly
what is sent and packing counts it.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from llmbulk.attachments import ATTACHMENT
from llmbulk.attachments.limits import MEDIA_LIMITS, problem, request_problem
from llmbulk.attachments.media import PDF, is_image
from llmbulk.attachments.sources import file_name, is_url, load
from llmbulk.errors import InputError
from llmbulk.models import Task

Native = Callable[[dict[str, Any], bytes | None], dict[str, Any]]
LIMIT_HINT = "shrink or split the file, or drop it from this row"


def has_parts(content: list[Any]) -> bool:
    """Whether a message's parts list holds an attachment."""
    return any(_is_attachment(p) for p in content)


def native_messages(task: Task, style: str) -> list[dict[str, Any]]:
    """The task's messages with each attachment part in the provider's form (`openai_chat`,
    `openai_responses` or `anthropic`); messages without a parts list are returned as they are."""
    if all(type(m.get("content")) is not list for m in task.messages):
        return task.messages
    provider, convert, text = _STYLES[style]
    parts = [p for m in task.messages if type(m.get("content")) is list for p in _attachments(m["content"])]
    if not parts:
        return task.messages
    data = _checked(task, provider, parts)
    out = []
    for message in task.messages:
        content = message.get("content")
        if type(content) is list:
            content = [
                convert(p, data[id(p)]) if _is_attachment(p) else text(p) if isinstance(p, dict) else p for p in content
            ]
            message = {**message, "content": content}
        out.append(message)
    return out


def gemini_parts(task: Task, content: list[Any]) -> list[dict[str, Any]]:
    """One message's parts list as Gemini `parts` (text and inlineData)."""
    parts = _attachments(content)
    data = _checked(task, "gemini", parts) if parts else {}
    out: list[dict[str, Any]] = []
    for part in content:
        if _is_attachment(part) and part.get("ref"):
            out.append({"fileData": {"mimeType": part["media_type"], "fileUri": part["ref"]["uri"]}})
        elif _is_attachment(part):
            payload = data[id(part)]
            assert payload is not None  # URLs are refused for Gemini by its limits
            out.append({"inlineData": {"mimeType": part["media_type"], "data": _b64(payload)}})
        elif isinstance(part, dict):
            out.append({"text": str(part.get("text") or "")})
        else:
            out.append({"text": str(part)})
    return out


def check_file(task: Task, provider: str, part: dict[str, Any]) -> None:
    """One attachment against the provider's per-file limits (before it is uploaded), naming the row."""
    why = problem(MEDIA_LIMITS[provider], part, None if is_url(part) else load(part))
    if why is not None:
        raise InputError(f"{_row(task)}: attachment {part['source']}: {why} for {provider}", hint=LIMIT_HINT)


def _checked(task: Task, provider: str, parts: list[dict[str, Any]]) -> dict[int, bytes | None]:
    """Every part's bytes (None for a URL), each part and the request checked against the provider's limits."""
    limits = MEDIA_LIMITS[provider]
    data: dict[int, bytes | None] = {}
    total = 0
    for part in parts:
        payload = None if is_url(part) else load(part)
        why = problem(limits, part, payload)
        if why is not None:
            raise InputError(f"{_row(task)}: attachment {part['source']}: {why} for {provider}", hint=LIMIT_HINT)
        data[id(part)] = payload
        if not part.get("ref"):  # a referenced file is not part of the request's bytes
            total += len(payload or b"")
    why = request_problem(limits, parts, total)
    if why is not None:
        raise InputError(f"{_row(task)}: {why} for {provider}", hint=LIMIT_HINT)
    return data


def _row(task: Task) -> str:
    return f"row {task.row_index + 1} (id {task.key!r})"


def _attachments(content: list[Any]) -> list[dict[str, Any]]:
    return [p for p in content if _is_attachment(p)]


def _is_attachment(part: Any) -> bool:
    return isinstance(part, dict) and part.get("type") == ATTACHMENT


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _data_url(part: dict[str, Any], data: bytes) -> str:
    return f"data:{part['media_type']};base64,{_b64(data)}"


def _openai_chat(part: dict[str, Any], data: bytes | None) -> dict[str, Any]:
    if part.get("ref"):  # PDFs only: Chat Completions cannot reference an image by file id
        return {"type": "file", "file": {"file_id": part["ref"]["file_id"]}}
    if is_image(part["media_type"]):
        return {"type": "image_url", "image_url": {"url": part["source"] if data is None else _data_url(part, data)}}
    assert data is not None  # a PDF by URL is refused by the limits
    return {"type": "file", "file": {"filename": file_name(part), "file_data": _data_url(part, data)}}


def _openai_responses(part: dict[str, Any], data: bytes | None) -> dict[str, Any]:
    ref = part.get("ref")
    if ref and is_image(part["media_type"]):
        return {"type": "input_image", "file_id": ref["file_id"], "detail": "auto"}
    if ref:
        return {"type": "input_file", "file_id": ref["file_id"]}
    if is_image(part["media_type"]):
        url = part["source"] if data is None else _data_url(part, data)
        return {"type": "input_image", "image_url": url, "detail": "auto"}  # `detail` is required by the SDK type
    if data is None:
        return {"type": "input_file", "file_url": part["source"]}
    return {"type": "input_file", "filename": file_name(part), "file_data": _data_url(part, data)}


def _anthropic(part: dict[str, Any], data: bytes | None) -> dict[str, Any]:
    block = "document" if part["media_type"] == PDF else "image"
    if part.get("ref"):
        return {"type": block, "source": {"type": "file", "file_id": part["ref"]["file_id"]}}
    if data is None:
        return {"type": block, "source": {"type": "url", "url": part["source"]}}
    return {"type": block, "source": {"type": "base64", "media_type": part["media_type"], "data": _b64(data)}}


def _same(part: Any) -> Any:
    return part


def _input_text(part: dict[str, Any]) -> dict[str, Any]:
    return {**part, "type": "input_text"} if part.get("type") == "text" else part


_STYLES: dict[str, tuple[str, Native, Callable[[Any], Any]]] = {
    "openai_chat": ("openai", _openai_chat, _same),
    "openai_responses": ("openai", _openai_responses, _input_text),
    "anthropic": ("anthropic", _anthropic, _same),
}
