"""Gemini adapter: line codecs and status mapping built from the SDK's own types, error mapping, and
the adapter's calls against an in-process `httpx2.MockTransport` (no network)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
import orjson
import pytest
from google.genai import _api_client, batches, errors, types

from llmbulk.errors import ConfigError, InputError, ProviderError, QuotaError, UsageError
from llmbulk.models import BatchState, BatchStatus, Outcome, Task
from llmbulk.providers.base import ProviderSettings, ShardInput
from llmbulk.providers.gemini import (
    INLINE_MAX_BYTES,
    LIMITS,
    STATES,
    UNSPECIFIED_STATES,
    GeminiBatchProvider,
    batch_status,
)

KEY = "test-secret-key-123"
BASE = "http://emu.test"
LABELS = {"llmbulk_job": "j1", "llmbulk_shard": "j1-s1"}
TASK = Task(
    3,
    "r3",
    [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"}, {"role": "user", "content": "more"}],
    "be brief",
    {"max_tokens": 5, "temperature": 0.2, "top_p": 0.9, "stop": "END", "seed": 7},
)
# Every state the Gemini Developer API sends (the SDK renames the first seven) plus the Vertex-only ones.
WIRE_STATES = [
    f"BATCH_STATE_{s}"
    for s in (
        "UNSPECIFIED",
        "PENDING",
        "RUNNING",
        "SUCCEEDED",
        "FAILED",
        "CANCELLED",
        "EXPIRED",
        "QUEUED",
        "CANCELLING",
        "PAUSED",
        "UPDATING",
        "PARTIALLY_SUCCEEDED",
    )
]
EXPECTED = {
    "PENDING": BatchState.VALIDATING,
    "QUEUED": BatchState.VALIDATING,
    "RUNNING": BatchState.RUNNING,
    "PAUSED": BatchState.RUNNING,
    "UPDATING": BatchState.RUNNING,
    "SUCCEEDED": BatchState.ENDED,
    "PARTIALLY_SUCCEEDED": BatchState.ENDED,
    "FAILED": BatchState.FAILED,
    "CANCELLING": BatchState.CANCELLING,
    "CANCELLED": BatchState.CANCELLED,
    "EXPIRED": BatchState.EXPIRED,
}
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _adapter(clock: Callable[[], float] | None = None, **kwargs: Any) -> GeminiBatchProvider:
    return GeminiBatchProvider(
        ProviderSettings(model="gemini-2.5-flash", api_key=KEY, base_url=BASE, **kwargs),
        clock=clock or (lambda: NOW.timestamp()),
    )


# ---- encode ----------------------------------------------------------------------------------


def test_line_shape() -> None:
    line = orjson.loads(_adapter().encode(TASK, "j1-3-1"))
    assert line == {
        "key": "j1-3-1",
        "request": {
            "contents": [
                {"role": "user", "parts": [{"text": "hello"}]},
                {"role": "model", "parts": [{"text": "hi"}]},
                {"role": "user", "parts": [{"text": "more"}]},
            ],
            "systemInstruction": {"parts": [{"text": "be brief"}]},
            "generationConfig": {
                "maxOutputTokens": 5,
                "temperature": 0.2,
                "topP": 0.9,
                "stopSequences": ["END"],
                "seed": 7,
            },
        },
    }


def test_request_round_trips_through_the_sdk_types() -> None:
    """Every key is a field the SDK knows (its models forbid extras) and the SDK re-serializes it unchanged."""
    request = orjson.loads(_adapter().encode(TASK, "j1-3-1"))["request"]
    assert set(request) <= {"contents", "systemInstruction", "generationConfig"}
    types.GenerationConfig.model_validate(request["generationConfig"])
    config = types.GenerateContentConfig.model_validate(
        {**request["generationConfig"], "systemInstruction": request["systemInstruction"]}
    )
    inlined = types.InlinedRequest(
        contents=[types.Content.model_validate(c) for c in request["contents"]], config=config
    )
    assert batches._InlinedRequest_to_mldev(None, inlined)["request"] == request


def test_minimal_line_has_no_empty_sections() -> None:
    line = orjson.loads(_adapter().encode(Task(0, "k", [{"role": "user", "content": "x"}]), "j1-0-1"))
    assert line["request"] == {"contents": [{"role": "user", "parts": [{"text": "x"}]}]}


def test_system_messages_join_the_system_instruction_and_bad_roles_fail() -> None:
    task = Task(0, "k", [{"role": "system", "content": "rules"}, {"role": "user", "content": "x"}], "base")
    request = orjson.loads(_adapter().encode(task, "j1-0-1"))["request"]
    assert request["systemInstruction"] == {"parts": [{"text": "base\n\nrules"}]}
    assert [c["role"] for c in request["contents"]] == ["user"]
    with pytest.raises(InputError, match="role 'tool'"):
        _adapter().encode(Task(0, "k", [{"role": "tool", "content": "x"}]), "j1-0-1")


# ---- decode ----------------------------------------------------------------------------------


def _response(**fields: Any) -> dict[str, Any]:
    """A result `response` exactly as the SDK's own type serializes it on the wire."""
    return types.GenerateContentResponse.model_validate(fields).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )


