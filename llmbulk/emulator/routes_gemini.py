"""Gemini Batch Mode routes (Developer API), under `/gemini/{v1,v1beta}`, camelCase everywhere.

Resumable uploads answer with an absolute `x-goog-upload-url` on the emulator itself and are
authorised by the upload id, not a key (the SDK sends none on chunks). Batch results are a file
of `{"key", "response"|"error"}` lines, deliberately not in input order.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from llmbulk.emulator.engine import Emulator, new_id, reversed_blocks
from llmbulk.emulator.replies import NeutralRequest, respond

PROVIDER = "gemini"
VERSIONS = ("v1", "v1beta")
STATES = {
    "validating": "BATCH_STATE_PENDING", "failed": "BATCH_STATE_FAILED", "running": "BATCH_STATE_RUNNING",
    "finalizing": "BATCH_STATE_RUNNING", "ended": "BATCH_STATE_SUCCEEDED", "expired": "BATCH_STATE_EXPIRED",
    "cancelling": "BATCH_STATE_RUNNING", "cancelled": "BATCH_STATE_CANCELLED",
}  # fmt: skip
ITEM_ERRORS = {
    "rate_limit": (429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    "server_error": (500, "INTERNAL", "An internal error has occurred."),
    "invalid_request": (400, "INVALID_ARGUMENT", "Request contains an invalid argument."),
    "timeout": (504, "DEADLINE_EXCEEDED", "Deadline exceeded."),
}
CHUNK = 8 * 1024 * 1024


def error(status: int, message: str, code: str) -> JSONResponse:
    return JSONResponse({"error": {"code": status, "message": message, "status": code}}, status_code=status)


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _authorised(request: Request, emu: Emulator) -> bool:
    key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
    return bool(key) and (emu.config.api_key is None or key == emu.config.api_key)


def _unauthorised() -> JSONResponse:
    return error(400, "API key not valid. Please pass a valid API key.", "INVALID_ARGUMENT")


class GeminiCodec:
    """Generates the `files/batch-<id>` results file (or inline responses) for a finished batch."""

    def results(self, emu: Emulator, batch: dict[str, Any], done: float, reason: str) -> dict[str, Any]:
        out_id = f"batch-{batch['id'].split('/')[-1]}"
        counts = {"succeeded": 0, "failed": 0}
        with open(emu.file_path(f"files/{out_id}"), "wb") as out:
            for line in reversed_blocks(self._lines(emu, batch, done, reason, counts)):
                out.write(line)
        if batch.get("inline"):
            inlined = []
            for line in emu.file_path(f"files/{out_id}").read_bytes().splitlines():
                data = orjson.loads(line)
                entry: dict[str, Any] = {"metadata": {"key": data["key"]}}
                if "response" in data:
                    entry["response"] = data["response"]
                else:
                    entry["error"] = {"code": data["error"]["code"], "message": data["error"]["message"]}
                inlined.append(entry)
            emu.file_path(f"files/{out_id}").unlink()
            return {"counts": counts, "inlined": inlined}
        emu.add_file(PROVIDER, f"files/{out_id}", {"display_name": out_id, "mime_type": "application/jsonl",
                                                  "purpose": "batch_output"})  # fmt: skip
        return {"counts": counts, "file": f"files/{out_id}"}

    def _lines(self, emu: Emulator, batch: dict[str, Any], done: float, reason: str, counts: dict[str, int]):
        for data in _requests(emu, batch):
            key = data.get("key") or (data.get("metadata") or {}).get("key") or ""
            if not emu.finished_by(key, done):
                status, code, message = (504, "DEADLINE_EXCEEDED", "The batch expired before this request ran.")
                if reason == "cancelled":
                    status, code, message = (499, "CANCELLED", "The batch was cancelled before this request ran.")
                counts["failed"] += 1
                yield orjson.dumps({"key": key, "error": {"code": status, "message": message, "status": code}}) + b"\n"
                continue
            kind = emu.item_error(key)
            if kind is not None:
                status, code, message = ITEM_ERRORS[kind]
                counts["failed"] += 1
                yield orjson.dumps({"key": key, "error": {"code": status, "message": message, "status": code}}) + b"\n"
                continue
            counts["succeeded"] += 1
            yield orjson.dumps({"key": key, "response": _answer(emu, batch["model"], data["request"], key)}) + b"\n"


def _requests(emu: Emulator, batch: dict[str, Any]) -> Iterator[dict[str, Any]]:
    with open(emu.file_path(batch["input_file"]), "rb") as fh:
        for line in fh:
            if line.strip():
                yield orjson.loads(line)


def _text(content: dict[str, Any]) -> str:
    return " ".join(str(p.get("text", "")) for p in content.get("parts") or [])


def _answer(emu: Emulator, model: str, request: dict[str, Any], key: str) -> dict[str, Any]:
    config = request.get("generationConfig") or request.get("generation_config") or {}
    messages = [{"role": c.get("role", "user"), "content": _text(c)} for c in request.get("contents") or []]
    system = request.get("systemInstruction") or request.get("system_instruction")
    schema = config.get("responseSchema") or config.get("responseJsonSchema")
    neutral = NeutralRequest(model, messages, _text(system) if system else None, config.get("maxOutputTokens"), schema)
    reply = respond(neutral, emu.invalid_json(key))
    return {
        "candidates": [{"content": {"role": "model", "parts": [{"text": reply.text}]},
                        "finishReason": "STOP" if reply.finish_reason == "stop" else "MAX_TOKENS", "index": 0}],
        "usageMetadata": {"promptTokenCount": reply.input_tokens, "candidatesTokenCount": reply.output_tokens,
                          "totalTokenCount": reply.input_tokens + reply.output_tokens},
        "modelVersion": model,
        "responseId": new_id(""),
    }  # fmt: skip


def file_json(emu: Emulator, meta: dict[str, Any], base: str, version: str) -> dict[str, Any]:
    created = rfc3339(meta["created_at"])
    body = {
        "name": meta["id"], "displayName": meta.get("display_name", ""), "mimeType": meta.get("mime_type", ""),
        "sizeBytes": str(meta["bytes"]), "createTime": created, "updateTime": created,
        "expirationTime": rfc3339(meta["created_at"] + 48 * 3600), "sha256Hash": "",
        "uri": f"{base}/{version}/{meta['id']}", "state": "ACTIVE",
        "source": "GENERATED" if meta.get("purpose") == "batch_output" else "UPLOADED",
    }  # fmt: skip
    if meta.get("purpose") == "batch_output":
        body["downloadUri"] = f"{base}/download/{version}/{meta['id']}:download?alt=media"
    return body


def operation_json(emu: Emulator, batch: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    phase = emu.phase(batch, now)
    state = STATES[phase]
    total = batch["total"]
    results = batch.get("results") or {}
    if results:
        ok, failed = results["counts"]["succeeded"], results["counts"]["failed"]
    else:
        ok = int(total * emu.fraction(batch)) if phase == "running" else 0
        failed = 0
    metadata: dict[str, Any] = {
        "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
        "model": f"models/{batch['model']}", "displayName": batch.get("display_name") or "",
        "state": state, "createTime": rfc3339(batch["created_at"]), "updateTime": rfc3339(emu.config.clock()),
        "batchStats": {"requestCount": str(total), "successfulRequestCount": str(ok),
                       "failedRequestCount": str(failed), "pendingRequestCount": str(max(0, total - ok - failed))},
    }  # fmt: skip
    body: dict[str, Any] = {
        "name": batch["id"],
        "metadata": metadata,
        "done": phase in ("ended", "failed", "expired", "cancelled"),
    }
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
        body["error"] = {"code": 400, "message": batch.get("failure") or "The batch input is invalid.",
                         "status": "INVALID_ARGUMENT"}  # fmt: skip
    return body


def routes(emu: Emulator) -> list[Route]:
    emu.codecs[PROVIDER] = GeminiCodec()
    uploads: dict[str, dict[str, Any]] = {}

    def base(request: Request) -> str:
        return f"{request.url.scheme}://{request.url.netloc}/gemini"

    async def start_upload(request: Request) -> Response:
        if not _authorised(request, emu):
            return _unauthorised()
        if request.headers.get("x-goog-upload-command", "").lower() != "start":
            return error(400, "Expected X-Goog-Upload-Command: start.", "INVALID_ARGUMENT")
        body = orjson.loads(await request.body() or b"{}")
        info = body.get("file") or {}
        upload_id = new_id("")
        uploads[upload_id] = {
            "display_name": info.get("displayName") or info.get("display_name") or "",
            "mime_type": info.get("mimeType") or info.get("mime_type") or request.headers.get(
                "x-goog-upload-header-content-type", ""),
            "size": int(request.headers.get("x-goog-upload-header-content-length") or 0),
            "received": 0, "file_id": f"files/{new_id('')[:16]}",
        }  # fmt: skip
        emu.file_path(uploads[upload_id]["file_id"]).write_bytes(b"")
        version = request.path_params["version"]
        url = f"{base(request)}/upload/{version}/files?upload_id={upload_id}&upload_protocol=resumable"
        return Response(status_code=200, headers={"x-goog-upload-url": url, "x-goog-upload-status": "active"})

    async def upload_chunk(request: Request) -> Response:
        upload_id = request.query_params.get("upload_id", "")
        state = uploads.get(upload_id)
        if state is None:
            return error(404, "Upload session not found.", "NOT_FOUND")
        offset = int(request.headers.get("x-goog-upload-offset") or 0)
        if offset != state["received"]:
            return Response(status_code=400, headers={"x-goog-upload-status": "active"})
        with open(emu.file_path(state["file_id"]), "ab") as out:
            async for chunk in request.stream():
                out.write(chunk)
                state["received"] += len(chunk)
        command = request.headers.get("x-goog-upload-command", "")
        if "finalize" not in command:
            return Response(status_code=200, headers={"x-goog-upload-status": "active"})
        info = {"display_name": state["display_name"], "mime_type": state["mime_type"], "purpose": "input"}
        meta = emu.add_file(PROVIDER, state["file_id"], info)
        uploads.pop(upload_id, None)
        body = {"file": file_json(emu, meta, base(request), request.path_params["version"])}
        return JSONResponse(body, headers={"x-goog-upload-status": "final"})

    async def create_batch(request: Request) -> Response:
        if not _authorised(request, emu):
            return _unauthorised()
        model = request.path_params["model"]
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return error(400, "Invalid JSON payload received.", "INVALID_ARGUMENT")
        spec = body.get("batch") or {}
        source = spec.get("inputConfig") or spec.get("input_config") or {}
        batch_id = f"batches/{new_id('')[:20]}"
        record: dict[str, Any] = {"model": model, "display_name": spec.get("displayName") or spec.get("display_name")}
        if source.get("fileName") or source.get("file_name"):
            file_name = source.get("fileName") or source.get("file_name")
            meta = emu.get_file(file_name)
            if meta is None or meta["provider"] != PROVIDER:
                return error(404, f"File {file_name} not found.", "NOT_FOUND")
            failure, total = _validate(emu, file_name)
            record.update(input_file=file_name, total=total, failure=failure)
            if failure:
                record["validation_errors"] = [{"message": failure}]
        elif "requests" in source:
            requests = (source.get("requests") or {}).get("requests") or []
            if not requests:
                return error(400, "Batch requests must not be empty.", "INVALID_ARGUMENT")
            inline_id = f"files/inline-{new_id('')[:16]}"
            with open(emu.file_path(inline_id), "wb") as out:
                for item in requests:
                    key = (item.get("metadata") or {}).get("key", "")
                    out.write(orjson.dumps({"key": key, "request": item.get("request") or {}}) + b"\n")
            record.update(input_file=inline_id, total=len(requests), inline=True)
        else:
            return error(400, "batch.inputConfig must have fileName or requests.", "INVALID_ARGUMENT")
        batch = emu.create_batch(PROVIDER, batch_id, record)
        return JSONResponse(operation_json(emu, batch, now=batch["created_at"]))

    async def get_batch(request: Request) -> Response:
        if not _authorised(request, emu):
            return _unauthorised()
        batch = emu.get_batch(f"batches/{request.path_params['batch']}")
        if batch is None:
            return error(404, "Requested entity was not found.", "NOT_FOUND")
        return JSONResponse(operation_json(emu, batch))

    async def list_batches(request: Request) -> Response:
        if not _authorised(request, emu):
            return _unauthorised()
        size = max(1, min(int(request.query_params.get("pageSize", 50)), 1000))
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

    async def batch_action(request: Request) -> Response:
        if not _authorised(request, emu):
            return _unauthorised()
        name, _, action = request.path_params["rest"].partition(":")
        batch = emu.get_batch(f"batches/{name}")
        if batch is None:
            return error(404, "Requested entity was not found.", "NOT_FOUND")
        if action == "cancel":
            emu.cancel_batch(batch["id"])
            return JSONResponse({})
        return error(400, f"Unknown action {action!r}.", "INVALID_ARGUMENT")

    async def delete_batch(request: Request) -> Response:
        if not _authorised(request, emu):
            return _unauthorised()
        emu.delete_batch(f"batches/{request.path_params['batch']}")
        return JSONResponse({})

    async def file_get_or_download(request: Request) -> Response:
        if not _authorised(request, emu):
            return _unauthorised()
        name, _, action = request.path_params["rest"].partition(":")
        meta = emu.get_file(f"files/{name}")
        if meta is None:
            return error(404, "Requested entity was not found.", "NOT_FOUND")
        if action == "download":
            path = emu.file_path(meta["id"])

            def stream() -> Iterator[bytes]:
                with open(path, "rb") as fh:
                    yield from iter(lambda: fh.read(1 << 20), b"")

            return StreamingResponse(stream(), media_type="application/octet-stream")
        return JSONResponse(file_json(emu, meta, base(request), request.path_params["version"]))

    async def list_files(request: Request) -> Response:
        if not _authorised(request, emu):
            return _unauthorised()
        files = [file_json(emu, m, base(request), request.path_params["version"]) for m in emu.list_files(PROVIDER)]
        return JSONResponse({"files": files[::-1]})

    async def delete_file(request: Request) -> Response:
        if not _authorised(request, emu):
            return _unauthorised()
        emu.delete_file(f"files/{request.path_params['rest']}")
        return JSONResponse({})

    return [
        Route("/upload/{version}/files", _dispatch_upload(start_upload, upload_chunk), methods=["POST"]),
        Route("/{version}/models/{model}:batchGenerateContent", create_batch, methods=["POST"]),
        Route("/{version}/batches", list_batches, methods=["GET"]),
        Route("/{version}/batches/{batch}", get_batch, methods=["GET"]),
        Route("/{version}/batches/{batch}", delete_batch, methods=["DELETE"]),
        Route("/{version}/batches/{rest:path}", batch_action, methods=["POST"]),
        Route("/{version}/files", list_files, methods=["GET"]),
        Route("/{version}/files/{rest:path}", file_get_or_download, methods=["GET"]),
        Route("/download/{version}/files/{rest:path}", file_get_or_download, methods=["GET"]),
        Route("/{version}/files/{rest:path}", delete_file, methods=["DELETE"]),
    ]


def _dispatch_upload(start: Any, chunk: Any) -> Any:
    async def handler(request: Request) -> Response:
        if request.query_params.get("upload_id"):
            return await chunk(request)
        return await start(request)

    return handler


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
