"""OpenAI Files + Batches routes with OpenAI's exact wire shapes, mounted under `/openai/v1`.

Input problems do not fail `create`: like the real service, the batch is created and then goes
`validating → failed` with `errors.data`. Successes go to the output file, everything else to
the error file; a batch whose every line failed has `output_file_id: null`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from llmbulk.emulator.engine import Emulator, new_id
from llmbulk.emulator.replies import NeutralRequest, respond

PROVIDER = "openai"
ENDPOINTS = (
    "/v1/responses", "/v1/chat/completions", "/v1/embeddings", "/v1/completions", "/v1/moderations",
    "/v1/images/generations", "/v1/images/edits", "/v1/videos",
)  # fmt: skip
PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
STATUS = {
    "validating": "validating", "failed": "failed", "running": "in_progress", "finalizing": "finalizing",
    "ended": "completed", "expired": "expired", "cancelling": "cancelling", "cancelled": "cancelled",
}  # fmt: skip
ITEM_ERRORS = {
    "rate_limit": (429, "rate_limit_exceeded", "requests", "Rate limit reached for requests"),
    "server_error": (500, "server_error", "server_error", "The server had an error processing your request."),
    "invalid_request": (400, "invalid_request_error", None, "Invalid value for 'messages'."),
}


def error(status: int, message: str, type_: str = "invalid_request_error", code: str | None = None, param=None):
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers={"x-request-id": new_id("req_")})


class OpenAICodec:
    """Turns a finished batch's input lines into output and error files."""

    def results(self, emu: Emulator, batch: dict[str, Any], done: float, reason: str) -> dict[str, Any]:
        out_id, err_id = new_id("file-"), new_id("file-")
        counts = {"completed": 0, "failed": 0}
        usage = {"input": 0, "output": 0}
        with open(emu.file_path(out_id), "wb") as out, open(emu.file_path(err_id), "wb") as err:
            for line in _lines(emu, batch["input_file_id"]):
                data = orjson.loads(line)
                custom_id = data["custom_id"]
                if not emu.finished_by(custom_id, done):
                    code = "batch_expired" if reason == "expired" else "batch_cancelled"
                    text = "This request could not be executed before the completion window expired."
                    if code == "batch_cancelled":
                        text = "This request was cancelled before it could be executed."
                    err.write(_no_response_line(custom_id, code, text))
                    counts["failed"] += 1
                    continue
                kind = emu.item_error(custom_id)
                if kind == "timeout":
                    err.write(_no_response_line(custom_id, "request_timeout", "The request timed out."))
                    counts["failed"] += 1
                elif kind is not None:
                    err.write(_error_line(custom_id, kind))
                    counts["failed"] += 1
                else:
                    body, used = _answer(emu, batch["endpoint"], data, custom_id)
                    usage["input"] += used[0]
                    usage["output"] += used[1]
                    out.write(_line(custom_id, 200, body))
                    counts["completed"] += 1
        fields: dict[str, Any] = {"counts": counts, "usage": usage, "output_file_id": None, "error_file_id": None}
        for file_id, key, n in (
            (out_id, "output_file_id", counts["completed"]),
            (err_id, "error_file_id", counts["failed"]),
        ):
            if n:
                emu.add_file(
                    PROVIDER, file_id, {"filename": f"batch_{batch['id']}_{key[:-8]}.jsonl", "purpose": "batch_output"}
                )
                fields[key] = file_id
            else:
                emu.file_path(file_id).unlink(missing_ok=True)
        return fields


def _lines(emu: Emulator, file_id: str) -> Iterator[bytes]:
    with open(emu.file_path(file_id), "rb") as fh:
        for line in fh:
            if line.strip():
                yield line


def _line(custom_id: str, status: int, body: dict[str, Any]) -> bytes:
    record = {
        "id": new_id("batch_req_"),
        "custom_id": custom_id,
        "response": {"status_code": status, "request_id": new_id("req_"), "body": body},
        "error": None,
    }
    return orjson.dumps(record) + b"\n"


def _error_line(custom_id: str, kind: str) -> bytes:
    status, type_, code, message = ITEM_ERRORS[kind]
    return _line(custom_id, status, {"error": {"message": message, "type": type_, "param": None, "code": code}})


def _no_response_line(custom_id: str, code: str, message: str) -> bytes:
    record = {"id": new_id("batch_req_"), "custom_id": custom_id, "response": None,
              "error": {"code": code, "message": message}}  # fmt: skip
    return orjson.dumps(record) + b"\n"