SUCCESS = {
    "candidates": [
        {
            "content": {
                "role": "model",
                "parts": [{"text": "thinking…", "thought": True}, {"text": "posi"}, {"text": "tive"}],
            },
            "finish_reason": "STOP",
        }
    ],
    "usage_metadata": {
        "prompt_token_count": 11,
        "candidates_token_count": 2,
        "cached_content_token_count": 4,
        "thoughts_token_count": 3,
    },
}


def test_decode_success_reads_text_and_usage() -> None:
    response = _response(**SUCCESS)
    assert "usageMetadata" in response and "finishReason" in response["candidates"][0]  # camelCase fixture
    out = _adapter().decode(orjson.dumps({"key": "j1-1-1", "response": response}))
    assert (out.custom_id, out.outcome, out.output, out.finish_reason) == (
        "j1-1-1",
        Outcome.SUCCEEDED,
        "positive",
        "STOP",
    )
    # Gemini counts thinking apart from candidates; llmbulk's output tokens include it.
    assert (out.input_tokens, out.output_tokens, out.cached_tokens, out.reasoning_tokens) == (11, 5, 4, 3)


def test_decode_accepts_snake_case() -> None:
    response = types.GenerateContentResponse.model_validate(SUCCESS).model_dump(mode="json", exclude_none=True)
    assert "usage_metadata" in response
    out = _adapter().decode(orjson.dumps({"key": "j1-1-1", "response": response}))
    assert (out.output, out.finish_reason, out.input_tokens, out.output_tokens) == ("positive", "STOP", 11, 5)


@pytest.mark.parametrize(
    ("status", "code", "outcome"),
    [
        ("INVALID_ARGUMENT", 400, Outcome.PERMANENT),
        ("FAILED_PRECONDITION", 400, Outcome.PERMANENT),
        ("PERMISSION_DENIED", 403, Outcome.PERMANENT),
        ("NOT_FOUND", 404, Outcome.PERMANENT),
        ("RESOURCE_EXHAUSTED", 429, Outcome.RETRYABLE),
        ("INTERNAL", 500, Outcome.RETRYABLE),
        ("UNAVAILABLE", 503, Outcome.RETRYABLE),
        ("DEADLINE_EXCEEDED", 504, Outcome.RETRYABLE),
        ("SOMETHING_NEW", 418, Outcome.RETRYABLE),
        (None, 400, Outcome.PERMANENT),
        (None, 404, Outcome.PERMANENT),
        (None, 429, Outcome.RETRYABLE),
        (None, 503, Outcome.RETRYABLE),
        (None, 3, Outcome.PERMANENT),  # gRPC INVALID_ARGUMENT
        (None, 14, Outcome.RETRYABLE),  # gRPC UNAVAILABLE
        (None, None, Outcome.RETRYABLE),
    ],
)
def test_decode_error_lines(status: str | None, code: int | None, outcome: Outcome) -> None:
    error = {k: v for k, v in (("code", code), ("message", "m"), ("status", status)) if v is not None}
    out = _adapter().decode(orjson.dumps({"key": "j1-1-1", "error": error}))
    assert out.outcome is outcome and out.error_message == "m" and out.custom_id == "j1-1-1"
    if status:
        assert out.error_code == status


