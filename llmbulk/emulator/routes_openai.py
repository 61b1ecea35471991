"""OpenAI Files + Batches routes with OpenAI's exact wire shapes, for OpenAI and every compatible vendor.

One set of module-level handlers; each vendor's mount (`vendors.VENDORS`, under its own prefix)
marks its requests, and a handler reads that vendor's limits, windows, auth header, model naming
and quirks from it. Batch objects and validation live in `openai_objects`, result files in
`openai_results`.
"""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from llmbulk.emulator.engine import Emulator, new_id
from llmbulk.emulator.http import INVALID, emulator_of, int_query, json_body, page_after
from llmbulk.emulator.openai_objects import STATUS, batch_json, file_json, validate_input
from llmbulk.emulator.openai_results import FILE_TTL, OpenAICodec, error
from llmbulk.emulator.owners import owned_by, owner_of
from llmbulk.emulator.quotas import QuotaRefused
from llmbulk.emulator.vendors import VENDORS, Vendor, vendor_of

PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
LIST_LIMITS = {"files": (10_000, 10_000), "batches": (20, 100)}  # default, maximum (SDK docstrings)
# Azure's API-management answers (openai/openai-python#1527; SciSharp/BotSharp#386).
AZURE_NO_KEY = "Access denied due to missing subscription key. Make sure to include subscription key when making requests to an API."  # noqa: E501
AZURE_BAD_KEY = "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."  # noqa: E501


def unknown_route(request: Request) -> Response:
    """Any path or method the API does not have: OpenAI's own 404 envelope."""
    mount = "/" + vendor_of(request).prefix.split("/")[1]  # the emulator's own segment, not the vendor's path
    return error(404, f"Invalid URL ({request.method} {request.url.path.removeprefix(mount)})")


Handler = Callable[[Request], Awaitable[Response]]


def authed(handler: Handler) -> Handler:
    """`Authorization: Bearer <key>` (Azure: `api-key: <key>`, or the bearer form its Python samples use);
    any key unless `serve --api-key` set one."""

    async def guarded(request: Request) -> Response:
        vendor = vendor_of(request)
        auth = request.headers.get("authorization", "")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if vendor.api_key_header:
            key = request.headers.get("api-key", "").strip() or key
        expected = emulator_of(request).config.api_key
        if not key and vendor.key_optional and expected is None:
            return await handler(request)
        if not key:
            if vendor.api_key_header:
                return JSONResponse({"statusCode": 401, "message": AZURE_NO_KEY}, status_code=401)
            message = "You didn't provide an API key. You need to provide your API key in an Authorization header."
            return error(401, message, code="invalid_api_key")
        if expected is not None and key != expected:
            if vendor.api_key_header:
                return JSONResponse({"error": {"code": "401", "message": AZURE_BAD_KEY}}, status_code=401)
            return error(401, "Incorrect API key provided.", code="invalid_api_key")
        return await handler(request)

    return guarded


def _list(items: list[dict[str, Any]], request: Request, kind: str) -> Response:
    if not vendor_of(request).paging:  # documented without limit/after/has_more: everything, every time
        return JSONResponse({"object": "list", "data": items})
    default, high = LIST_LIMITS[kind]
    limit = int_query(request, "limit", default, 1, high)
    if isinstance(limit, str):
        return error(400, f"Invalid 'limit': {limit}.", param="limit", code="invalid_value")
    page, more = page_after(items, request.query_params.get("after"), limit)
    return JSONResponse({
        "object": "list", "data": page, "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None, "has_more": more,
    })  # fmt: skip


def _my_file(emu: Emulator, vendor: Vendor, file_id: str, owner: str) -> dict[str, Any] | None:
    """The caller's file: another key's file is "No such File object", as another project's is."""
    meta = emu.get_file(file_id)
    return meta if meta is not None and meta["provider"] == vendor.name and owned_by(meta, owner) else None


def _my_batch(emu: Emulator, vendor: Vendor, batch_id: str) -> dict[str, Any] | None:
    batch = emu.get_batch(batch_id)
    return batch if batch is not None and batch["provider"] == vendor.name else None


# ---- handlers -------------------------------------------------------------------------------------