def _answer(
    emu: Emulator, endpoint: str, data: dict[str, Any], custom_id: str
) -> tuple[dict[str, Any], tuple[int, int]]:
    body = data.get("body") or {}
    model = body.get("model", "")
    created = int(emu.config.clock())
    if endpoint == "/v1/embeddings":
        text = body.get("input") if isinstance(body.get("input"), str) else str(body.get("input"))
        vector = [round(((hash_bytes(text) >> i) & 0xFF) / 255 - 0.5, 4) for i in range(0, 64, 8)]
        tokens = max(1, len(text) // 4)
        return {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": vector}], "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}, (tokens, 0)  # fmt: skip
    schema = _schema(body)
    if endpoint == "/v1/responses":
        messages = (
            body.get("input")
            if isinstance(body.get("input"), list)
            else [{"role": "user", "content": body.get("input")}]
        )
        request = NeutralRequest(model, messages, body.get("instructions"), body.get("max_output_tokens"), schema)
        reply = respond(request, emu.invalid_json(custom_id))
        return {
            "id": new_id("resp_"), "object": "response", "created_at": created, "model": model,
            "status": "completed" if reply.finish_reason == "stop" else "incomplete",
            "output": [{"type": "message", "id": new_id("msg_"), "status": "completed", "role": "assistant",
                        "content": [{"type": "output_text", "text": reply.text, "annotations": []}]}],
            "usage": {"input_tokens": reply.input_tokens, "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens": reply.output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
                      "total_tokens": reply.input_tokens + reply.output_tokens},
        }, (reply.input_tokens, reply.output_tokens)  # fmt: skip
    messages = body.get("messages") or []
    system = "\n".join(str(m.get("content")) for m in messages if m.get("role") in ("system", "developer")) or None
    chat = [m for m in messages if m.get("role") not in ("system", "developer")]
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    reply = respond(NeutralRequest(model, chat, system, max_tokens, schema), emu.invalid_json(custom_id))
    return {
        "id": new_id("chatcmpl-"), "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text, "refusal": None,
                     "annotations": []}, "logprobs": None, "finish_reason": reply.finish_reason}],
        "usage": {"prompt_tokens": reply.input_tokens, "completion_tokens": reply.output_tokens,
                  "total_tokens": reply.input_tokens + reply.output_tokens,
                  "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
        "service_tier": "default", "system_fingerprint": "fp_emulator",
    }, (reply.input_tokens, reply.output_tokens)  # fmt: skip


def _schema(body: dict[str, Any]) -> dict[str, Any] | None:
    fmt = body.get("response_format") or (body.get("text") or {}).get("format") or {}
    if fmt.get("type") == "json_schema":
        return (fmt.get("json_schema") or {}).get("schema") or fmt.get("schema")
    return None