def test_decode_blocked_prompt_is_permanent() -> None:
    response = _response(prompt_feedback={"block_reason": "SAFETY"}, usage_metadata={"prompt_token_count": 9})
    out = _adapter().decode(orjson.dumps({"key": "j1-1-1", "response": response}))
    assert (out.outcome, out.error_code, out.input_tokens) == (Outcome.PERMANENT, "blocked", 9)
    assert "SAFETY" in (out.error_message or "")


# ---- status mapping --------------------------------------------------------------------------


def _job(state: Any, **fields: Any) -> types.BatchJob:
    fields.setdefault("dest", types.BatchJobDestination(file_name="files/batch-1"))
    fields.setdefault("end_time", NOW)
    return types.BatchJob(name="batches/1", display_name="llmbulk-j1-j1-s1", state=state, **fields)


def test_every_job_state_is_mapped() -> None:
    values = {member.value for member in types.JobState}
    assert values - UNSPECIFIED_STATES == {k for k in STATES if k.startswith("JOB_STATE_")}
    for member in types.JobState:
        if member.value in UNSPECIFIED_STATES:
            with pytest.raises(ProviderError, match="no state"):
                batch_status(_job(member), NOW.timestamp())
            continue
        if member.value == "JOB_STATE_FAILED":
            continue  # needs a raw fetch of the reason: covered below
        status = batch_status(_job(member), NOW.timestamp())
        assert status.state is EXPECTED[member.value.removeprefix("JOB_STATE_")], member
        assert status.raw_status == member.value and status.batch_id == "batches/1"
        assert status.result_refs == {"file_name": "files/batch-1"}
        assert status.counts_known is False and status.total is None and status.completed is None


def _wire_job(state: str, output: dict[str, Any] | None = None) -> types.BatchJob:
    """A `batches.get` answer parsed by the SDK's own Gemini-API converter, as on the wire."""
    metadata: dict[str, Any] = {"state": state, "createTime": "2026-01-01T00:00:00Z", "endTime": "2026-01-01T00:00:00Z"}
    if output is not None:
        metadata["output"] = output
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the SDK warns on the states it does not rename
        parsed = batches._BatchJob_from_mldev({"name": "batches/1", "metadata": metadata})
        return types.BatchJob._from_response(response=parsed, kwargs={})


@pytest.mark.parametrize("wire", WIRE_STATES)
def test_every_wire_state_is_mapped(wire: str) -> None:
    job = _wire_job(wire, {"responsesFile": "files/batch-1"})
    name = wire.removeprefix("BATCH_STATE_")
    if name == "UNSPECIFIED":
        with pytest.raises(ProviderError):
            batch_status(job, NOW.timestamp())
    elif name != "FAILED":
        status = batch_status(job, NOW.timestamp())
        assert status.state is EXPECTED[name] and status.result_refs == {"file_name": "files/batch-1"}


def test_partially_succeeded_is_terminal_although_the_sdk_says_not_done() -> None:
    job = _job(types.JobState.JOB_STATE_PARTIALLY_SUCCEEDED)
    assert job.done is False
    status = batch_status(job, NOW.timestamp())
    assert status.state is BatchState.ENDED and status.state.terminal and status.ended_at == NOW.timestamp()


def test_succeeded_without_output_keeps_polling_then_gives_up() -> None:
    job = _job(types.JobState.JOB_STATE_SUCCEEDED, dest=None)
    late = batch_status(job, NOW.timestamp())
    assert late.state is BatchState.FINALIZING and late.result_refs == {} and late.ended_at is None
    much_later = batch_status(job, NOW.timestamp() + 7200)
    assert much_later.state is BatchState.FAILED and much_later.error_code == "no_output"


def test_inline_output_and_unknown_state() -> None:
    inline = _wire_job(
        "BATCH_STATE_SUCCEEDED", {"inlinedResponses": {"inlinedResponses": [{"metadata": {"key": "a"}}]}}
    )
    status = batch_status(inline, NOW.timestamp())
    assert status.result_refs == {"inline": "1"} and "inlined_responses" not in orjson.dumps(status.raw).decode()
    with pytest.raises(ProviderError, match="unknown state"):
        batch_status(_wire_job("BATCH_STATE_SOMETHING_NEW"), NOW.timestamp())