def _file_quota(request: Request, expiring: bool) -> Response | None:
    """Azure's per-resource quota of batch input files (500 without expiry, 10,000 with; a fault plan's
    `quotas.files` lowers the second for tests). Expired and deleted files do not count. The answer is
    Azure's (github.com/Azure/azure-sdk-for-java/issues/47401): 400, `code` and `message` only."""
    emu, vendor = emulator_of(request), vendor_of(request)
    cap = vendor.capped_expiring_files if expiring else vendor.capped_files
    if expiring and emu.config.faults.quotas.files is not None and vendor.capped_expiring_files is not None:
        cap = emu.config.faults.quotas.files
    if cap is None:
        return None
    now = emu.config.clock()
    kept = [
        f for f in emu.list_files(vendor.name)
        if f.get("purpose") == "batch" and bool(f.get("expiry_set")) == expiring and f.get("expires_at", now + 1) > now
    ]  # fmt: skip
    if len(kept) < cap:
        return None
    kind = "with" if expiring else "without"
    message = f"The quota for files {kind} expiry is reached. The maximum is {cap}."
    body = {"error": {"code": "quotaExceeded", "message": message}}
    return JSONResponse(body, status_code=400, headers={"x-request-id": new_id("req_")})


async def create_file(request: Request) -> Response:
    emu, vendor = emulator_of(request), vendor_of(request)
    form = await request.form(max_part_size=1 << 31)
    purpose, upload = form.get("purpose"), form.get("file")
    if purpose not in PURPOSES:
        return error(400, f"'{purpose}' is not one of {list(PURPOSES)} - 'purpose'", param="purpose")
    if upload is None or isinstance(upload, str):
        return error(400, "Missing required parameter: 'file'.", param="file")
    seconds = form.get("expires_after[seconds]") or form.get("expires_after.seconds")  # SDK form, REST docs form
    low, high = vendor.upload_expiry
    if isinstance(seconds, str) and not (seconds.isdigit() and low <= int(seconds) <= high):
        return error(400, f"Invalid 'expires_after.seconds': expected {low} to {high}.", param="expires_after")
    if purpose == "batch" and (refused := _file_quota(request, expiring=seconds is not None)) is not None:
        return refused
    file_id = new_id("file-")
    with open(emu.file_path(file_id), "wb") as out:
        await upload.seek(0)
        shutil.copyfileobj(upload.file, out, 1 << 20)
    now = int(emu.config.clock())
    meta: dict[str, Any] = {"filename": upload.filename or "upload.jsonl", "purpose": purpose, "created_at": now,
                            "owner": owner_of(request)}  # fmt: skip
    if isinstance(seconds, str):
        meta.update(expires_at=now + int(seconds), expiry_set=True)
    elif purpose == "batch":
        meta["expires_at"] = now + FILE_TTL
    return JSONResponse(file_json(emu.add_file(vendor.name, file_id, meta)))


async def list_files(request: Request) -> Response:
    owner = owner_of(request)
    files = [f for f in emulator_of(request).list_files(vendor_of(request).name) if owned_by(f, owner)]
    purpose = request.query_params.get("purpose")
    if purpose:
        files = [f for f in files if f.get("purpose") == purpose]
    order = request.query_params.get("order", "desc")
    if order not in ("asc", "desc"):
        return error(400, f"Invalid value for 'order': {order!r}. Expected 'asc' or 'desc'.", param="order")
    if order == "desc":
        files.reverse()
    return _list([file_json(f) for f in files], request, "files")


async def get_file(request: Request) -> Response:
    meta = _my_file(emulator_of(request), vendor_of(request), request.path_params["file_id"], owner_of(request))
    if meta is None:
        return error(404, f"No such File object: {request.path_params['file_id']}", param="id")
    return JSONResponse(file_json(meta))


async def file_content(request: Request) -> Response:
    emu = emulator_of(request)
    meta = _my_file(emu, vendor_of(request), request.path_params["file_id"], owner_of(request))
    if meta is None:
        return error(404, f"No such File object: {request.path_params['file_id']}", param="id")
    return FileResponse(emu.file_path(meta["id"]), media_type="application/octet-stream")


async def delete_file(request: Request) -> Response:
    emu, file_id = emulator_of(request), request.path_params["file_id"]
    if _my_file(emu, vendor_of(request), file_id, owner_of(request)) is None or not emu.delete_file(file_id):
        return error(404, f"No such File object: {file_id}", param="id")
    return JSONResponse({"id": file_id, "object": "file", "deleted": True})