def hash_bytes(text: str) -> int:
    import hashlib

    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def validate_input(emu: Emulator, file_id: str, endpoint: str) -> tuple[list[dict[str, Any]], int, str | None]:
    """Check the input file like the real validator; returns (errors, request count, model)."""
    path = emu.file_path(file_id)
    if path.stat().st_size > emu.config.max_file_bytes:
        size = emu.config.max_file_bytes
        return [{"code": "file_too_large", "line": None, "param": None,
                 "message": f"The input file exceeds the maximum size of {size} bytes."}], 0, None  # fmt: skip
    seen: set[str] = set()
    models: set[str] = set()
    count = 0
    errors: list[dict[str, Any]] = []
    for number, line in _numbered(path):
        if not line.strip():
            continue
        count += 1
        try:
            data = orjson.loads(line)
            custom_id = data["custom_id"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            errors.append(_verror("invalid_json_line", number, "This line is not parseable as valid JSON."))
            break
        if custom_id in seen:
            errors.append(_verror("duplicate_custom_id", number, f"The custom_id '{custom_id}' is not unique."))
            break
        seen.add(custom_id)
        if data.get("url") != endpoint:
            errors.append(_verror("url_mismatch", number, f"The url must match the batch endpoint {endpoint}."))
            break
        models.add(str((data.get("body") or {}).get("model")))
        if len(models) > 1:
            errors.append(_verror("model_mismatch", number, "All requests in a batch must use the same model."))
            break
    if not errors and count == 0:
        errors.append(_verror("empty_file", None, "The input file is empty."))
    if count > emu.config.max_batch_items:
        limit = emu.config.max_batch_items
        errors.append(_verror("too_many_tasks", None, f"The batch has more than {limit} requests."))
    return errors, count, next(iter(models), None)


def _numbered(path: Any) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb") as fh:
        yield from enumerate(fh, start=1)


def _verror(code: str, line: int | None, message: str) -> dict[str, Any]:
    return {"code": code, "line": line, "message": message, "param": None}


def batch_json(emu: Emulator, batch: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    phase = emu.phase(batch, now)
    status = STATUS[phase]
    created = int(batch["created_at"])
    results = batch.get("results") or {}
    if results and emu.results_hidden(batch["id"]):  # seen at OpenAI: completed, output_file_id still null
        results = {**results, "output_file_id": None, "error_file_id": None}
    cancel_at = emu.cancel_time(batch, now)
    total = batch.get("total", 0)
    if phase in ("running", "cancelling"):
        done = int(total * emu.fraction(batch, cancel_at))
        failed = int(done * sum(emu.config.faults.item_errors.values()))
        counts = {"total": total, "completed": done - failed, "failed": failed}
    elif results:
        counts = {"total": total, **results["counts"]}
    else:
        counts = {"total": total if phase != "validating" else 0, "completed": 0, "failed": 0}
    errors = None
    if phase == "failed":
        data = batch.get("validation_errors") or []
        if batch["token_limit"]:
            data = [_verror("token_limit_exceeded", None, "Enqueued token limit reached for this model.")]
        elif batch["fail_validation"] and not data:
            data = [_verror("invalid_json_line", 1, "This line is not parseable as valid JSON.")]
        errors = {"object": "list", "data": data}
    stamp = lambda t: int(t) if t else None  # noqa: E731
    ended = {"ended": "completed_at", "failed": "failed_at", "expired": "expired_at", "cancelled": "cancelled_at"}
    body: dict[str, Any] = {
        "id": batch["id"], "object": "batch", "endpoint": batch["endpoint"], "errors": errors,
        "input_file_id": batch["input_file_id"], "completion_window": "24h", "status": status,
        "output_file_id": results.get("output_file_id"), "error_file_id": results.get("error_file_id"),
        "created_at": created, "in_progress_at": stamp(batch["validated_at"]) if phase not in ("validating", "failed") else None,  # noqa: E501
        "expires_at": created + 86400, "finalizing_at": None, "completed_at": None, "failed_at": None,
        "expired_at": None, "cancelling_at": stamp(cancel_at), "cancelled_at": None,
        "request_counts": counts, "metadata": batch.get("metadata"), "model": batch.get("model"), "usage": None,
    }  # fmt: skip
    if phase in ("finalizing", "ended"):
        body["finalizing_at"] = stamp(batch["ran_at"])
    if phase in ended:
        when = batch["finalized_at"] if phase == "ended" else batch["validated_at"]
        if phase == "cancelled":
            when = (cancel_at or created) + emu.config.cancel_seconds
        if phase == "expired":
            when = batch["ran_at"]
        body[ended[phase]] = stamp(when) or created
    if results:
        used = results["usage"]
        body["usage"] = {
            "input_tokens": used["input"], "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": used["output"], "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": used["input"] + used["output"],
        }  # fmt: skip
    return body


def file_json(meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": meta["id"], "object": "file", "bytes": meta["bytes"], "created_at": meta["created_at"],
        "filename": meta.get("filename", "file.jsonl"), "purpose": meta.get("purpose", "batch"),
        "status": "processed", "status_details": None, "expires_at": meta.get("expires_at"),
    }  # fmt: skip


def routes(emu: Emulator) -> list[Route]:
    emu.codecs[PROVIDER] = OpenAICodec()

    async def create_file(request: Request) -> Response:
        form = await request.form(max_part_size=1 << 31)
        purpose, upload = form.get("purpose"), form.get("file")
        if purpose not in PURPOSES:
            return error(400, f"'{purpose}' is not one of {list(PURPOSES)} - 'purpose'", param="purpose")
        if upload is None or isinstance(upload, str):
            return error(400, "Missing required parameter: 'file'.", param="file")
        file_id = new_id("file-")
        with open(emu.file_path(file_id), "wb") as out:
            await upload.seek(0)
            shutil.copyfileobj(upload.file, out, 1 << 20)
        meta: dict[str, Any] = {"filename": upload.filename or "upload.jsonl", "purpose": purpose}
        seconds = form.get("expires_after[seconds]")
        if isinstance(seconds, str) and seconds.isdigit():
            meta["expires_at"] = int(emu.config.clock()) + int(seconds)
        return JSONResponse(file_json(emu.add_file(PROVIDER, file_id, meta)))

    async def list_files(request: Request) -> Response:
        files = emu.list_files(PROVIDER)
        purpose = request.query_params.get("purpose")
        if purpose:
            files = [f for f in files if f.get("purpose") == purpose]
        if request.query_params.get("order", "desc") == "desc":
            files.reverse()
        return JSONResponse(_page([file_json(f) for f in files], request))

    async def get_file(request: Request) -> Response:
        meta = emu.get_file(request.path_params["file_id"])
        if meta is None or meta["provider"] != PROVIDER:
            return error(404, f"No such File object: {request.path_params['file_id']}", param="id")
        return JSONResponse(file_json(meta))

    async def file_content(request: Request) -> Response:
        meta = emu.get_file(request.path_params["file_id"])
        if meta is None or meta["provider"] != PROVIDER:
            return error(404, f"No such File object: {request.path_params['file_id']}", param="id")
        return FileResponse(emu.file_path(meta["id"]), media_type="application/octet-stream")

    async def delete_file(request: Request) -> Response:
        file_id = request.path_params["file_id"]
        if not emu.delete_file(file_id):
            return error(404, f"No such File object: {file_id}", param="id")
        return JSONResponse({"id": file_id, "object": "file", "deleted": True})

    async def create_batch(request: Request) -> Response:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return error(400, "We could not parse the JSON body of your request.")
        for name in ("input_file_id", "endpoint", "completion_window"):
            if not body.get(name):
                return error(400, f"Missing required parameter: '{name}'.", param=name)
        if body["endpoint"] not in ENDPOINTS:
            return error(400, f"Invalid value for 'endpoint': {body['endpoint']!r}.", param="endpoint")
        if body["completion_window"] != "24h":
            return error(
                400, "Invalid value for 'completion_window': only '24h' is supported.", param="completion_window"
            )
        metadata = body.get("metadata")
        if metadata is not None and (
            not isinstance(metadata, dict) or len(metadata) > 16
            or any(len(str(k)) > 64 or not isinstance(v, str) or len(v) > 512 for k, v in metadata.items())
        ):  # fmt: skip
            return error(
                400, "Invalid 'metadata': at most 16 string pairs, keys ≤64 and values ≤512 chars.", param="metadata"
            )
        meta = emu.get_file(body["input_file_id"])
        if meta is None or meta["provider"] != PROVIDER:
            return error(404, f"No such File object: {body['input_file_id']}", param="input_file_id")
        if meta.get("purpose") != "batch":
            return error(400, "The input file must have purpose 'batch'.", param="input_file_id")
        errors, count, model = validate_input(emu, body["input_file_id"], body["endpoint"])
        record = {
            "input_file_id": body["input_file_id"], "endpoint": body["endpoint"], "metadata": metadata,
            "total": count, "model": model, "validation_errors": errors,
        }  # fmt: skip
        batch = emu.create_batch(PROVIDER, new_id("batch_"), record)
        return JSONResponse(batch_json(emu, batch, now=batch["created_at"]))

    async def get_batch(request: Request) -> Response:
        batch = emu.get_batch(request.path_params["batch_id"])
        if batch is None or batch["provider"] != PROVIDER:
            return error(404, f"No batch found with id '{request.path_params['batch_id']}'.")
        return JSONResponse(batch_json(emu, batch))

    async def list_batches(request: Request) -> Response:
        items = [batch_json(emu, emu.get_batch(b["id"]) or b) for b in emu.list_batches(PROVIDER)]
        return JSONResponse(_page(items, request))

    async def cancel_batch(request: Request) -> Response:
        batch_id = request.path_params["batch_id"]
        existing = emu.get_batch(batch_id)
        if existing is None or existing["provider"] != PROVIDER:
            return error(404, f"No batch found with id '{batch_id}'.")
        if emu.phase(existing) not in ("validating", "running", "cancelling"):
            status = STATUS[emu.phase(existing)]
            return error(409, f"Cannot cancel a batch with status '{status}'.", code="batch_not_cancellable")
        return JSONResponse(batch_json(emu, emu.cancel_batch(batch_id) or existing))

    def authed(handler: Any) -> Any:
        async def guarded(request: Request) -> Response:
            auth = request.headers.get("authorization", "")
            key = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
            if not key:
                return error(401, "You didn't provide an API key.", code="invalid_api_key")
            if emu.config.api_key is not None and key != emu.config.api_key:
                return error(401, "Incorrect API key provided.", code="invalid_api_key")
            return await handler(request)

        return guarded

    return [
        Route("/files", authed(create_file), methods=["POST"]),
        Route("/files", authed(list_files), methods=["GET"]),
        Route("/files/{file_id}", authed(get_file), methods=["GET"]),
        Route("/files/{file_id}", authed(delete_file), methods=["DELETE"]),
        Route("/files/{file_id}/content", authed(file_content), methods=["GET"]),
        Route("/batches", authed(create_batch), methods=["POST"]),
        Route("/batches", authed(list_batches), methods=["GET"]),
        Route("/batches/{batch_id}", authed(get_batch), methods=["GET"]),
        Route("/batches/{batch_id}/cancel", authed(cancel_batch), methods=["POST"]),
    ]


def _page(items: list[dict[str, Any]], request: Request) -> dict[str, Any]:
    limit = max(1, min(int(request.query_params.get("limit", 20)), 10_000))
    after = request.query_params.get("after")
    if after:
        ids = [i["id"] for i in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > limit,
    }