@pytest.mark.parametrize(
    ("wire", "output", "complete"),
    [
        ("BATCH_STATE_RUNNING", None, True),  # nothing to show yet
        ("BATCH_STATE_SUCCEEDED", {"responsesFile": "files/batch-1"}, True),  # a file job: as a get shows it
        ("BATCH_STATE_SUCCEEDED", {}, False),  # an inline job: the listing leaves its responses out
        ("BATCH_STATE_CANCELLED", {}, False),  # cancelled, keeping what finished: read whole
        ("BATCH_STATE_EXPIRED", None, False),
        ("BATCH_STATE_FAILED", None, True),  # no output either way (its reason is read separately)
    ],
)
def test_what_the_listing_shows_of_a_job_is_enough_unless_its_output_is_inline(
    wire: str, output: dict[str, Any] | None, complete: bool
) -> None:
    from llmbulk.providers.gemini.status import listing_complete

    assert listing_complete(_wire_job(wire, output)) is complete


# ---- error mapping ---------------------------------------------------------------------------


def _raised(exc: BaseException) -> BaseException:
    adapter = _adapter()
    with pytest.raises(Exception) as info, adapter._mapped("poll"):
        raise exc
    return info.value


@pytest.mark.parametrize("exc", [httpx2.ConnectError("refused"), httpx2.ReadTimeout("slow")])
def test_connection_errors_are_retryable(exc: Exception) -> None:
    err = _raised(exc)
    assert isinstance(err, ProviderError) and err.retryable and exc.__class__.__name__ in err.message


def _body(code: int, status: str, message: str = "m", reason: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if reason:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason}]
    return {"error": error}


def test_api_errors_are_mapped() -> None:
    for exc in (
        errors.ClientError(401, _body(401, "UNAUTHENTICATED")),
        errors.ClientError(403, _body(403, "PERMISSION_DENIED")),
        errors.ClientError(400, _body(400, "INVALID_ARGUMENT", "API key not valid", "API_KEY_INVALID")),
    ):
        err = _raised(exc)
        assert isinstance(err, ConfigError) and "GOOGLE_API_KEY" in str(err) and "GEMINI_API_KEY" in str(err)
    quota = _raised(errors.ClientError(429, _body(429, "RESOURCE_EXHAUSTED", "slow down")))
    assert isinstance(quota, QuotaError) and quota.retryable and "slow down" in quota.message
    server = _raised(errors.ServerError(503, _body(503, "UNAVAILABLE")))
    assert type(server) is ProviderError and server.retryable
    missing = _raised(errors.ClientError(404, _body(404, "NOT_FOUND")))
    assert type(missing) is ProviderError and not missing.retryable


def test_error_messages_never_carry_the_key() -> None:
    err = _raised(errors.ClientError(400, _body(400, "INVALID_ARGUMENT", f"bad request for key {KEY}")))
    assert KEY not in str(err) and "***" in str(err)


def test_missing_key_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_GENAI_USE_ENTERPRISE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError) as info:
        _ = GeminiBatchProvider(ProviderSettings(model="m")).client
    assert "GOOGLE_API_KEY" in str(info.value) and "GEMINI_API_KEY" in str(info.value)


def test_limits() -> None:
    assert LIMITS.counts_available is False and LIMITS.counts_live is False and LIMITS.max_bytes >= 2_000_000_000
    assert _adapter(inline=True).limits.max_bytes == INLINE_MAX_BYTES
    big = ShardInput("j1-s1", Path("/nonexistent"), 1, INLINE_MAX_BYTES + 1, "0")
    assert _adapter(inline=True).files is None and _adapter().files is not None
    with pytest.raises(UsageError, match="inline"):
        _adapter(inline=True).create(big, None, LABELS)


# ---- calls, against an in-process mock transport ---------------------------------------------


class Server:
    """Answers the SDK's requests from a route table and records them."""

    def __init__(self, routes: dict[str, Callable[[httpx2.Request], httpx2.Response]]) -> None:
        self.routes = routes
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        key = f"{request.method} {request.url.path}"
        return self.routes[key](request)

    def adapter(self, **kwargs: Any) -> GeminiBatchProvider:
        return GeminiBatchProvider(
            ProviderSettings(model="gemini-2.5-flash", api_key=KEY, base_url=BASE, **kwargs),
            http_client=httpx2.Client(transport=httpx2.MockTransport(self)),
            clock=lambda: NOW.timestamp(),
        )


