"""OpenAI Files + Batches routes with OpenAI's exact wire shapes, mounted under `/openai/v1`.

Input problems do not fail `create`: like the real service, the batch is created and then goes
`validating → failed` with `errors.data` (envelope problems: JSON, custom_id, url, method, model
mix). A line whose body the endpoint itself would refuse (unknown model, parameter, value) lands in
the error file with that endpoint's HTTP error, as the real batch runner writes it. Successes go to
the output file; a batch whose every line failed has `output_file_id: null`.
"""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from llmbulk.emulator import rules
from llmbulk.emulator.engine import Emulator, new_id, ordered
from llmbulk.emulator.http import INVALID, emulator_of, int_query, json_body, page_after
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
# A 429 line carries type "requests" (or "tokens") and code "rate_limit_exceeded", as the API's own
# rate-limit errors do ("Rate limit reached for … on requests per min (RPM)").
ITEM_ERRORS = {
    "rate_limit": (429, "requests", "rate_limit_exceeded", "Rate limit reached for requests per min (RPM)."),
    "server_error": (500, "server_error", None, "The server had an error processing your request."),
    "invalid_request": (400, "invalid_request_error", None, "Invalid value for 'messages'."),
}
FILE_TTL = 30 * 86400  # purpose=batch files expire after 30 days by default (SDK files.create docstring)
NO_USAGE = (0, 0)
LIST_LIMITS = {"files": (10_000, 10_000), "batches": (20, 100)}  # default, maximum (SDK docstrings)


def error(status: int, message: str, type_: str = "invalid_request_error", code: str | None = None,
          param: str | None = None) -> JSONResponse:  # fmt: skip
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers={"x-request-id": new_id("req_")})


def unknown_route(request: Request) -> Response:
    """Any path or method the API does not have: OpenAI's own 404 envelope."""
    return error(404, f"Invalid URL ({request.method} {request.url.path.removeprefix('/openai')})")


Handler = Callable[[Request], Awaitable[Response]]