async def create_batch(request: Request) -> Response:
    emu, vendor = emulator_of(request), vendor_of(request)
    body = await json_body(request)
    if body is INVALID or not isinstance(body, dict):
        return error(400, "We could not parse the JSON body of your request.")
    problem = _create_problem(vendor, body)
    if problem is not None:
        return problem
    meta = _my_file(emu, vendor, body["input_file_id"], owner_of(request))
    if meta is None:
        return error(404, f"No such File object: {body['input_file_id']}", param="input_file_id")
    if meta.get("purpose") != "batch":
        return error(400, "The input file must have purpose 'batch'.", param="input_file_id")
    errors, count, model = validate_input(emu, vendor, body["input_file_id"], body["endpoint"])
    record = {
        "input_file_id": body["input_file_id"], "endpoint": body["endpoint"], "metadata": body.get("metadata"),
        "total": count, "model": model, "validation_errors": errors,
        "output_expires_seconds": (body.get("output_expires_after") or {}).get("seconds"),
        "completion_window": body["completion_window"], "owner": owner_of(request),
    }  # fmt: skip
    try:
        batch = emu.create_batch(vendor.name, new_id("batch_"), record)
    except QuotaRefused as refused:
        return emu.codecs[vendor.name].http_error(429, refused.message)
    return JSONResponse(batch_json(emu, vendor, batch, now=batch["created_at"]))


def _create_problem(vendor: Vendor, body: dict[str, Any]) -> Response | None:
    """What `POST /batches` refuses outright (400), before a batch exists."""
    for name in ("input_file_id", "endpoint", "completion_window"):
        if not body.get(name):
            return error(400, f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")
    endpoints = {*vendor.endpoints, *(e.removeprefix("/v1") for e in vendor.endpoints if vendor.deployments)}
    if body["endpoint"] not in endpoints:
        return error(400, f"Invalid value for 'endpoint': {body['endpoint']!r}.", param="endpoint")
    if not isinstance(body["completion_window"], str) or not vendor.window_ok(body["completion_window"]):
        accepted = ", ".join(sorted(vendor.windows)) if vendor.window_span is None else "24h to 7d"
        return error(400, f"Invalid value for 'completion_window': {vendor.label} supports {accepted}.",
                     param="completion_window")  # fmt: skip
    metadata = body.get("metadata")
    if metadata is not None and (
        not isinstance(metadata, dict) or len(metadata) > 16
        or any(len(str(k)) > 64 or not isinstance(v, str) or len(v) > 512 for k, v in metadata.items())
    ):  # fmt: skip
        return error(
            400, "Invalid 'metadata': at most 16 string pairs, keys ≤64 and values ≤512 chars.", param="metadata"
        )
    expires = (body.get("output_expires_after") or {}).get("seconds")
    if expires is not None and not (isinstance(expires, int) and 3600 <= expires <= 2_592_000):
        return error(
            400,
            "Invalid 'output_expires_after.seconds': expected 3600 to 2592000.",
            param="output_expires_after.seconds",
        )
    return None


async def get_batch(request: Request) -> Response:
    emu, vendor = emulator_of(request), vendor_of(request)
    batch = _my_batch(emu, vendor, request.path_params["batch_id"])
    if batch is None:
        return error(404, f"No batch found with id '{request.path_params['batch_id']}'.")
    return JSONResponse(batch_json(emu, vendor, batch))


async def list_batches(request: Request) -> Response:
    emu, vendor = emulator_of(request), vendor_of(request)
    items = [batch_json(emu, vendor, emu.get_batch(b["id"]) or b) for b in emu.list_batches(vendor.name)]
    return _list(items, request, "batches")


async def cancel_batch(request: Request) -> Response:
    emu, vendor, batch_id = emulator_of(request), vendor_of(request), request.path_params["batch_id"]
    existing = _my_batch(emu, vendor, batch_id)
    if existing is None:
        return error(404, f"No batch found with id '{batch_id}'.")
    if emu.phase(existing) not in ("validating", "running", "cancelling"):
        status = vendor.status(STATUS[emu.phase(existing)])
        return error(409, f"Cannot cancel a batch with status '{status}'.", code="batch_not_cancellable")
    return JSONResponse(batch_json(emu, vendor, emu.cancel_batch(batch_id) or existing))


async def _unknown(request: Request) -> Response:
    return unknown_route(request)


ROUTES = [
    Route("/files", authed(create_file), methods=["POST"]),
    Route("/files", authed(list_files), methods=["GET"]),
    Route("/files/{file_id}", authed(get_file), methods=["GET"]),
    Route("/files/{file_id}", authed(delete_file), methods=["DELETE"]),
    Route("/files/{file_id}/content", authed(file_content), methods=["GET"]),
    Route("/batches", authed(create_batch), methods=["POST"]),
    Route("/batches", authed(list_batches), methods=["GET"]),
    Route("/batches/{batch_id}", authed(get_batch), methods=["GET"]),
    Route("/batches/{batch_id}/cancel", authed(cancel_batch), methods=["POST"]),
    Route("/{path:path}", _unknown, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
]
CODECS = {vendor.name: OpenAICodec(vendor) for vendor in VENDORS}
REQUEST_ID_HEADER = "x-request-id"