def _op(state: str, **metadata: Any) -> dict[str, Any]:
    return {
        "name": "batches/b1",
        "metadata": {
            "state": state,
            "displayName": "llmbulk-j1-j1-s1",
            "createTime": "2026-01-01T00:00:00Z",
            **metadata,
        },
    }


def _shard(tmp_path: Path, lines: list[bytes]) -> ShardInput:
    path = tmp_path / "j1-s1.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return ShardInput("j1-s1", path, len(lines), path.stat().st_size, "0")


def test_create_is_sent_once_and_names_the_batch(tmp_path: Path) -> None:
    server = Server(
        {
            "POST /v1/models/gemini-2.5-flash:batchGenerateContent": lambda r: httpx2.Response(
                503, json=_body(503, "UNAVAILABLE")
            )
        }
    )
    adapter = server.adapter()
    with pytest.raises(ProviderError) as info:
        adapter.create(_shard(tmp_path, [b"{}"]), "files/in1", LABELS)
    assert info.value.retryable and len(server.requests) == 1  # the client retries other calls 5 times
    server.routes["POST /v1/models/gemini-2.5-flash:batchGenerateContent"] = lambda r: httpx2.Response(
        200, json=_op("BATCH_STATE_PENDING")
    )
    ref = adapter.create(_shard(tmp_path, [b"{}"]), "files/in1", LABELS)
    assert (ref.batch_id, ref.input_file_id, ref.created_at) == ("batches/b1", "files/in1", NOW.timestamp())
    body = json.loads(server.requests[-1].content)
    assert body == {"batch": {"inputConfig": {"fileName": "files/in1"}, "displayName": "llmbulk-j1-j1-s1"}}
    assert server.requests[-1].headers["x-goog-api-key"] == KEY


def test_polls_are_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_api_client, "_RETRY_INITIAL_DELAY", 0.0)
    monkeypatch.setattr(_api_client, "_RETRY_JITTER", 0.0)
    answers = [
        httpx2.Response(503, json=_body(503, "UNAVAILABLE")),
        httpx2.Response(200, json=_op("BATCH_STATE_RUNNING")),
    ]
    server = Server({"GET /v1/batches/b1": lambda r: answers.pop(0)})
    [status] = server.adapter().poll(["batches/b1"])
    assert status.state is BatchState.RUNNING and len(server.requests) == 2


def test_failed_batch_reason_is_read_from_the_raw_operation() -> None:
    failed = {**_op("BATCH_STATE_FAILED"), "done": True, "error": _body(400, "INVALID_ARGUMENT", "bad line 3")["error"]}
    server = Server({"GET /v1/batches/b1": lambda r: httpx2.Response(200, json=failed)})
    [status] = server.adapter().poll(["batches/b1"])
    assert status.state is BatchState.FAILED and status.error_code == "INVALID_ARGUMENT"
    assert "bad line 3" in (status.error or "")
    server.routes["GET /v1/batches/b1"] = lambda r: httpx2.Response(200, json=_op("BATCH_STATE_FAILED"))
    [status] = server.adapter().poll(["batches/b1"])
    assert status.state is BatchState.FAILED and "without a reason" in (status.error or "")


def test_upload_sends_jsonl_mime_type_and_display_name(tmp_path: Path) -> None:
    def start(request: httpx2.Request) -> httpx2.Response:
        assert request.headers["x-goog-upload-header-content-type"] == "application/jsonl"
        assert json.loads(request.content)["file"]["display_name"] == "llmbulk-j1-j1-s1"
        return httpx2.Response(200, headers={"x-goog-upload-url": "http://elsewhere.test/upload/s1"}, json={})

    def chunk(request: httpx2.Request) -> httpx2.Response:
        assert request.url.host == "emu.test"  # kept on the configured base URL
        return httpx2.Response(200, headers={"x-goog-upload-status": "final"}, json={"file": {"name": "files/in1"}})

    server = Server({"POST /upload/v1/files": start, "POST /upload/s1": chunk})
    assert server.adapter().files.upload(_shard(tmp_path, [b'{"key":"a"}']), LABELS) == "files/in1"