def authed(handler: Handler) -> Handler:
    """`Authorization: Bearer <key>`; any key unless `serve --api-key` set one (401 `invalid_api_key`)."""

    async def guarded(request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not key:
            message = "You didn't provide an API key. You need to provide your API key in an Authorization header."
            return error(401, message, code="invalid_api_key")
        expected = emulator_of(request).config.api_key
        if expected is not None and key != expected:
            return error(401, "Incorrect API key provided.", code="invalid_api_key")
        return await handler(request)

    return guarded


# ---- results --------------------------------------------------------------------------------------


class OpenAICodec:
    """Turns a finished batch's input lines into output and error files."""

    whole_batch_failures = True
    token_limits = True
    input_order = False  # "not guaranteed": join on custom_id (OpenAI Batch guide)

    def http_error(self, status: int, message: str) -> Response:
        """An injected HTTP fault in OpenAI's shape (a 429 is type "requests", code "rate_limit_exceeded")."""
        if status == 429:
            return error(status, message, "requests", "rate_limit_exceeded")
        return error(status, message, "server_error" if status >= 500 else "invalid_request_error")

    def results(self, emu: Emulator, batch: dict[str, Any], done: float, reason: str) -> dict[str, Any]:
        out_id, err_id = new_id("file-"), new_id("file-")
        counts = {"completed": 0, "failed": 0}
        usage = {"input": 0, "output": 0}
        verdicts: dict[str, bool | None] = {}
        with open(emu.file_path(out_id), "wb") as out, open(emu.file_path(err_id), "wb") as err:
            for line in ordered(emu, PROVIDER, _lines(emu, batch["input_file_id"])):
                data = orjson.loads(line)
                ok, written, used = self._line(emu, batch, data, done, reason, verdicts)
                (out if ok else err).write(written)
                counts["completed" if ok else "failed"] += 1
                usage["input"] += used[0]
                usage["output"] += used[1]
        fields: dict[str, Any] = {"counts": counts, "usage": usage, "output_file_id": None, "error_file_id": None}
        expires = batch.get("output_expires_seconds") or FILE_TTL
        for file_id, key, n in (
            (out_id, "output_file_id", counts["completed"]),
            (err_id, "error_file_id", counts["failed"]),
        ):
            if n:
                meta = {"filename": f"batch_{batch['id']}_{key[:-8]}.jsonl", "purpose": "batch_output",
                        "expires_at": int(emu.config.clock()) + expires}  # fmt: skip
                emu.add_file(PROVIDER, file_id, meta)
                fields[key] = file_id
            else:
                emu.file_path(file_id).unlink(missing_ok=True)
        return fields

    def _line(self, emu: Emulator, batch: dict[str, Any], data: dict[str, Any], done: float, reason: str,
              verdicts: dict[str, bool | None]) -> tuple[bool, bytes, tuple[int, int]]:  # fmt: skip
        custom_id = data["custom_id"]
        if not emu.finished_by(custom_id, done):
            if reason == "expired":
                text = "This request could not be executed before the completion window expired."
                return False, _no_response_line(custom_id, "batch_expired", text), NO_USAGE
            text = "This request was cancelled before it could be executed."
            return False, _no_response_line(custom_id, "batch_cancelled", text), NO_USAGE
        problem = rules.openai_line(emu.catalog, batch["endpoint"], data.get("body"), verdicts)
        if problem is not None:
            body = {"error": {"message": problem.message, "type": problem.kind, "param": problem.param,
                              "code": problem.code}}  # fmt: skip
            return False, _line(custom_id, problem.status, body), NO_USAGE
        kind = emu.item_error(custom_id)
        if kind == "timeout":
            return False, _no_response_line(custom_id, "request_timeout", "The request timed out."), NO_USAGE
        if kind is not None:
            return False, _error_line(custom_id, kind), NO_USAGE
        answer = _answer(emu, batch["endpoint"], data, custom_id)
        used = answer.get("usage") or {}
        tokens = (used.get("prompt_tokens", used.get("input_tokens", 0)),
                  used.get("completion_tokens", used.get("output_tokens", 0)))  # fmt: skip
        return True, _line(custom_id, 200, answer), tokens


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


def _answer(emu: Emulator, endpoint: str, data: dict[str, Any], custom_id: str) -> dict[str, Any]:
    body = data.get("body") or {}
    model = body.get("model", "")
    created = int(emu.config.clock())
    if endpoint == "/v1/embeddings":
        given = body.get("input")
        text = given if isinstance(given, str) else str(given)
        vector = [round(((hash_bytes(text) >> i) & 0xFF) / 255 - 0.5, 4) for i in range(0, 64, 8)]
        tokens = max(1, len(text) // 4)
        return {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": vector}], "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}  # fmt: skip
    if endpoint == "/v1/responses":
        return _response_object(emu, body, custom_id, created)
    messages = body.get("messages") or []
    system = "\n".join(str(m.get("content")) for m in messages if m.get("role") in ("system", "developer")) or None
    chat = [m for m in messages if m.get("role") not in ("system", "developer")]
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    reply = respond(NeutralRequest(model, chat, system, max_tokens, _schema(body)), emu.invalid_json(custom_id))
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
    }  # fmt: skip


def _response_object(emu: Emulator, body: dict[str, Any], custom_id: str, created: int) -> dict[str, Any]:
    """A complete Response object (every field the OpenAPI `Response` schema requires, nullable ones too)."""
    given = body.get("input")
    messages = given if isinstance(given, list) else [{"role": "user", "content": given}]
    request = NeutralRequest(body.get("model", ""), messages, body.get("instructions"), body.get("max_output_tokens"),
                             _schema(body))  # fmt: skip
    reply = respond(request, emu.invalid_json(custom_id))
    cut = reply.finish_reason != "stop"
    return {
        "id": new_id("resp_"), "object": "response", "created_at": created,
        "status": "incomplete" if cut else "completed", "completed_at": None if cut else created, "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if cut else None,
        "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"), "model": body.get("model", ""),
        "output": [{"type": "message", "id": new_id("msg_"), "status": "incomplete" if cut else "completed",
                    "role": "assistant", "content": [{"type": "output_text", "text": reply.text, "annotations": [],
                                                      "logprobs": []}]}],
        "parallel_tool_calls": body.get("parallel_tool_calls", True), "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None}, "service_tier": "default", "store": False,
        "temperature": body.get("temperature", 1.0), "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools", []),
        "top_p": body.get("top_p", 1.0), "truncation": body.get("truncation", "disabled"), "user": None,
        "metadata": body.get("metadata") or {},
        "usage": {"input_tokens": reply.input_tokens,
                  "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                  "output_tokens": reply.output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": reply.input_tokens + reply.output_tokens},
    }  # fmt: skip


def _schema(body: dict[str, Any]) -> dict[str, Any] | None:
    fmt = body.get("response_format") or (body.get("text") or {}).get("format") or {}
    if fmt.get("type") == "json_schema":
        return (fmt.get("json_schema") or {}).get("schema") or fmt.get("schema")
    return None


def hash_bytes(text: str) -> int:
    import hashlib

    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


# ---- input validation (batch-level) ---------------------------------------------------------------


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
        problem = _envelope_problem(line, number, endpoint, seen, models)
        if problem is not None:
            errors.append(problem)
            break
    if not errors and count == 0:
        errors.append(_verror("empty_file", None, "The input file is empty."))
    if count > emu.config.max_batch_items:
        limit = emu.config.max_batch_items
        errors.append(_verror("too_many_tasks", None, f"The batch has more than {limit} requests."))
    return errors, count, next(iter(models), None)


