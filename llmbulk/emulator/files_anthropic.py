"""Anthropic's Files API under `/anthropic/v1/files`: upload, list, metadata, content, delete.

The Files API left beta (otari#1473 quotes the GA docs): anthropic 2.16 sends no beta header from
`client.files` nor, unless `betas=` is given, from `client.beta.files`, and pages both by `page` /
`next_page`. A list is `{data, next_page}`, files carry `expires_at`, and `before_id` / `after_id`
are a 400; with `anthropic-beta: files-api-2025-04-14` the beta shapes come back (no `expires_at`;
`has_more` / `first_id` / `last_id`, `after_id` / `before_id` cursors). A file belongs to the key
that uploaded it (`owners`); another key's file is "not found". Uploaded files are not downloadable
(only tool-generated ones are: SDK docstring of `FileNotDownloadableError`). Limit: 500 MB per file
(Files API guide).
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from llmbulk.emulator import media
from llmbulk.emulator.engine import Emulator, new_id
from llmbulk.emulator.http import emulator_of, int_query, page_after, page_before
from llmbulk.emulator.owners import owned_by, owner_of

PROVIDER = "anthropic"
FILES_BETA = "files-api-2025-04-14"
MAX_FILE_BYTES = 500 * 1024 * 1024  # Anthropic Files API guide: "Maximum file size: 500 MB"
EXPIRY_RANGE = (3600, 7_776_000)  # `expires_in_seconds` (SDK files.upload docstring: one hour to ninety days)


def _error(status: int, kind: str, message: str, code: str | None = None) -> JSONResponse:
    inner: dict[str, Any] = {"type": kind, "message": message}
    if code is not None:  # `error.details.error_code`, what the SDK's typed errors branch on
        inner["details"] = {"error_code": code}
    request_id = new_id("req_")
    body = {"type": "error", "error": inner, "request_id": request_id}
    return JSONResponse(body, status_code=status, headers={"request-id": request_id})


def _stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def has_files_beta(request: Request) -> bool:
    """Whether any `anthropic-beta` header (comma-separated, or repeated) names the Files API beta."""
    values = request.headers.getlist("anthropic-beta")
    return any(part.strip() == FILES_BETA for value in values for part in value.split(","))


def expired(emu: Emulator, meta: dict[str, Any]) -> bool:
    return meta.get("expires_at") is not None and emu.config.clock() >= meta["expires_at"]


def lookup(emu: Emulator, file_id: str, owner: str) -> dict[str, Any] | None:
    """The caller's live uploaded file with this id, or None (unknown, another key's, deleted)."""
    meta = emu.get_file(file_id) if file_id.startswith("file_") else None
    if meta is None or meta["provider"] != PROVIDER or not owned_by(meta, owner):
        return None
    return meta


def not_found(file_id: str) -> JSONResponse:
    return _error(404, "not_found_error", f"File not found: {file_id}")  # wording unverified


def file_json(meta: dict[str, Any], beta: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": meta["id"], "type": "file", "filename": meta["filename"], "mime_type": meta["mime_type"],
        "size_bytes": meta["bytes"], "created_at": _stamp(meta["created_at"]), "downloadable": False,
    }  # fmt: skip
    if not beta:
        expires = meta.get("expires_at")
        body["expires_at"] = _stamp(expires) if expires is not None else None
    return body


# ---- handlers -------------------------------------------------------------------------------------


async def upload(request: Request) -> Response:
    emu = emulator_of(request)
    form = await request.form(max_part_size=MAX_FILE_BYTES + 1)
    part = form.get("file")
    if part is None or isinstance(part, str):
        return _error(400, "invalid_request_error", "file: Field required")
    seconds = form.get("expires_in_seconds")
    low, high = EXPIRY_RANGE
    if isinstance(seconds, str) and not (seconds.isdigit() and low <= int(seconds) <= high):
        return _error(400, "invalid_request_error", f"expires_in_seconds: Input should be between {low} and {high}")
    file_id = new_id("file_")
    path = emu.file_path(file_id)
    with open(path, "wb") as out:
        await part.seek(0)
        shutil.copyfileobj(part.file, out, 1 << 20)
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        path.unlink()
        return _error(413, "request_too_large", f"File exceeds the maximum size of {MAX_FILE_BYTES} bytes.")
    with open(path, "rb") as fh:
        sniffed = media.sniff(fh.read(1024))
    declared = (part.content_type or "").split(";")[0].strip()
    mime = declared if declared and declared != "application/octet-stream" else (sniffed or "application/octet-stream")
    now = emu.config.clock()
    meta: dict[str, Any] = {
        "filename": (part.filename or "").rsplit("/", 1)[-1] or "unnamed", "mime_type": mime,
        "purpose": "user_data", "created_at": now, "owner": owner_of(request),
        "expires_at": now + int(seconds) if isinstance(seconds, str) else None,
    }  # fmt: skip
    return JSONResponse(file_json(emu.add_file(PROVIDER, file_id, meta), has_files_beta(request)))


async def list_files(request: Request) -> Response:
    """Newest first, `limit` 1..1000 (default 20), `page` cursors (`next_page`) or `ids[]`. With the beta
    header the answer also carries the beta shape's `has_more` / `first_id` / `last_id` and takes its
    `after_id` / `before_id` cursors; without it those cursors are a 400."""
    emu, beta, owner = emulator_of(request), has_files_beta(request), owner_of(request)
    limit = int_query(request, "limit", 20, 1, 1000)
    if isinstance(limit, str):
        return _error(400, "invalid_request_error", limit)
    files = [m for m in emu.list_files(PROVIDER)[::-1] if owned_by(m, owner) and m.get("owner") is not None]
    if not beta:
        for name in ("before_id", "after_id"):
            if name in request.query_params:
                return _error(400, "invalid_request_error", f"{name}: Extra inputs are not permitted")
    ids = request.query_params.getlist("ids[]") or request.query_params.getlist("ids")
    before, cursor = request.query_params.get("before_id"), request.query_params.get("page")
    if ids:
        chosen, more = [m for m in files if m["id"] in set(ids)], False
    elif before is not None and request.query_params.get("after_id") is None:
        chosen, more = page_before(files, before, limit)
    else:
        after = cursor.removeprefix("page_") if cursor else request.query_params.get("after_id")
        chosen, more = page_after(files, after, limit)
    page = [file_json(m, beta) for m in chosen]
    body: dict[str, Any] = {"data": page, "next_page": f"page_{page[-1]['id']}" if more and page else None}
    if beta:
        body.update(has_more=more, first_id=page[0]["id"] if page else None,
                    last_id=page[-1]["id"] if page else None)  # fmt: skip
    return JSONResponse(body)


async def retrieve(request: Request) -> Response:
    emu, file_id = emulator_of(request), request.path_params["file_id"]
    meta = lookup(emu, file_id, owner_of(request))
    if meta is None:
        return not_found(file_id)
    return JSONResponse(file_json(meta, has_files_beta(request)))


async def content(request: Request) -> Response:
    emu, file_id = emulator_of(request), request.path_params["file_id"]
    meta = lookup(emu, file_id, owner_of(request))
    if meta is None:
        return not_found(file_id)
    if expired(emu, meta):
        return _error(404, "not_found_error", f"File {file_id} has expired.", "file_expired")
    return _error(400, "invalid_request_error", f"File {file_id} is not downloadable.", "file_not_downloadable")


async def delete(request: Request) -> Response:
    emu, file_id = emulator_of(request), request.path_params["file_id"]
    if lookup(emu, file_id, owner_of(request)) is None or not emu.delete_file(file_id):
        return not_found(file_id)
    return JSONResponse({"id": file_id, "type": "file_deleted"})