def test_results_download_the_file_by_name() -> None:
    body = b'{"key":"j1-1-1","response":{}}\n\n{"key":"j1-2-1","error":{"code":3}}\n'
    server = Server({"GET /v1/files/batch-b1:download": lambda r: httpx2.Response(200, content=body)})
    status = BatchStatus(
        batch_id="batches/b1", state=BatchState.ENDED, raw_status="x", result_refs={"file_name": "files/batch-b1"}
    )
    lines = list(server.adapter().results(status))
    assert lines == [b'{"key":"j1-1-1","response":{}}', b'{"key":"j1-2-1","error":{"code":3}}']
    assert server.requests[0].url.params["alt"] == "media"


def test_inline_mode_round_trip(tmp_path: Path) -> None:
    adapter = Server({}).adapter(inline=True)
    shard = _shard(tmp_path, [adapter.encode(TASK, "j1-3-1"), adapter.encode(TASK, "j1-4-1")])
    assert adapter.files is None  # the requests travel in the create call
    created: list[dict[str, Any]] = []

    def create(request: httpx2.Request) -> httpx2.Response:
        created.append(json.loads(request.content))
        return httpx2.Response(200, json=_op("BATCH_STATE_PENDING"))

    responses = [
        {"error": {"code": 400, "message": "bad"}, "metadata": {"key": "j1-4-1"}},  # out of order on purpose
        {"response": _response(**SUCCESS), "metadata": {"key": "j1-3-1"}},
        {"response": _response(**SUCCESS)},  # no key echoed: cannot be joined, so left out
    ]
    done = _op("BATCH_STATE_SUCCEEDED", output={"inlinedResponses": {"inlinedResponses": responses}})
    server = Server(
        {
            "POST /v1/models/gemini-2.5-flash:batchGenerateContent": create,
            "GET /v1/batches/b1": lambda r: httpx2.Response(200, json=done),
        }
    )
    adapter = server.adapter(inline=True)
    ref = adapter.create(shard, None, LABELS)
    [request, _] = created[0]["batch"]["inputConfig"]["requests"]["requests"]
    assert request["metadata"] == {"key": "j1-3-1"}
    assert request["request"] == orjson.loads(adapter.encode(TASK, "j1-3-1"))["request"]
    [status] = adapter.poll([ref.batch_id])
    assert status.state is BatchState.ENDED and status.result_refs == {"inline": "1"}
    outcomes = {o.custom_id: o for o in map(adapter.decode, adapter.results(status))}
    assert set(outcomes) == {"j1-3-1", "j1-4-1"}
    assert outcomes["j1-3-1"].output == "positive" and outcomes["j1-4-1"].outcome is Outcome.PERMANENT


def test_find_matches_display_name_newest_first() -> None:
    page = {
        "operations": [
            _op("BATCH_STATE_RUNNING", createTime="2026-01-01T00:05:00Z") | {"name": "batches/new"},
            _op("BATCH_STATE_RUNNING", displayName="llmbulk-j1-j1-s2") | {"name": "batches/other"},
            _op("BATCH_STATE_RUNNING", createTime="2026-01-01T00:01:00Z") | {"name": "batches/old"},
            _op("BATCH_STATE_RUNNING", createTime="2025-12-31T00:00:00Z") | {"name": "batches/ancient"},
        ],
        "nextPageToken": "p2",
    }
    server = Server({"GET /v1/batches": lambda r: httpx2.Response(200, json=page)})
    found = server.adapter().find(LABELS, NOW, 2)
    assert [ref.batch_id for ref in found] == ["batches/new", "batches/old"]
    assert len(server.requests) == 1 and server.requests[0].url.params["pageSize"] == "100"


def test_openai_endpoints_are_refused() -> None:
    with pytest.raises(ConfigError, match="not supported"):
        GeminiBatchProvider(ProviderSettings(model="m", endpoint="/v1/chat/completions"))
    assert GeminiBatchProvider(ProviderSettings(model="m", endpoint="generateContent")).name == "gemini"
