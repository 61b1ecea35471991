"""Anthropic Message Batches routes under `/anthropic/v1/messages/batches`, with Anthropic's wire shapes.

Requests arrive in the create body (no file). Create checks only the batch envelope (requests,
custom_id); each request's params are validated while the batch runs, so a bad one ends `errored`
with the error the Messages API would give it (the batch is accepted). Per-item counts stay 0
until the batch ends; `results_url` is an absolute URL on the emulator itself; results are JSONL
without blank lines, in no particular order.

Auth: `x-api-key`, or `Authorization: Bearer` — anthropic 2.x sends the key as a Bearer token and
the API takes it (x-api-key wins when both are sent; Anthropic's 2026-10-21 migration notes). The
docs' "x-api-key only" predates that SDK; the installed SDK wins.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from llmbulk.emulator import files_anthropic, rules
from llmbulk.emulator.anthropic_body import read_requests
from llmbulk.emulator.engine import Emulator, new_id, ordered
from llmbulk.emulator.http import INVALID, base_url, emulator_of, int_query, json_body, page_after, page_before
from llmbulk.emulator.owners import owner_of
from llmbulk.emulator.parts import Files
from llmbulk.emulator.parts_anthropic import anthropic_attachments
from llmbulk.emulator.quotas import QuotaRefused
from llmbulk.emulator.replies import NeutralRequest, respond

PROVIDER = "anthropic"
ITEM_ERRORS = {
    "rate_limit": ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    "server_error": ("api_error", "Internal server error."),
    "invalid_request": ("invalid_request_error", "messages: at least one message is required"),
    "timeout": ("timeout_error", "Request timed out."),
}


HTTP_ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
    409: "conflict_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
    504: "timeout_error", 529: "overloaded_error",
}  # fmt: skip


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def error(status: int, kind: str, message: str) -> JSONResponse:
    request_id = new_id("req_")
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id}
    return JSONResponse(body, status_code=status, headers={"request-id": request_id})


def unknown_route(request: Request) -> Response:
    return error(404, "not_found_error", "Not Found")


Handler = Callable[[Request], Awaitable[Response]]


def guarded(handler: Handler) -> Handler:
    """Key first (401 `authentication_error`), then the required `anthropic-version` header (400).

    Source: Anthropic API overview ("x-api-key … anthropic-version … required on every request").
    """

    async def checked(request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        key = request.headers.get("x-api-key") or (auth[7:].strip() if auth.lower().startswith("bearer ") else "")
        if not key:
            return error(401, "authentication_error", "x-api-key header is required")
        expected = emulator_of(request).config.api_key
        if expected is not None and key != expected:
            return error(401, "authentication_error", "invalid x-api-key")
        version = request.headers.get("anthropic-version")
        if not version:
            return error(400, "invalid_request_error", "anthropic-version: header is required")
        if version not in rules.ANTHROPIC_VERSIONS:
            return error(400, "invalid_request_error", f"anthropic-version: {version!r} is not a valid version")
        return await handler(request)

    return checked


# ---- results --------------------------------------------------------------------------------------


class AnthropicCodec:
    """Writes the results JSONL of a finished batch, validating each request as the API runs it."""

    whole_batch_failures = False  # a bad create is a 400; no batch fails as a whole
    token_limits = False
    input_order = False  # "results may be in any order" (Message Batches docs): join on custom_id

    def http_error(self, status: int, message: str) -> Response:
        """An injected HTTP fault with the error type Anthropic's errors page gives that status."""
        return error(status, HTTP_ERROR_TYPES.get(status, "api_error"), message)

    def results(self, emu: Emulator, batch: dict[str, Any], done: float, reason: str) -> dict[str, Any]:
        path = emu.file_path(f"{batch['id']}-results")
        counts = {"succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        with open(path, "wb") as out:
            for line in ordered(emu, PROVIDER, self._lines(emu, batch, done, reason, counts)):
                out.write(line)
        return {"counts": counts, "file": f"{batch['id']}-results"}

    def _lines(self, emu: Emulator, batch: dict[str, Any], done: float, reason: str,
               counts: dict[str, int]) -> Iterator[bytes]:  # fmt: skip
        version = batch.get("api_version") or rules.ANTHROPIC_VERSIONS[-1]
        verdicts: dict[str, bool | None] = {}
        files = Files(emu, PROVIDER, batch.get("owner"))
        with open(emu.file_path(batch["input_file"]), "rb") as fh:
            for raw in fh:
                item = orjson.loads(raw)
                custom_id = item["custom_id"]
                if not emu.finished_by(custom_id, done):
                    kind = "canceled" if reason == "cancelled" else "expired"
                    counts[kind] += 1
                    yield orjson.dumps({"custom_id": custom_id, "result": {"type": kind}}) + b"\n"
                    continue
                result = self._result(emu, item, custom_id, version, verdicts, files)
                counts[result["type"]] += 1
                yield orjson.dumps({"custom_id": custom_id, "result": result}) + b"\n"

    def _result(self, emu: Emulator, item: dict[str, Any], custom_id: str, version: str,
                verdicts: dict[str, bool | None], files: Files) -> dict[str, Any]:  # fmt: skip
        problem = rules.anthropic_params(emu.catalog, item.get("params"), version, verdicts)
        if problem is not None:
            return _errored(problem.kind, problem.message)
        seen, problem = anthropic_attachments(item["params"], files)
        if problem is not None:
            return _errored(problem.kind, problem.message, problem.code)
        error_kind = emu.item_error(custom_id)
        if error_kind is not None:
            return _errored(*ITEM_ERRORS[error_kind])
        attachments = [(s.media_type, s.sha256) for s in seen]
        return {"type": "succeeded", "message": _message(emu, item["params"], custom_id, attachments)}


def _errored(kind: str, message: str, code: str | None = None) -> dict[str, Any]:
    detail: dict[str, Any] = {"type": kind, "message": message}
    if code is not None:
        detail["details"] = {"error_code": code}
    inner = {"type": "error", "error": detail, "request_id": new_id("req_")}
    return {"type": "errored", "error": inner}


def _message(emu: Emulator, params: dict[str, Any], custom_id: str,
             attachments: list[tuple[str, str]]) -> dict[str, Any]:  # fmt: skip
    system = params.get("system")
    if isinstance(system, list):
        system = " ".join(str(b.get("text", "")) for b in system)
    tools = params.get("tools") or []
    forced = (params.get("tool_choice") or {}).get("name")
    tool = next((t for t in tools if t.get("name") == forced), None)
    native = _output_format(params)  # structured outputs: the JSON arrives as a text block
    if native is not None:
        schema, tool = native.get("schema"), None
    else:
        schema = tool.get("input_schema") if tool else None
    request = NeutralRequest(params.get("model", ""), params.get("messages") or [], system, params.get("max_tokens"),
                             schema, attachments=attachments)  # fmt: skip
    reply = respond(request, emu.invalid_json(custom_id))
    if tool is not None:
        try:
            content: list[dict[str, Any]] = [
                {"type": "tool_use", "id": new_id("toolu_"), "name": tool["name"], "input": orjson.loads(reply.text)}
            ]
            stop = "tool_use"
        except orjson.JSONDecodeError:
            content, stop = [{"type": "text", "text": reply.text}], "end_turn"
    else:
        content = [{"type": "text", "text": reply.text}]
        stop = "end_turn" if reply.finish_reason == "stop" else "max_tokens"
    return {
        "id": new_id("msg_"), "type": "message", "role": "assistant", "model": params.get("model", ""),
        "content": content, "stop_reason": stop, "stop_sequence": None,
        # service_tier "batch": what batch results report (Message Batches docs, usage object)
        "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "service_tier": "batch"},
    }  # fmt: skip


def _output_format(params: dict[str, Any]) -> dict[str, Any] | None:
    config = params.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    return fmt if isinstance(fmt, dict) else None


def _input_tokens(params: dict[str, Any]) -> int:
    text = orjson.dumps([params.get("system"), params.get("messages"), params.get("tools")])
    return max(1, len(text) // 4)


# ---- objects --------------------------------------------------------------------------------------


def batch_json(emu: Emulator, batch: dict[str, Any], base: str, now: float | None = None) -> dict[str, Any]:
    phase = emu.phase(batch, now)
    total = batch["total"]
    results = batch.get("results") or {}
    cancel_at = emu.cancel_time(batch, now)
    ended = phase in ("ended", "expired", "cancelled", "failed")
    counts = {"processing": 0 if ended else total, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    if results:
        counts.update(results["counts"])
    body: dict[str, Any] = {
        "id": batch["id"], "type": "message_batch",
        "processing_status": "ended" if ended else ("canceling" if phase == "cancelling" else "in_progress"),
        "request_counts": counts, "ended_at": None, "created_at": rfc3339(batch["created_at"]),
        "expires_at": rfc3339(batch["created_at"] + 86400), "archived_at": None,
        "cancel_initiated_at": rfc3339(cancel_at) if cancel_at else None,
        "results_url": None,
    }  # fmt: skip
    if ended:
        end = batch["ran_at"]
        if cancel_at:
            end = cancel_at + emu.config.cancel_seconds
        body["ended_at"] = rfc3339(end)
        body["results_url"] = f"{base}/v1/messages/batches/{batch['id']}/results"
    return body


def _base(request: Request) -> str:
    return base_url(request, "/anthropic")


def _my_batch(request: Request) -> dict[str, Any] | None:
    batch = emulator_of(request).get_batch(request.path_params["batch_id"])
    return batch if batch is not None and batch["provider"] == PROVIDER else None


def _missing(request: Request) -> Response:
    return error(404, "not_found_error", f"No message batch found with id {request.path_params['batch_id']}")


# ---- handlers -------------------------------------------------------------------------------------


async def create(request: Request) -> Response:
    emu = emulator_of(request)
    batch_id = new_id("msgbatch_")
    input_file = f"{batch_id}-requests"
    total, problem = await read_requests(request.stream(), emu.file_path(input_file))
    if problem is not None:
        return error(*problem)
    record = {"input_file": input_file, "total": total, "api_version": request.headers["anthropic-version"],
              "owner": owner_of(request), "files_beta": files_anthropic.has_files_beta(request)}  # fmt: skip
    try:
        batch = emu.create_batch(PROVIDER, batch_id, record)
    except QuotaRefused as refused:
        emu.file_path(input_file).unlink(missing_ok=True)  # no batch: its requests are not kept
        return emu.codecs[PROVIDER].http_error(429, refused.message)
    return JSONResponse(batch_json(emu, batch, _base(request), now=batch["created_at"]))


async def retrieve(request: Request) -> Response:
    batch = _my_batch(request)
    if batch is None:
        return _missing(request)
    return JSONResponse(batch_json(emulator_of(request), batch, _base(request)))


async def list_batches(request: Request) -> Response:
    """Newest first; `limit` 1..1000 (default 20), `after_id` / `before_id` cursors (API reference)."""
    emu = emulator_of(request)
    limit = int_query(request, "limit", 20, 1, 1000)
    if isinstance(limit, str):
        return error(400, "invalid_request_error", limit)
    records = emu.list_batches(PROVIDER)
    before = request.query_params.get("before_id")
    if before is not None and request.query_params.get("after_id") is None:
        chosen, more = page_before(records, before, limit)
    else:
        chosen, more = page_after(records, request.query_params.get("after_id"), limit)
    # Only the page's batches are brought up to date (results generated for those that just ended).
    page = [batch_json(emu, emu.get_batch(b["id"]) or b, _base(request)) for b in chosen]
    return JSONResponse({
        "data": page, "has_more": more,
        "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None,
    })  # fmt: skip


async def cancel(request: Request) -> Response:
    batch = _my_batch(request)
    if batch is None:
        return _missing(request)
    emu = emulator_of(request)
    batch = emu.cancel_batch(batch["id"]) or batch
    return JSONResponse(batch_json(emu, batch, _base(request)))


async def delete(request: Request) -> Response:
    batch = _my_batch(request)
    if batch is None:
        return _missing(request)
    emu = emulator_of(request)
    if batch_json(emu, batch, _base(request))["processing_status"] != "ended":
        return error(400, "invalid_request_error", "Batches can only be deleted once they have ended.")
    emu.delete_batch(batch["id"])
    emu.audit("batch.deleted", PROVIDER, batch["id"])
    return JSONResponse({"id": batch["id"], "type": "message_batch_deleted"})


async def results(request: Request) -> Response:
    batch = _my_batch(request)
    if batch is None:
        return _missing(request)
    emu = emulator_of(request)
    if not batch.get("results"):
        return error(400, "invalid_request_error", "Results are only available once the batch has ended.")
    if emu.results_hidden(batch["id"]):  # seen at Anthropic: results_url 404s briefly after the end
        return error(404, "not_found_error", f"No results found for message batch {batch['id']}")
    path = emu.file_path(batch["results"]["file"])

    def stream() -> Iterator[bytes]:
        with open(path, "rb") as fh:
            yield from iter(lambda: fh.read(1 << 20), b"")

    return StreamingResponse(stream(), media_type="application/x-jsonl")


async def count_tokens(request: Request) -> Response:
    """`POST /v1/messages/count_tokens` → `{"input_tokens": n}`: the Messages checks without `max_tokens`
    (Anthropic token counting API reference)."""
    body = await json_body(request)
    if body is INVALID or not isinstance(body, dict):
        return error(400, "invalid_request_error", "The request body is not valid JSON.")
    params = {"max_tokens": 1, **body}
    problem = rules.anthropic_params(emulator_of(request).catalog, params, request.headers["anthropic-version"], {})
    if problem is not None and not problem.message.startswith("max_tokens"):
        return error(problem.status, problem.kind, problem.message)
    return JSONResponse({"input_tokens": _input_tokens(body)})


async def _unknown(request: Request) -> Response:
    return unknown_route(request)


ROUTES = [
    Route("/v1/messages/count_tokens", guarded(count_tokens), methods=["POST"]),
    Route("/v1/messages/batches", guarded(create), methods=["POST"]),
    Route("/v1/messages/batches", guarded(list_batches), methods=["GET"]),
    Route("/v1/messages/batches/{batch_id}", guarded(retrieve), methods=["GET"]),
    Route("/v1/messages/batches/{batch_id}", guarded(delete), methods=["DELETE"]),
    Route("/v1/messages/batches/{batch_id}/cancel", guarded(cancel), methods=["POST"]),
    Route("/v1/messages/batches/{batch_id}/results", guarded(results), methods=["GET"]),
    Route("/v1/files", guarded(files_anthropic.upload), methods=["POST"]),
    Route("/v1/files", guarded(files_anthropic.list_files), methods=["GET"]),
    Route("/v1/files/{file_id}", guarded(files_anthropic.retrieve), methods=["GET"]),
    Route("/v1/files/{file_id}", guarded(files_anthropic.delete), methods=["DELETE"]),
    Route("/v1/files/{file_id}/content", guarded(files_anthropic.content), methods=["GET"]),
    Route("/{path:path}", _unknown, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
]
CODEC = AnthropicCodec()
REQUEST_ID_HEADER = "request-id"
