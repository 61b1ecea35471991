"""Anthropic Message Batches routes under `/anthropic/v1/messages/batches`, with Anthropic's wire shapes.

Requests arrive in the create body (no file). Per-item counts stay 0 until the batch ends;
`results_url` is an absolute URL on the emulator itself; results are JSONL without blank lines,
in no particular order. Both `Authorization: Bearer` (what the SDK sends) and `x-api-key` work.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from llmbulk.emulator.engine import Emulator, new_id, reversed_blocks
from llmbulk.emulator.replies import NeutralRequest, respond

PROVIDER = "anthropic"
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MAX_REQUESTS = 100_000
MAX_BODY_BYTES = 256 * 1024 * 1024
ITEM_ERRORS = {
    "rate_limit": ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    "server_error": ("api_error", "Internal server error."),
    "invalid_request": ("invalid_request_error", "messages: at least one message is required"),
    "timeout": ("timeout_error", "Request timed out."),
}


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def error(status: int, kind: str, message: str) -> JSONResponse:
    request_id = new_id("req_")
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id}
    return JSONResponse(body, status_code=status, headers={"request-id": request_id})


def _authorised(request: Request, emu: Emulator) -> bool:
    auth = request.headers.get("authorization", "")
    key = auth[7:] if auth.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
    return bool(key) and (emu.config.api_key is None or key == emu.config.api_key)


class AnthropicCodec:
    """Writes the results JSONL of a finished batch."""

    def results(self, emu: Emulator, batch: dict[str, Any], done: float, reason: str) -> dict[str, Any]:
        path = emu.file_path(f"{batch['id']}-results")
        counts = {"succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        with open(path, "wb") as out:
            for line in reversed_blocks(self._lines(emu, batch, done, reason, counts)):
                out.write(line)
        return {"counts": counts, "file": f"{batch['id']}-results"}

    def _lines(
        self, emu: Emulator, batch: dict[str, Any], done: float, reason: str, counts: dict[str, int]
    ) -> Iterator[bytes]:
        with open(emu.file_path(batch["input_file"]), "rb") as fh:
            for raw in fh:
                item = orjson.loads(raw)
                custom_id = item["custom_id"]
                if not emu.finished_by(custom_id, done):
                    kind = "canceled" if reason == "cancelled" else "expired"
                    counts[kind] += 1
                    yield orjson.dumps({"custom_id": custom_id, "result": {"type": kind}}) + b"\n"
                    continue
                error_kind = emu.item_error(custom_id)
                if error_kind is not None:
                    kind, message = ITEM_ERRORS[error_kind]
                    counts["errored"] += 1
                    inner = {"type": "error", "error": {"type": kind, "message": message}, "request_id": new_id("req_")}
                    yield orjson.dumps({"custom_id": custom_id, "result": {"type": "errored", "error": inner}}) + b"\n"
                    continue
                counts["succeeded"] += 1
                message = _message(emu, item["params"], custom_id)
                yield (
                    orjson.dumps({"custom_id": custom_id, "result": {"type": "succeeded", "message": message}}) + b"\n"
                )


def _message(emu: Emulator, params: dict[str, Any], custom_id: str) -> dict[str, Any]:
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
        schema = tool.get("input_schema") if tool else ((params.get("output_format") or {}).get("schema"))
    request = NeutralRequest(
        params.get("model", ""), params.get("messages") or [], system, params.get("max_tokens"), schema
    )
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
        "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
    }  # fmt: skip


def _output_format(params: dict[str, Any]) -> dict[str, Any] | None:
    """`output_config.format` when set (checked at create), else None."""
    config = params.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    return fmt if isinstance(fmt, dict) else None


def _output_config_problem(params: dict[str, Any]) -> str | None:
    """What the real API would reject in `output_config` (path relative to params), or None."""
    if "output_config" not in params:
        return None
    config = params["output_config"]
    if not isinstance(config, dict):
        return "output_config: Input should be a valid dictionary"
    fmt = config.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        return "output_config.format: Input should be a valid dictionary"
    if fmt.get("type") != "json_schema":
        return "output_config.format.type: Input should be 'json_schema'"
    if "schema" not in fmt:
        return "output_config.format.schema: Field required"
    if not isinstance(fmt["schema"], dict):
        return "output_config.format.schema: Input should be a valid dictionary"
    return None


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


def routes(emu: Emulator) -> list[Route]:
    emu.codecs[PROVIDER] = AnthropicCodec()

    def base(request: Request) -> str:
        return f"{request.url.scheme}://{request.url.netloc}/anthropic"

    def guard(request: Request) -> Response | None:
        if not _authorised(request, emu):
            return error(401, "authentication_error", "invalid x-api-key")
        return None

    async def create(request: Request) -> Response:
        if (denied := guard(request)) is not None:
            return denied
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            return error(413, "request_too_large", f"Request exceeds the maximum size of {MAX_BODY_BYTES} bytes.")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return error(400, "invalid_request_error", "The request body is not valid JSON.")
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            return error(400, "invalid_request_error", "requests: at least 1 request is required")
        if len(requests) > MAX_REQUESTS:
            return error(400, "invalid_request_error", f"requests: at most {MAX_REQUESTS} requests are allowed")
        seen: set[str] = set()
        for index, item in enumerate(requests):
            custom_id = item.get("custom_id") if isinstance(item, dict) else None
            if not isinstance(custom_id, str) or not CUSTOM_ID.match(custom_id):
                message = f"requests.{index}.custom_id: String should match pattern '{CUSTOM_ID.pattern}'"
                return error(400, "invalid_request_error", message)
            if custom_id in seen:
                return error(
                    400, "invalid_request_error", f"requests.{index}.custom_id: duplicate custom_id {custom_id!r}"
                )
            seen.add(custom_id)
            params = item.get("params") or {}
            if not params.get("model") or not params.get("messages") or int(params.get("max_tokens") or 0) < 1:
                return error(
                    400,
                    "invalid_request_error",
                    f"requests.{index}.params: model, messages and max_tokens ≥ 1 are required",
                )
            if params.get("stream"):
                return error(400, "invalid_request_error", f"requests.{index}.params.stream: not allowed in batches")
            if (problem := _output_config_problem(params)) is not None:
                return error(400, "invalid_request_error", f"requests.{index}.params.{problem}")
        batch_id = new_id("msgbatch_")
        input_file = f"{batch_id}-requests"
        with open(emu.file_path(input_file), "wb") as out:
            for item in requests:
                out.write(orjson.dumps(item) + b"\n")
        batch = emu.create_batch(PROVIDER, batch_id, {"input_file": input_file, "total": len(requests)})
        return JSONResponse(batch_json(emu, batch, base(request), now=batch["created_at"]))

    async def retrieve(request: Request) -> Response:
        if (denied := guard(request)) is not None:
            return denied
        batch = emu.get_batch(request.path_params["batch_id"])
        if batch is None or batch["provider"] != PROVIDER:
            return error(404, "not_found_error", f"No message batch found with id {request.path_params['batch_id']}")
        return JSONResponse(batch_json(emu, batch, base(request)))

    async def list_batches(request: Request) -> Response:
        if (denied := guard(request)) is not None:
            return denied
        limit = max(1, min(int(request.query_params.get("limit", 20)), 1000))
        items = [batch_json(emu, emu.get_batch(b["id"]) or b, base(request)) for b in emu.list_batches(PROVIDER)]
        ids = [i["id"] for i in items]
        if (after := request.query_params.get("after_id")) is not None:
            items = items[ids.index(after) + 1 :] if after in ids else []
        elif (before := request.query_params.get("before_id")) is not None:
            items = items[: ids.index(before)][-limit:] if before in ids else []
        page = items[:limit]
        return JSONResponse({
            "data": page, "has_more": len(items) > limit,
            "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None,
        })  # fmt: skip

    async def cancel(request: Request) -> Response:
        if (denied := guard(request)) is not None:
            return denied
        batch = emu.get_batch(request.path_params["batch_id"])
        if batch is None or batch["provider"] != PROVIDER:
            return error(404, "not_found_error", f"No message batch found with id {request.path_params['batch_id']}")
        batch = emu.cancel_batch(batch["id"]) or batch
        return JSONResponse(batch_json(emu, batch, base(request)))

    async def delete(request: Request) -> Response:
        if (denied := guard(request)) is not None:
            return denied
        batch = emu.get_batch(request.path_params["batch_id"])
        if batch is None or batch["provider"] != PROVIDER:
            return error(404, "not_found_error", f"No message batch found with id {request.path_params['batch_id']}")
        if batch_json(emu, batch, base(request))["processing_status"] != "ended":
            return error(400, "invalid_request_error", "Batches can only be deleted once they have ended.")
        emu.delete_batch(batch["id"])
        emu.audit("batch.deleted", PROVIDER, batch["id"])
        return JSONResponse({"id": batch["id"], "type": "message_batch_deleted"})

    async def results(request: Request) -> Response:
        if (denied := guard(request)) is not None:
            return denied
        batch = emu.get_batch(request.path_params["batch_id"])
        if batch is None or batch["provider"] != PROVIDER:
            return error(404, "not_found_error", f"No message batch found with id {request.path_params['batch_id']}")
        if not batch.get("results"):
            return error(400, "invalid_request_error", "Results are only available once the batch has ended.")
        if emu.results_hidden(batch["id"]):  # seen at Anthropic: results_url 404s briefly after the end
            return error(404, "not_found_error", f"No results found for message batch {batch['id']}")
        path = emu.file_path(batch["results"]["file"])

        def stream() -> Iterator[bytes]:
            with open(path, "rb") as fh:
                yield from iter(lambda: fh.read(1 << 20), b"")

        return StreamingResponse(stream(), media_type="application/x-jsonl")

    return [
        Route("/v1/messages/batches", create, methods=["POST"]),
        Route("/v1/messages/batches", list_batches, methods=["GET"]),
        Route("/v1/messages/batches/{batch_id}", retrieve, methods=["GET"]),
        Route("/v1/messages/batches/{batch_id}", delete, methods=["DELETE"]),
        Route("/v1/messages/batches/{batch_id}/cancel", cancel, methods=["POST"]),
        Route("/v1/messages/batches/{batch_id}/results", results, methods=["GET"]),
    ]
