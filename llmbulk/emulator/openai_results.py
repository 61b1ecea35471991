"""Result files of the OpenAI-family emulated batches: output and error lines, and the answers in them.

A line whose body the endpoint itself would refuse (unknown model, parameter, value) lands in the
error file with that endpoint's HTTP error, as the real batch runner writes it. Successes go to the
output file; a batch whose every line failed has no output file. One codec per vendor: Azure adds
content-filter results to answers and never expires a batch (MicrosoftDocs/azure-ai-docs
includes/batch/batch-python.md: output lines carry `content_filter_results`; long jobs run on).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import orjson
from starlette.responses import JSONResponse, Response

from llmbulk.emulator import rules
from llmbulk.emulator.engine import Emulator, new_id, ordered
from llmbulk.emulator.parts import Files, Seen
from llmbulk.emulator.parts_openai import openai_attachments
from llmbulk.emulator.replies import NeutralRequest, respond
from llmbulk.emulator.vendors import Vendor

# A 429 line carries type "requests" (or "tokens") and code "rate_limit_exceeded", as the API's own
# rate-limit errors do ("Rate limit reached for … on requests per min (RPM)").
ITEM_ERRORS = {
    "rate_limit": (429, "requests", "rate_limit_exceeded", "Rate limit reached for requests per min (RPM)."),
    "server_error": (500, "server_error", None, "The server had an error processing your request."),
    "invalid_request": (400, "invalid_request_error", None, "Invalid value for 'messages'."),
}
FILE_TTL = 30 * 86400  # purpose=batch files expire after 30 days by default (SDK files.create docstring)
NO_USAGE = (0, 0)
SAFE = {"filtered": False, "severity": "safe"}
FILTERS = {"hate": SAFE, "self_harm": SAFE, "sexual": SAFE, "violence": SAFE}


def error(status: int, message: str, type_: str = "invalid_request_error", code: str | None = None,
          param: str | None = None) -> JSONResponse:  # fmt: skip
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers={"x-request-id": new_id("req_")})


class OpenAICodec:
    """Turns a finished batch's input lines into output and error files, as `vendor` writes them."""

    whole_batch_failures = True
    token_limits = True
    input_order = False  # "not guaranteed": join on custom_id (OpenAI Batch guide; Azure batch guide)

    def __init__(self, vendor: Vendor) -> None:
        self.vendor = vendor
        self.expires = vendor.expires

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
        files = Files(emu, self.vendor.name, batch.get("owner"))
        with open(emu.file_path(out_id), "wb") as out, open(emu.file_path(err_id), "wb") as err:
            for line in ordered(emu, self.vendor.name, _lines(emu, batch["input_file_id"])):
                data = orjson.loads(line)
                ok, written, used = self._line(emu, batch, data, done, reason, verdicts, files)
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
                emu.add_file(self.vendor.name, file_id, meta)
                fields[key] = file_id
            else:
                emu.file_path(file_id).unlink(missing_ok=True)
        return fields

    def _line(self, emu: Emulator, batch: dict[str, Any], data: dict[str, Any], done: float, reason: str,
              verdicts: dict[str, bool | None], files: Files) -> tuple[bool, bytes, tuple[int, int]]:  # fmt: skip
        custom_id = data["custom_id"]
        if not emu.finished_by(custom_id, done):
            if reason == "expired":
                text = "This request could not be executed before the completion window expired."
                return False, _no_response_line(custom_id, "batch_expired", text), NO_USAGE
            text = "This request was cancelled before it could be executed."
            return False, _no_response_line(custom_id, "batch_cancelled", text), NO_USAGE
        models = self.vendor.models if not self.vendor.deployments else "azure"
        problem = rules.openai_line(emu.catalog, batch["endpoint"], data.get("body"), verdicts, models)
        seen: list[Seen] = []
        if problem is None:
            seen, problem = openai_attachments(batch["endpoint"], data["body"], files)
        if problem is not None:
            body = {"error": {"message": problem.message, "type": problem.kind, "param": problem.param,
                              "code": problem.code}}  # fmt: skip
            return False, _line(custom_id, problem.status, body), NO_USAGE
        kind = emu.item_error(custom_id)
        if kind == "timeout":
            return False, _no_response_line(custom_id, "request_timeout", "The request timed out."), NO_USAGE
        if kind is not None:
            return False, _error_line(custom_id, kind), NO_USAGE
        answer = _answer(emu, batch["endpoint"], data, custom_id, [(s.media_type, s.sha256) for s in seen])
        if self.vendor.content_filter and answer.get("object") == "chat.completion":
            answer["prompt_filter_results"] = [{"prompt_index": 0, "content_filter_results": FILTERS}]
            for choice in answer["choices"]:
                choice["content_filter_results"] = FILTERS
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


def _answer(emu: Emulator, endpoint: str, data: dict[str, Any], custom_id: str,
            attachments: list[tuple[str, str]]) -> dict[str, Any]:  # fmt: skip
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
        return _response_object(emu, body, custom_id, created, attachments)
    messages = body.get("messages") or []
    system = "\n".join(str(m.get("content")) for m in messages if m.get("role") in ("system", "developer")) or None
    chat = [m for m in messages if m.get("role") not in ("system", "developer")]
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    request = NeutralRequest(model, chat, system, max_tokens, _schema(body), attachments=attachments)
    reply = respond(request, emu.invalid_json(custom_id))
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


def _response_object(emu: Emulator, body: dict[str, Any], custom_id: str, created: int,
                     attachments: list[tuple[str, str]]) -> dict[str, Any]:  # fmt: skip
    """A complete Response object (every field the OpenAPI `Response` schema requires, nullable ones too)."""
    given = body.get("input")
    messages = given if isinstance(given, list) else [{"role": "user", "content": given}]
    request = NeutralRequest(body.get("model", ""), messages, body.get("instructions"), body.get("max_output_tokens"),
                             _schema(body), attachments=attachments)  # fmt: skip
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
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")