def _envelope_problem(
    line: bytes, number: int, endpoint: str, seen: set[str], models: set[str]
) -> dict[str, Any] | None:
    """Codes from the batch validator (stdapi-ai/stdapi.ai#240's list; `method` per the OpenAPI
    BatchRequestInput schema: "Currently only POST is supported" — the error code there is unverified)."""
    try:
        data = orjson.loads(line)
        custom_id = data["custom_id"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return _verror("invalid_json_line", number, "This line is not parseable as valid JSON.")
    if custom_id in seen:
        return _verror("duplicate_custom_id", number, f"The custom_id '{custom_id}' is not unique.")
    seen.add(custom_id)
    if data.get("method") != "POST":
        return {**_verror("invalid_method", number, "The method must be POST."), "param": "method"}
    if data.get("url") != endpoint:
        return _verror("url_mismatch", number, f"The url must match the batch endpoint {endpoint}.")
    models.add(str((data.get("body") or {}).get("model")))
    if len(models) > 1:
        return _verror("model_mismatch", number, "All requests in a batch must use the same model.")
    return None


def _numbered(path: Any) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb") as fh:
        yield from enumerate(fh, start=1)


def _verror(code: str, line: int | None, message: str) -> dict[str, Any]:
    return {"code": code, "line": line, "message": message, "param": None}


# ---- objects --------------------------------------------------------------------------------------


def batch_json(emu: Emulator, batch: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    phase = emu.phase(batch, now)
    created = int(batch["created_at"])
    results = batch.get("results") or {}
    if results and emu.results_hidden(batch["id"]):  # seen at OpenAI: completed, output_file_id still null
        results = {**results, "output_file_id": None, "error_file_id": None}
    cancel_at = emu.cancel_time(batch, now)
    stamp = lambda t: int(t) if t else None  # noqa: E731
    body: dict[str, Any] = {
        "id": batch["id"], "object": "batch", "endpoint": batch["endpoint"], "errors": _errors(batch, phase),
        "input_file_id": batch["input_file_id"], "completion_window": "24h", "status": STATUS[phase],
        "output_file_id": results.get("output_file_id"), "error_file_id": results.get("error_file_id"),
        "created_at": created,
        "in_progress_at": stamp(batch["validated_at"]) if phase not in ("validating", "failed") else None,
        "expires_at": created + 86400, "finalizing_at": None, "completed_at": None, "failed_at": None,
        "expired_at": None, "cancelling_at": stamp(cancel_at), "cancelled_at": None,
        "request_counts": _counts(emu, batch, phase, results, cancel_at), "metadata": batch.get("metadata"),
        "model": batch.get("model"), "usage": None,
    }  # fmt: skip
    if phase in ("finalizing", "ended"):
        body["finalizing_at"] = stamp(batch["ran_at"])
    ended = {"ended": "completed_at", "failed": "failed_at", "expired": "expired_at", "cancelled": "cancelled_at"}
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


def _counts(
    emu: Emulator, batch: dict[str, Any], phase: str, results: dict[str, Any], cancel_at: float | None
) -> dict[str, int]:
    total = batch.get("total", 0)
    if phase in ("running", "cancelling"):
        done = int(total * emu.fraction(batch, cancel_at))
        failed = int(done * sum(emu.config.faults.item_errors.values()))
        return {"total": total, "completed": done - failed, "failed": failed}
    if results:
        return {"total": total, **results["counts"]}
    return {"total": total if phase != "validating" else 0, "completed": 0, "failed": 0}


def _errors(batch: dict[str, Any], phase: str) -> dict[str, Any] | None:
    if phase != "failed":
        return None
    data = batch.get("validation_errors") or []
    if batch["token_limit"]:
        data = [_verror("token_limit_exceeded", None, "Enqueued token limit reached for this model.")]
    elif batch["fail_validation"] and not data:
        data = [_verror("invalid_json_line", 1, "This line is not parseable as valid JSON.")]
    return {"object": "list", "data": data}


def file_json(meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": meta["id"], "object": "file", "bytes": meta["bytes"], "created_at": meta["created_at"],
        "filename": meta.get("filename", "file.jsonl"), "purpose": meta.get("purpose", "batch"),
        "status": "processed", "status_details": None, "expires_at": meta.get("expires_at"),
    }  # fmt: skip


def _list(items: list[dict[str, Any]], request: Request, kind: str) -> Response:
    default, high = LIST_LIMITS[kind]
    limit = int_query(request, "limit", default, 1, high)
    if isinstance(limit, str):
        return error(400, f"Invalid 'limit': {limit}.", param="limit", code="invalid_value")
    page, more = page_after(items, request.query_params.get("after"), limit)
    return JSONResponse({
        "object": "list", "data": page, "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None, "has_more": more,
    })  # fmt: skip


def _my_file(emu: Emulator, file_id: str) -> dict[str, Any] | None:
    meta = emu.get_file(file_id)
    return meta if meta is not None and meta["provider"] == PROVIDER else None


def _my_batch(emu: Emulator, batch_id: str) -> dict[str, Any] | None:
    batch = emu.get_batch(batch_id)
    return batch if batch is not None and batch["provider"] == PROVIDER else None


# ---- handlers -------------------------------------------------------------------------------------


async def create_file(request: Request) -> Response:
    emu = emulator_of(request)
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
    now = int(emu.config.clock())
    meta: dict[str, Any] = {"filename": upload.filename or "upload.jsonl", "purpose": purpose, "created_at": now}
    seconds = form.get("expires_after[seconds]")
    if isinstance(seconds, str) and seconds.isdigit():
        meta["expires_at"] = now + int(seconds)
    elif purpose == "batch":
        meta["expires_at"] = now + FILE_TTL
    return JSONResponse(file_json(emu.add_file(PROVIDER, file_id, meta)))


async def list_files(request: Request) -> Response:
    files = emulator_of(request).list_files(PROVIDER)
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
    meta = _my_file(emulator_of(request), request.path_params["file_id"])
    if meta is None:
        return error(404, f"No such File object: {request.path_params['file_id']}", param="id")
    return JSONResponse(file_json(meta))


async def file_content(request: Request) -> Response:
    emu = emulator_of(request)
    meta = _my_file(emu, request.path_params["file_id"])
    if meta is None:
        return error(404, f"No such File object: {request.path_params['file_id']}", param="id")
    return FileResponse(emu.file_path(meta["id"]), media_type="application/octet-stream")


async def delete_file(request: Request) -> Response:
    emu, file_id = emulator_of(request), request.path_params["file_id"]
    if _my_file(emu, file_id) is None or not emu.delete_file(file_id):
        return error(404, f"No such File object: {file_id}", param="id")
    return JSONResponse({"id": file_id, "object": "file", "deleted": True})


async def create_batch(request: Request) -> Response:
    emu = emulator_of(request)
    body = await json_body(request)
    if body is INVALID or not isinstance(body, dict):
        return error(400, "We could not parse the JSON body of your request.")
    for name in ("input_file_id", "endpoint", "completion_window"):
        if not body.get(name):
            return error(400, f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")
    if body["endpoint"] not in ENDPOINTS:
        return error(400, f"Invalid value for 'endpoint': {body['endpoint']!r}.", param="endpoint")
    if body["completion_window"] != "24h":
        return error(400, "Invalid value for 'completion_window': only '24h' is supported.", param="completion_window")
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
    meta = _my_file(emu, body["input_file_id"])
    if meta is None:
        return error(404, f"No such File object: {body['input_file_id']}", param="input_file_id")
    if meta.get("purpose") != "batch":
        return error(400, "The input file must have purpose 'batch'.", param="input_file_id")
    errors, count, model = validate_input(emu, body["input_file_id"], body["endpoint"])
    record = {
        "input_file_id": body["input_file_id"], "endpoint": body["endpoint"], "metadata": metadata,
        "total": count, "model": model, "validation_errors": errors, "output_expires_seconds": expires,
    }  # fmt: skip
    batch = emu.create_batch(PROVIDER, new_id("batch_"), record)
    return JSONResponse(batch_json(emu, batch, now=batch["created_at"]))


async def get_batch(request: Request) -> Response:
    emu = emulator_of(request)
    batch = _my_batch(emu, request.path_params["batch_id"])
    if batch is None:
        return error(404, f"No batch found with id '{request.path_params['batch_id']}'.")
    return JSONResponse(batch_json(emu, batch))


async def list_batches(request: Request) -> Response:
    emu = emulator_of(request)
    items = [batch_json(emu, emu.get_batch(b["id"]) or b) for b in emu.list_batches(PROVIDER)]
    return _list(items, request, "batches")


async def cancel_batch(request: Request) -> Response:
    emu, batch_id = emulator_of(request), request.path_params["batch_id"]
    existing = _my_batch(emu, batch_id)
    if existing is None:
        return error(404, f"No batch found with id '{batch_id}'.")
    if emu.phase(existing) not in ("validating", "running", "cancelling"):
        status = STATUS[emu.phase(existing)]
        return error(409, f"Cannot cancel a batch with status '{status}'.", code="batch_not_cancellable")
    return JSONResponse(batch_json(emu, emu.cancel_batch(batch_id) or existing))


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
CODEC = OpenAICodec()
REQUEST_ID_HEADER = "x-request-id"
