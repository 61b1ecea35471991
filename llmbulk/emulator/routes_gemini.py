"""Gemini Batch Mode routes (Developer API), under `/gemini/{v1,v1beta}`, camelCase everywhere.

Resumable uploads answer with an absolute `x-goog-upload-url` on the emulator itself and are
authorised by the upload id, not a key (the SDK sends none on chunks). Batch results are a file
of `{"key", "response"|"error"}` lines in input order (as the batch-mode docs promise; the fault
plan's `shuffle_results` breaks it on purpose). Per-item and operation errors are
`google.rpc.Status` objects: `code` is a gRPC code (3 INVALID_ARGUMENT, 8 RESOURCE_EXHAUSTED, …).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from llmbulk import catalog
from llmbulk.emulator import rules
from llmbulk.emulator.engine import Emulator, new_id, ordered
from llmbulk.emulator.http import INVALID, base_url, emulator_of, int_query, json_body
from llmbulk.emulator.owners import owned_by, owner_of
from llmbulk.emulator.parts import Files
from llmbulk.emulator.parts_gemini import gemini_attachments
from llmbulk.emulator.quotas import QuotaRefused
from llmbulk.emulator.replies import NeutralRequest, respond

PROVIDER = "gemini"
VERSIONS = ("v1", "v1beta")
STATES = {
    "validating": "BATCH_STATE_PENDING", "failed": "BATCH_STATE_FAILED", "running": "BATCH_STATE_RUNNING",
    "finalizing": "BATCH_STATE_RUNNING", "ended": "BATCH_STATE_SUCCEEDED", "expired": "BATCH_STATE_EXPIRED",
    "cancelling": "BATCH_STATE_RUNNING", "cancelled": "BATCH_STATE_CANCELLED",
}  # fmt: skip
# gRPC codes (google.rpc.Code): 1 CANCELLED, 3 INVALID_ARGUMENT, 4 DEADLINE_EXCEEDED,
# 8 RESOURCE_EXHAUSTED, 13 INTERNAL.
ITEM_ERRORS = {
    "rate_limit": (8, "Resource has been exhausted (e.g. check quota)."),
    "server_error": (13, "An internal error has occurred."),
    "invalid_request": (3, "Request contains an invalid argument."),
    "timeout": (4, "Deadline exceeded."),
}
HTTP_STATUSES = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 409: "ABORTED",
    429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}  # fmt: skip
CHUNK = 8 * 1024 * 1024
FILE_TTL = 48 * 3600  # "Files are stored for 48 hours" (Gemini Files API guide)
FILE_PAGE = (10, 100)  # files.list pageSize: default 10, at most 100 (Gemini API reference, files.list)
BATCH_PAGE = (50, 1000)
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"


def error(status: int, message: str, code: str, details: list[dict[str, Any]] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"code": status, "message": message, "status": code}
    if details:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status)


def unknown_route(request: Request) -> Response:
    return error(404, f"Method not found: {request.method} {request.url.path.removeprefix('/gemini')}", "NOT_FOUND")


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


Handler = Callable[[Request], Awaitable[Response]]


def keyed(handler: Handler) -> Handler:
    """`x-goog-api-key` (or `?key=`). None → 403 PERMISSION_DENIED; a wrong one → 400 INVALID_ARGUMENT
    with `details[].reason = API_KEY_INVALID` (Google API error model, ai.google.dev troubleshooting)."""

    async def checked(request: Request) -> Response:
        if request.path_params.get("version") not in VERSIONS:
            return unknown_route(request)
        key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
        if not key:
            message = ("Method doesn't allow unregistered callers (callers without established identity). "
                       "Please use API Key or other form of API consumer identity to call this API.")  # fmt: skip
            return error(403, message, "PERMISSION_DENIED")
        expected = emulator_of(request).config.api_key
        if expected is not None and key != expected:
            info = {"@type": ERROR_INFO, "reason": "API_KEY_INVALID", "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"}}  # fmt: skip
            return error(400, "API key not valid. Please pass a valid API key.", "INVALID_ARGUMENT", [info])
        return await handler(request)

    return checked


def _status(code: int, message: str) -> dict[str, Any]:
    """A google.rpc.Status (code + message; no `details`, which the SDK's JobError types as strings)."""
    return {"code": code, "message": message}


# ---- results --------------------------------------------------------------------------------------


class GeminiCodec:
    """Generates the `files/batch-<id>` results file (or inline responses) for a finished batch."""

    whole_batch_failures = True
    token_limits = False
    input_order = True  # "in the same order as the input" (batch-mode docs)

    def http_error(self, status: int, message: str) -> Response:
        """An injected HTTP fault with the canonical status name for that HTTP code."""
        return error(status, message, HTTP_STATUSES.get(status, "UNKNOWN"))

    def results(self, emu: Emulator, batch: dict[str, Any], done: float, reason: str) -> dict[str, Any]:
        out_id = f"files/batch-{batch['id'].split('/')[-1]}"
        counts = {"succeeded": 0, "failed": 0}
        with open(emu.file_path(out_id), "wb") as out:
            for line in ordered(emu, PROVIDER, self._lines(emu, batch, done, reason, counts)):
                out.write(line)
        if batch.get("inline"):
            inlined = [_inlined(orjson.loads(line)) for line in emu.file_path(out_id).read_bytes().splitlines()]
            emu.file_path(out_id).unlink()
            return {"counts": counts, "inlined": inlined}
        meta = {"display_name": out_id.split("/")[-1], "mime_type": "application/jsonl", "purpose": "batch_output",
                "sha256": _sha256(emu.file_path(out_id))}  # fmt: skip
        emu.add_file(PROVIDER, out_id, meta)
        return {"counts": counts, "file": out_id}

    def _lines(self, emu: Emulator, batch: dict[str, Any], done: float, reason: str,
               counts: dict[str, int]) -> Iterator[bytes]:  # fmt: skip
        files = Files(emu, PROVIDER, batch.get("owner"))
        for data in _requests(emu, batch):
            key = data.get("key") or (data.get("metadata") or {}).get("key") or ""
            status = self._failure(emu, batch, data, key, done, reason)
            seen: list[tuple[str, str]] = []
            if status is None:
                found, status = gemini_attachments(data["request"], files)
                seen = [(s.media_type, s.sha256) for s in found]
            counts["failed" if status else "succeeded"] += 1
            if status is not None:
                yield orjson.dumps({"key": key, "error": status}) + b"\n"
            else:
                answer = _answer(emu, batch["model"], data["request"], key, seen)
                yield orjson.dumps({"key": key, "response": answer}) + b"\n"

    def _failure(self, emu: Emulator, batch: dict[str, Any], data: dict[str, Any], key: str, done: float,
                 reason: str) -> dict[str, Any] | None:  # fmt: skip
        if not emu.finished_by(key, done):
            if reason == "cancelled":
                return _status(1, "The batch was cancelled before this request ran.")
            return _status(4, "The batch expired before this request ran.")
        problem = rules.gemini_request(data.get("request"), batch["model"])
        if problem is not None:
            return _status(3, problem.message)
        kind = emu.item_error(key)
        return None if kind is None else _status(*ITEM_ERRORS[kind])


def _inlined(data: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"metadata": {"key": data["key"]}}
    if "response" in data:
        entry["response"] = data["response"]
    else:
        entry["error"] = data["error"]
    return entry


def _requests(emu: Emulator, batch: dict[str, Any]) -> Iterator[dict[str, Any]]:
    with open(emu.file_path(batch["input_file"]), "rb") as fh:
        for line in fh:
            if line.strip():
                yield orjson.loads(line)


def _text(content: dict[str, Any]) -> str:
    return " ".join(str(p.get("text", "")) for p in content.get("parts") or [])


def _config(request: dict[str, Any]) -> dict[str, Any]:
    return request.get("generationConfig") or request.get("generation_config") or {}


def _answer(emu: Emulator, model: str, request: dict[str, Any], key: str,
            attachments: list[tuple[str, str]]) -> dict[str, Any]:  # fmt: skip
    config = _config(request)
    messages = [{"role": c.get("role", "user"), "content": _text(c)} for c in request.get("contents") or []]
    system = request.get("systemInstruction") or request.get("system_instruction")
    schema = config.get("responseSchema") or config.get("responseJsonSchema")
    limit = config.get("maxOutputTokens", config.get("max_output_tokens"))
    reply = respond(NeutralRequest(model, messages, _text(system) if system else None, limit, schema,
                                   attachments=attachments), emu.invalid_json(key))  # fmt: skip
    return {
        "candidates": [{"content": {"role": "model", "parts": [{"text": reply.text}]},
                        "finishReason": "STOP" if reply.finish_reason == "stop" else "MAX_TOKENS", "index": 0}],
        "usageMetadata": {"promptTokenCount": reply.input_tokens, "candidatesTokenCount": reply.output_tokens,
                          "totalTokenCount": reply.input_tokens + reply.output_tokens},
        "modelVersion": model,
        "responseId": new_id(""),
    }  # fmt: skip


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return base64.b64encode(digest.digest()).decode()


# ---- objects --------------------------------------------------------------------------------------


def file_json(meta: dict[str, Any], base: str, version: str) -> dict[str, Any]:
    """A File; `sha256Hash` is the base64 SHA-256 of the bytes (Gemini API reference, File)."""
    created = rfc3339(meta["created_at"])
    body = {
        "name": meta["id"], "displayName": meta.get("display_name", ""), "mimeType": meta.get("mime_type", ""),
        "sizeBytes": str(meta["bytes"]), "createTime": created, "updateTime": created,
        "expirationTime": rfc3339(meta["created_at"] + FILE_TTL), "sha256Hash": meta.get("sha256", ""),
        "uri": f"{base}/{version}/{meta['id']}", "state": "ACTIVE",
        "source": "GENERATED" if meta.get("purpose") == "batch_output" else "UPLOADED",
    }  # fmt: skip
    if meta.get("purpose") == "batch_output":
        body["downloadUri"] = f"{base}/download/{version}/{meta['id']}:download?alt=media"
    return body


def operation_json(emu: Emulator, batch: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    phase = emu.phase(batch, now)
    total = batch["total"]
    results = batch.get("results") or {}
    if results:
        ok, failed = results["counts"]["succeeded"], results["counts"]["failed"]
    else:
        ok = int(total * emu.fraction(batch)) if phase == "running" else 0
        failed = 0
    source = {"fileName": batch["input_file"]} if not batch.get("inline") else {"requests": {}}
    metadata: dict[str, Any] = {
        "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
        "name": batch["id"], "model": f"models/{batch['model']}", "displayName": batch.get("display_name") or "",
        "inputConfig": source, "state": STATES[phase], "createTime": rfc3339(batch["created_at"]),
        "updateTime": rfc3339(emu.config.clock()),
        "batchStats": {"requestCount": str(total), "successfulRequestCount": str(ok),
                       "failedRequestCount": str(failed), "pendingRequestCount": str(max(0, total - ok - failed))},
    }  # fmt: skip
    body: dict[str, Any] = {"name": batch["id"], "metadata": metadata,
                            "done": phase in ("ended", "failed", "expired", "cancelled")}  # fmt: skip
    if body["done"]:
        metadata["endTime"] = rfc3339(max(batch["ran_at"], emu.cancel_time(batch, now) or 0))
    if results and emu.results_hidden(batch["id"]):  # SUCCEEDED before the output is visible
        results = {}
    if results:
        output = {"responsesFile": results["file"]} if "file" in results else {
            "inlinedResponses": {"inlinedResponses": results["inlined"]}}  # fmt: skip
        metadata["output"] = output
        body["response"] = {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput",
            **output,
        }
    if phase == "failed":
        body["error"] = _status(3, batch.get("failure") or "The batch input is invalid.")
    return body


def _base(request: Request) -> str:
    return base_url(request, "/gemini")


def expired(emu: Emulator, meta: dict[str, Any]) -> bool:
    """An uploaded file is gone 48 h after upload (results files live with their batch)."""
    return meta.get("purpose") == "input" and emu.config.clock() >= meta["created_at"] + FILE_TTL


def no_permission(name: str) -> Response:
    """Another key's file, or an expired one: the API's 403 (google-gemini/deprecated-generative-ai-python#692)."""
    message = f"You do not have permission to access the File {name.removeprefix('files/')} or it may not exist."
    return error(403, message, "PERMISSION_DENIED")


def _not_found() -> Response:
    return error(404, "Requested entity was not found.", "NOT_FOUND")


# ---- uploads --------------------------------------------------------------------------------------


async def upload(request: Request) -> Response:
    """One URL for both steps: the start (keyed) and the chunks (authorised by their upload id)."""
    if request.query_params.get("upload_id"):
        return await _upload_chunk(request)
    return await keyed(_start_upload)(request)


async def _start_upload(request: Request) -> Response:
    emu = emulator_of(request)
    if request.headers.get("x-goog-upload-command", "").lower() != "start":
        return error(400, "Expected X-Goog-Upload-Command: start.", "INVALID_ARGUMENT")
    body = await json_body(request)
    info = (body.get("file") if isinstance(body, dict) else None) or {}
    upload_id = new_id("")
    emu.sessions[upload_id] = {
        "display_name": info.get("displayName") or info.get("display_name") or "",
        "mime_type": info.get("mimeType") or info.get("mime_type") or request.headers.get(
            "x-goog-upload-header-content-type", ""),
        "received": 0, "file_id": f"files/{new_id('')[:16]}", "sha256": hashlib.sha256(),
        "owner": owner_of(request),
    }  # fmt: skip
    emu.file_path(emu.sessions[upload_id]["file_id"]).write_bytes(b"")
    version = request.path_params["version"]
    url = f"{_base(request)}/upload/{version}/files?upload_id={upload_id}&upload_protocol=resumable"
    return Response(status_code=200, headers={"x-goog-upload-url": url, "x-goog-upload-status": "active"})


async def _upload_chunk(request: Request) -> Response:
    emu = emulator_of(request)
    upload_id = request.query_params.get("upload_id", "")
    state = emu.sessions.get(upload_id)
    if state is None:
        return error(404, "Upload session not found.", "NOT_FOUND")
    offset = int(request.headers.get("x-goog-upload-offset") or 0)
    if offset != state["received"]:
        return Response(status_code=400, headers={"x-goog-upload-status": "active"})
    with open(emu.file_path(state["file_id"]), "ab") as out:
        async for chunk in request.stream():
            out.write(chunk)
            state["sha256"].update(chunk)
            state["received"] += len(chunk)
    if "finalize" not in request.headers.get("x-goog-upload-command", ""):
        return Response(status_code=200, headers={"x-goog-upload-status": "active"})
    info = {"display_name": state["display_name"], "mime_type": state["mime_type"], "purpose": "input",
            "sha256": base64.b64encode(state["sha256"].digest()).decode(), "owner": state["owner"]}  # fmt: skip
    meta = emu.add_file(PROVIDER, state["file_id"], info)
    emu.sessions.pop(upload_id, None)
    body = {"file": file_json(meta, _base(request), request.path_params["version"])}
    return JSONResponse(body, headers={"x-goog-upload-status": "final"})


# ---- batches --------------------------------------------------------------------------------------


def _model_problem(emu: Emulator, model: str, version: str, method: str) -> Response | None:
    """An unknown model, or one without generateContent: 404 NOT_FOUND, as the API answers."""
    if emu.catalog.serves(PROVIDER, model, catalog.GEMINI_GENERATE):
        return None
    message = (f"models/{model} is not found for API version {version}, or is not supported for {method}. "
               "Call ListModels to see the list of available models and their supported methods.")  # fmt: skip
    return error(404, message, "NOT_FOUND")


async def model_action(request: Request) -> Response:
    """`models/{m}:batchGenerateContent` and `models/{m}:countTokens` (one path pattern in Starlette)."""
    model, _, method = request.path_params["rest"].partition(":")
    if method == "batchGenerateContent" and request.method == "POST":
        return await create_batch(request, model)
    if method == "countTokens" and request.method == "POST":
        return await count_tokens(request, model)
    return unknown_route(request)


async def create_batch(request: Request, model: str) -> Response:
    emu, version = emulator_of(request), request.path_params["version"]
    body = await json_body(request)
    if body is INVALID or not isinstance(body, dict):
        return error(400, "Invalid JSON payload received.", "INVALID_ARGUMENT")
    denied = _model_problem(emu, model, version, "batchGenerateContent")
    if denied is not None:
        return denied
    spec = body.get("batch") or {}
    display_name = spec.get("displayName") or spec.get("display_name")
    if not display_name:  # the Batch resource's display_name is REQUIRED (API reference, GenerateContentBatch)
        return error(400, "* BatchGenerateContentRequest.batch.display_name: display_name is required\n",
                     "INVALID_ARGUMENT")  # fmt: skip
    source = spec.get("inputConfig") or spec.get("input_config") or {}
    record: dict[str, Any] = {"model": model, "display_name": display_name, "owner": owner_of(request)}
    file_name = source.get("fileName") or source.get("file_name")
    if file_name:
        meta = emu.get_file(file_name)
        if meta is None or meta["provider"] != PROVIDER or not owned_by(meta, record["owner"]):
            return error(404, f"File {file_name} not found.", "NOT_FOUND")
        failure, total = _validate(emu, file_name)
        record.update(input_file=file_name, total=total, failure=failure)
        if failure:
            record["validation_errors"] = [{"message": failure}]
    elif "requests" in source:
        problem = _write_inline(emu, source, record)
        if problem is not None:
            return problem
    else:
        return error(400, "batch.inputConfig must have fileName or requests.", "INVALID_ARGUMENT")
    try:
        batch = emu.create_batch(PROVIDER, f"batches/{new_id('')[:20]}", record)
    except QuotaRefused as refused:
        return emu.codecs[PROVIDER].http_error(429, refused.message)
    return JSONResponse(operation_json(emu, batch, now=batch["created_at"]))


def _write_inline(emu: Emulator, source: dict[str, Any], record: dict[str, Any]) -> Response | None:
    """Inline requests parse with the create call, so an unknown field is a 400 there (proto JSON)."""
    requests = (source.get("requests") or {}).get("requests") or []
    if not requests:
        return error(400, "Batch requests must not be empty.", "INVALID_ARGUMENT")
    for index, item in enumerate(requests):
        unknown = rules.gemini_unknown_field((item or {}).get("request"))
        if unknown is not None:
            where = f"batch.input_config.requests.requests[{index}].request"
            unknown = unknown.replace(" at '", f" at '{where}.") if " at '" in unknown else f"{unknown} at '{where}'"
            return error(400, f"Invalid JSON payload received. Unknown name {unknown}: Cannot find field.",
                         "INVALID_ARGUMENT")  # fmt: skip
    inline_id = f"files/inline-{new_id('')[:16]}"
    with open(emu.file_path(inline_id), "wb") as out:
        for item in requests:
            key = (item.get("metadata") or {}).get("key", "")
            out.write(orjson.dumps({"key": key, "request": item.get("request") or {}}) + b"\n")
    record.update(input_file=inline_id, total=len(requests), inline=True)
    return None


async def count_tokens(request: Request, model: str) -> Response:
    """`{"totalTokens": n}` for `contents` or a whole `generateContentRequest` (API reference, countTokens)."""
    emu, version = emulator_of(request), request.path_params["version"]
    body = await json_body(request)
    if body is INVALID or not isinstance(body, dict):
        return error(400, "Invalid JSON payload received.", "INVALID_ARGUMENT")
    denied = _model_problem(emu, model, version, "countTokens")
    if denied is not None:
        return denied
    inner = body.get("generateContentRequest") or body.get("generate_content_request") or body
    contents = inner.get("contents") if isinstance(inner, dict) else None
    if not contents:
        return error(400, "* CountTokensRequest.contents: contents is not specified\n", "INVALID_ARGUMENT")
    tokens = max(1, len(orjson.dumps([contents, inner.get("systemInstruction")])) // 4)
    return JSONResponse({"totalTokens": tokens, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": tokens}]})


async def get_batch(request: Request) -> Response:
    emu = emulator_of(request)
    batch = emu.get_batch(f"batches/{request.path_params['batch']}")
    if batch is None:
        return _not_found()
    return JSONResponse(operation_json(emu, batch))


async def list_batches(request: Request) -> Response:
    emu = emulator_of(request)
    size = _page_size(request, *BATCH_PAGE)
    if isinstance(size, Response):
        return size
    start = int(request.query_params.get("pageToken") or 0)
    batches = emu.list_batches(PROVIDER)
    page = [operation_json(emu, emu.get_batch(b["id"]) or b) for b in batches[start : start + size]]
    for op in page:  # the listing omits inlined responses
        op["metadata"].get("output", {}).pop("inlinedResponses", None)
        op.pop("response", None)
    body: dict[str, Any] = {"operations": page}
    if start + size < len(batches):
        body["nextPageToken"] = str(start + size)
    return JSONResponse(body)


def _page_size(request: Request, default: int, high: int) -> int | Response:
    """pageSize: negative is INVALID_ARGUMENT; above the maximum it is coerced down (AIP-158)."""
    size = int_query(request, "pageSize", default, 0, 2**31)
    if isinstance(size, str):
        return error(400, f"Invalid pageSize: {size}", "INVALID_ARGUMENT")
    return min(size, high) or default


async def batch_action(request: Request) -> Response:
    emu = emulator_of(request)
    name, _, action = request.path_params["rest"].partition(":")
    batch = emu.get_batch(f"batches/{name}")
    if batch is None:
        return _not_found()
    if action == "cancel":
        emu.cancel_batch(batch["id"])
        return JSONResponse({})
    return unknown_route(request)


async def delete_batch(request: Request) -> Response:
    emu, name = emulator_of(request), f"batches/{request.path_params['batch']}"
    if emu.get_batch(name) is None:
        return _not_found()
    emu.delete_batch(name)
    emu.audit("batch.deleted", PROVIDER, name)
    return JSONResponse({})


# ---- files ----------------------------------------------------------------------------------------


async def file_get_or_download(request: Request) -> Response:
    emu = emulator_of(request)
    name, _, action = request.path_params["rest"].partition(":")
    meta = emu.get_file(f"files/{name}")
    if meta is None or meta["provider"] != PROVIDER:
        return _not_found()
    if not owned_by(meta, owner_of(request)) or expired(emu, meta):
        return no_permission(meta["id"])
    if action == "download":
        path = emu.file_path(meta["id"])

        def stream() -> Iterator[bytes]:
            with open(path, "rb") as fh:
                yield from iter(lambda: fh.read(1 << 20), b"")

        return StreamingResponse(stream(), media_type="application/octet-stream")
    if action:
        return unknown_route(request)
    return JSONResponse(file_json(meta, _base(request), request.path_params["version"]))


async def list_files(request: Request) -> Response:
    """Newest first, `pageSize` pages (default 10, at most 100) with `nextPageToken`."""
    emu = emulator_of(request)
    size = _page_size(request, *FILE_PAGE)
    if isinstance(size, Response):
        return size
    start = int(request.query_params.get("pageToken") or 0)
    owner = owner_of(request)
    metas = [m for m in emu.list_files(PROVIDER)[::-1] if owned_by(m, owner) and not expired(emu, m)]
    files = [file_json(m, _base(request), request.path_params["version"]) for m in metas[start : start + size]]
    body: dict[str, Any] = {"files": files}
    if start + size < len(metas):
        body["nextPageToken"] = str(start + size)
    return JSONResponse(body)


async def delete_file(request: Request) -> Response:
    emu, name = emulator_of(request), f"files/{request.path_params['rest']}"
    meta = emu.get_file(name)
    if meta is None or meta["provider"] != PROVIDER:
        return _not_found()
    if not owned_by(meta, owner_of(request)):
        return no_permission(name)
    if not emu.delete_file(name):
        return _not_found()
    return JSONResponse({})


def _validate(emu: Emulator, file_name: str) -> tuple[str | None, int]:
    total = 0
    with open(emu.file_path(file_name), "rb") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            total += 1
            try:
                data = orjson.loads(line)
            except orjson.JSONDecodeError:
                return f"Line {number} of {file_name} is not valid JSON.", total
            if not isinstance(data, dict) or "request" not in data:
                return f"Line {number} of {file_name} has no request.", total
    if total == 0:
        return f"{file_name} is empty.", 0
    return None, total


async def _unknown(request: Request) -> Response:
    return unknown_route(request)


ROUTES = [
    Route("/upload/{version}/files", upload, methods=["POST"]),
    Route("/{version}/models/{rest:path}", keyed(model_action), methods=["POST"]),
    Route("/{version}/batches", keyed(list_batches), methods=["GET"]),
    Route("/{version}/batches/{batch}", keyed(get_batch), methods=["GET"]),
    Route("/{version}/batches/{batch}", keyed(delete_batch), methods=["DELETE"]),
    Route("/{version}/batches/{rest:path}", keyed(batch_action), methods=["POST"]),
    Route("/{version}/files", keyed(list_files), methods=["GET"]),
    Route("/{version}/files/{rest:path}", keyed(file_get_or_download), methods=["GET"]),
    Route("/download/{version}/files/{rest:path}", keyed(file_get_or_download), methods=["GET"]),
    Route("/{version}/files/{rest:path}", keyed(delete_file), methods=["DELETE"]),
    Route("/{path:path}", _unknown, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
]
CODEC = GeminiCodec()
REQUEST_ID_HEADER = None
