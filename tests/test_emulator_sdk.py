"""The emulator speaks each provider's wire format: the official SDKs, unmodified, run every route.

OpenAI and Anthropic clients run with `_strict_response_validation=True`, so a missing or mistyped
field fails the test; Anthropic result lines are validated with the SDK's own type; Gemini is
driven through google-genai on both API versions, including a multi-chunk resumable upload.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx2
import openai
import orjson
import pytest
from anthropic.types.messages import MessageBatchIndividualResponse
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from llmbulk.emulator import EmulatorConfig, EmulatorServer, FaultPlan, HttpFault

KEY = "test-key"


def _config(**faults: object) -> EmulatorConfig:
    return EmulatorConfig(
        validating_seconds=0, running_seconds=0, finalizing_seconds=0, cancel_seconds=0, jitter=0,
        faults=FaultPlan.model_validate(faults),
    )  # fmt: skip


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmulatorServer]:
    with EmulatorServer(tmp_path / "emu", _config(item_errors={"rate_limit": 0.2, "invalid_request": 0.2})) as srv:
        yield srv


def _openai(server: EmulatorServer, **kwargs: object) -> openai.OpenAI:
    return openai.OpenAI(
        api_key=KEY, base_url=server.openai_base_url, _strict_response_validation=True, max_retries=0, **kwargs
    )


def _chat_jsonl(n: int, model: str = "gpt-4o-mini", url: str = "/v1/chat/completions") -> bytes:
    lines = [
        {"custom_id": f"j1-{i}-1", "method": "POST", "url": url,
         "body": {"model": model, "messages": [{"role": "user", "content": f"positive, negative or neutral? {i}"}]}}
        for i in range(n)
    ]  # fmt: skip
    return b"\n".join(orjson.dumps(line) for line in lines) + b"\n"


# ---- OpenAI -------------------------------------------------------------------------------------


def test_openai_files_and_batches_every_route(server: EmulatorServer) -> None:
    client = _openai(server)
    uploaded = client.files.create(file=("in.jsonl", _chat_jsonl(30), "application/jsonl"), purpose="batch")
    assert uploaded.purpose == "batch" and uploaded.bytes > 0
    assert client.files.retrieve(uploaded.id).id == uploaded.id
    assert uploaded.id in [f.id for f in client.files.list(purpose="batch")]
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h",
        metadata={"llmbulk_job": "j1", "llmbulk_shard": "s1"},
    )  # fmt: skip
    assert batch.status == "validating" and batch.metadata == {"llmbulk_job": "j1", "llmbulk_shard": "s1"}
    done = client.batches.retrieve(batch.id)
    assert done.status == "completed" and done.request_counts is not None
    assert done.request_counts.total == 30 == done.request_counts.completed + done.request_counts.failed
    assert done.usage is not None and done.usage.input_tokens > 0
    output = client.files.content(done.output_file_id or "").text.splitlines()
    errors = client.files.content(done.error_file_id or "").text.splitlines()
    assert len(output) + len(errors) == 30
    ok = orjson.loads(output[0])
    assert ok["response"]["status_code"] == 200
    openai.types.chat.ChatCompletion.model_validate(ok["response"]["body"], strict=False)
    codes = {orjson.loads(line)["response"]["status_code"] for line in errors}
    assert codes <= {400, 429} and codes
    with client.files.with_streaming_response.content(done.output_file_id or "") as streamed:
        assert b"".join(streamed.iter_bytes()).count(b"\n") == len(output)
    assert client.files.delete(uploaded.id).deleted


def test_openai_list_pages_with_after_and_has_more(server: EmulatorServer) -> None:
    client = _openai(server)
    uploaded = client.files.create(file=("in.jsonl", _chat_jsonl(2), "application/jsonl"), purpose="batch")
    created = [
        client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h").id
        for _ in range(5)
    ]
    first = client.batches.list(limit=2)
    assert len(first.data) == 2 and first.has_more
    assert [b.id for b in client.batches.list(limit=2)] == created[::-1]  # auto-paging, newest first
    last = client.batches.list(limit=2, after=created[1])
    assert [b.id for b in last.data] == [created[0]] and not last.has_more


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b'{"custom_id": "a"\n', "invalid_json_line"),
        (_chat_jsonl(1) + _chat_jsonl(1), "duplicate_custom_id"),
        (_chat_jsonl(1, url="/v1/embeddings"), "url_mismatch"),
        (_chat_jsonl(1) + _chat_jsonl(2, model="gpt-4o").splitlines(keepends=True)[1], "model_mismatch"),
        (b"", "empty_file"),
    ],
)
def test_openai_validation_failures_fail_the_batch_with_errors(
    server: EmulatorServer, content: bytes, code: str
) -> None:
    client = _openai(server)
    uploaded = client.files.create(file=("in.jsonl", content, "application/jsonl"), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    failed = client.batches.retrieve(batch.id)
    assert failed.status == "failed" and failed.errors is not None and failed.errors.data
    assert failed.errors.data[0].code == code and failed.failed_at is not None


def test_openai_too_many_lines_fail_validation(tmp_path: Path) -> None:
    config = _config()
    config.max_batch_items = 3
    with EmulatorServer(tmp_path / "emu", config) as srv:
        client = _openai(srv)
        uploaded = client.files.create(file=("in.jsonl", _chat_jsonl(4), "application/jsonl"), purpose="batch")
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        assert client.batches.retrieve(batch.id).errors.data[0].code == "too_many_tasks"  # type: ignore[union-attr]


def test_openai_errors_auth_and_not_found(server: EmulatorServer, tmp_path: Path) -> None:
    with httpx2.Client() as raw:
        missing = raw.get(f"{server.openai_base_url}/batches")
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "invalid_api_key"
    config = _config()
    config.api_key = "right-key"
    with EmulatorServer(tmp_path / "keyed", config) as keyed, pytest.raises(openai.AuthenticationError):
        openai.OpenAI(api_key="wrong-key", base_url=keyed.openai_base_url, max_retries=0).batches.list()
    with pytest.raises(openai.NotFoundError) as caught:
        _openai(server).batches.retrieve("batch_missing")
    assert caught.value.request_id and "No batch found" in str(caught.value)


def test_openai_expired_and_all_failed_batches(tmp_path: Path) -> None:
    with EmulatorServer(tmp_path / "emu", _config(expire_batches=[1], expire_fraction=0.5)) as srv:
        client = _openai(srv)
        uploaded = client.files.create(file=("in.jsonl", _chat_jsonl(40), "application/jsonl"), purpose="batch")
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        expired = client.batches.retrieve(batch.id)
        assert expired.status == "expired" and expired.output_file_id and expired.error_file_id
        errors = [orjson.loads(x) for x in client.files.content(expired.error_file_id).text.splitlines()]
        assert {e["error"]["code"] for e in errors} == {"batch_expired"} and all(e["response"] is None for e in errors)
    with EmulatorServer(tmp_path / "emu2", _config(item_errors={"invalid_request": 1.0})) as srv:
        client = _openai(srv)
        uploaded = client.files.create(file=("in.jsonl", _chat_jsonl(5), "application/jsonl"), purpose="batch")
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        done = client.batches.retrieve(batch.id)
        assert done.status == "completed" and done.output_file_id is None and done.error_file_id


def test_openai_injected_429_is_retried_by_the_sdk(tmp_path: Path) -> None:
    fault = HttpFault(method="GET", path_regex="/openai/v1/batches", status=429, times=2, retry_after_ms=10)
    with EmulatorServer(tmp_path / "emu", _config(http_faults=[fault.model_dump()])) as srv:
        client = _openai(srv).with_options(max_retries=2)
        started = time.monotonic()
        assert client.batches.list().data == []
        assert time.monotonic() - started < 5
        assert srv.emulator.calls["GET /openai/v1/batches"] == 3


def test_state_persists_across_emulator_instances(tmp_path: Path) -> None:
    config = _config()
    config.running_seconds = 0.5
    with EmulatorServer(tmp_path / "emu", config) as first:
        client = _openai(first)
        uploaded = client.files.create(file=("in.jsonl", _chat_jsonl(3), "application/jsonl"), purpose="batch")
        batch_id = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        ).id
        assert client.batches.retrieve(batch_id).status == "in_progress"
    time.sleep(0.6)
    with EmulatorServer(tmp_path / "emu", config) as second:
        assert _openai(second).batches.retrieve(batch_id).status == "completed"
        events = second.emulator.audit_events()
    assert [e["event"] for e in events] == ["file.created", "batch.created", "file.created"]


def test_emulator_refuses_non_loopback_hosts(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="loopback"):
        EmulatorServer(tmp_path / "emu", _config(), host="0.0.0.0")


# ---- Anthropic ------------------------------------------------------------------------------------


def _anthropic(server: EmulatorServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        api_key=KEY, base_url=server.anthropic_base_url, _strict_response_validation=True, max_retries=0
    )


def _requests(n: int) -> list[dict]:
    return [
        {"custom_id": f"j1-{i}-1", "params": {"model": "claude-haiku-4-5", "max_tokens": 16,
                                              "messages": [{"role": "user", "content": f"hello {i}"}]}}
        for i in range(n)
    ]  # fmt: skip


def test_anthropic_every_route(server: EmulatorServer) -> None:
    client = _anthropic(server)
    batch = client.messages.batches.create(requests=_requests(25))  # type: ignore[arg-type]
    assert batch.processing_status in ("in_progress", "ended")
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended" and ended.results_url and ended.results_url.startswith(server.url)
    counts = ended.request_counts
    assert counts.succeeded + counts.errored == 25 and counts.processing == 0
    lines = list(client.messages.batches.results(batch.id))
    assert sorted(r.custom_id for r in lines) == sorted(f"j1-{i}-1" for i in range(25))
    assert [r.custom_id for r in lines] != [f"j1-{i}-1" for i in range(25)]  # any order, not input order
    with httpx2.Client() as raw:
        body = raw.get(ended.results_url, headers={"x-api-key": KEY, "anthropic-version": "2026-10-21"}).content
    assert b"\n\n" not in body
    for line in body.splitlines():
        MessageBatchIndividualResponse.model_validate(orjson.loads(line))
    page = client.messages.batches.list(limit=1)
    assert page.data[0].id == batch.id and page.first_id == batch.id
    assert client.messages.batches.delete(batch.id).type == "message_batch_deleted"


def test_anthropic_cancel_list_pagination_and_errors(tmp_path: Path) -> None:
    config = _config()
    config.running_seconds, config.cancel_seconds = 60, 0
    with EmulatorServer(tmp_path / "emu", config) as srv:
        client = _anthropic(srv)
        ids = [client.messages.batches.create(requests=_requests(2)).id for _ in range(3)]  # type: ignore[arg-type]
        assert [b.id for b in client.messages.batches.list(limit=2)] == ids[::-1]
        second = client.messages.batches.list(limit=2, after_id=ids[1])
        assert [b.id for b in second.data] == [ids[0]] and not second.has_more
        with pytest.raises(anthropic.BadRequestError):
            client.messages.batches.delete(ids[0])  # not ended yet
        with pytest.raises(anthropic.AnthropicError, match="results_url"):
            list(client.messages.batches.results(ids[0]))
        cancelling = client.messages.batches.cancel(ids[0])
        assert cancelling.cancel_initiated_at is not None
        assert client.messages.batches.retrieve(ids[0]).processing_status == "ended"
        results = list(client.messages.batches.results(ids[0]))
        assert {r.result.type for r in results} <= {"canceled", "succeeded"}
        with pytest.raises(anthropic.BadRequestError) as bad:
            client.messages.batches.create(requests=[{**_requests(1)[0], "custom_id": "bad id!"}])  # type: ignore[list-item]
        assert bad.value.request_id
        with pytest.raises(anthropic.BadRequestError):
            client.messages.batches.create(requests=_requests(1) + _requests(1))  # type: ignore[arg-type]
        with pytest.raises(anthropic.NotFoundError):
            client.messages.batches.retrieve("msgbatch_missing")
        with httpx2.Client() as raw:
            missing = raw.get(f"{srv.anthropic_base_url}/v1/messages/batches")
        assert missing.status_code == 401 and missing.json()["type"] == "error" and missing.headers["request-id"]


# ---- Gemini ----------------------------------------------------------------------------------------


def _gemini(server: EmulatorServer, version: str) -> genai.Client:
    return genai.Client(
        api_key=KEY, vertexai=False,
        http_options=genai_types.HttpOptions(base_url=server.gemini_base_url, api_version=version),
    )  # fmt: skip


@pytest.mark.parametrize("version", ["v1", "v1beta"])
def test_gemini_every_route(server: EmulatorServer, version: str) -> None:
    client = _gemini(server, version)
    lines = [
        {"key": f"j1-{i}-1", "request": {"contents": [{"role": "user", "parts": [{"text": f"hi {i}"}]}]}}
        for i in range(20)
    ]
    payload = b"\n".join(orjson.dumps(x) for x in lines) + b"\n"
    uploaded = client.files.upload(
        file=io.BytesIO(payload), config={"mime_type": "application/jsonl", "display_name": "in"}
    )
    assert uploaded.name and uploaded.name.startswith("files/") and int(uploaded.size_bytes or 0) == len(payload)
    job = client.batches.create(model="gemini-2.5-flash", src=uploaded.name, config={"display_name": "llmbulk-j1-s1"})
    assert job.name and job.name.startswith("batches/")
    done = client.batches.get(name=job.name)
    assert done.state == genai_types.JobState.JOB_STATE_SUCCEEDED and done.dest and done.dest.file_name
    assert done.display_name == "llmbulk-j1-s1"
    results = client.files.download(file=done.dest.file_name).splitlines()
    keys = [orjson.loads(line)["key"] for line in results]
    assert keys == [x["key"] for x in lines]  # Gemini documents input order (batch-mode docs)
    listed = list(client.batches.list(config={"page_size": 1}))
    assert [b.name for b in listed] == [job.name]
    inline = client.batches.create(
        model="gemini-2.5-flash",
        src=[{"contents": [{"role": "user", "parts": [{"text": "x"}]}], "metadata": {"key": "k1"}}],  # type: ignore[list-item]
        config={"display_name": "inline-1"},
    )
    got = client.batches.get(name=inline.name or "")
    assert got.dest and got.dest.inlined_responses and got.dest.inlined_responses[0].metadata == {"key": "k1"}
    client.batches.cancel(name=job.name)
    client.batches.delete(name=job.name)
    with pytest.raises(genai_errors.ClientError) as caught:
        client.batches.get(name="batches/missing")
    assert caught.value.code == 404


def test_gemini_multi_chunk_upload_without_key_on_chunks(server: EmulatorServer) -> None:
    client = _gemini(server, "v1")
    payload = b"x" * (8 * 1024 * 1024 + 10)
    uploaded = client.files.upload(file=io.BytesIO(payload), config={"mime_type": "application/jsonl"})
    assert int(uploaded.size_bytes or 0) == len(payload)
    assert server.emulator.file_path(uploaded.name or "").stat().st_size == len(payload)
    chunk_calls = [k for k in server.emulator.calls if k.startswith("POST /gemini/upload/")]
    assert server.emulator.calls[chunk_calls[0]] == 3  # start + two chunks


def test_gemini_rejects_missing_key(server: EmulatorServer) -> None:
    """Source: Google API error model: no key is 403 PERMISSION_DENIED (a wrong key: test_emulator_rules)."""
    with httpx2.Client() as raw:
        response = raw.get(f"{server.gemini_base_url}/v1/batches")
    assert response.status_code == 403 and response.json()["error"]["status"] == "PERMISSION_DENIED"


def test_openai_adapter_polls_many_batches_through_one_list_call(server: EmulatorServer) -> None:
    from llmbulk.providers.base import ProviderSettings
    from llmbulk.providers.openai import OpenAIBatchProvider

    client = _openai(server)
    uploaded = client.files.create(file=("in.jsonl", _chat_jsonl(2), "application/jsonl"), purpose="batch")
    ids = [
        client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h").id
        for _ in range(8)
    ]
    adapter = OpenAIBatchProvider(ProviderSettings(model="gpt-4o-mini", base_url=server.openai_base_url, api_key=KEY))
    before = dict(server.emulator.calls)
    statuses = adapter.poll(ids[2:7])
    adapter.close()
    assert [s.batch_id for s in statuses] == ids[2:7]
    new_calls = {k: v - before.get(k, 0) for k, v in server.emulator.calls.items() if v != before.get(k, 0)}
    assert new_calls == {"GET /openai/v1/batches": 1}


def test_every_error_path_parses_with_the_sdk_error_types(tmp_path: Path) -> None:
    """Every error the emulator answers (auth, version, limits, missing objects, unknown routes,
    count_tokens) parses strictly with the SDK's own error types (OpenAI ErrorObject, Anthropic
    ErrorResponse); Gemini's carry int `code`, `status` and, for a wrong key, an ErrorInfo reason."""
    from anthropic.types import ErrorResponse
    from openai.types.shared import ErrorObject

    config = _config()
    config.api_key = KEY
    version = {"anthropic-version": "2026-10-21"}
    with EmulatorServer(tmp_path / "emu", config) as srv, httpx2.Client() as raw:
        o, a, g = srv.openai_base_url, srv.anthropic_base_url, srv.gemini_base_url
        bearer = {"authorization": f"Bearer {KEY}"}
        openai_errors = [
            raw.get(f"{o}/batches"),
            raw.get(f"{o}/batches", headers={"authorization": "Bearer wrong"}),
            raw.get(f"{o}/batches?limit=0", headers=bearer),
            raw.get(f"{o}/batches/batch_x", headers=bearer),
            raw.post(f"{o}/batches/batch_x/cancel", headers=bearer),
            raw.get(f"{o}/nowhere", headers=bearer),
            raw.delete(f"{o}/files/file-x", headers=bearer),
            raw.post(f"{o}/batches", headers=bearer, content=b"{"),
        ]
        anthropic_errors = [
            raw.get(f"{a}/v1/messages/batches", headers=version),
            raw.get(f"{a}/v1/messages/batches", headers={"x-api-key": "wrong", **version}),
            raw.get(f"{a}/v1/messages/batches", headers={"x-api-key": KEY}),
            raw.get(f"{a}/v1/messages/batches?limit=5000", headers={"x-api-key": KEY, **version}),
            raw.get(f"{a}/v1/messages/batches/msgbatch_x", headers={"x-api-key": KEY, **version}),
            raw.post(f"{a}/v1/messages/batches", headers={"x-api-key": KEY, **version}, json={"requests": []}),
            raw.post(f"{a}/v1/messages/count_tokens", headers={"x-api-key": KEY, **version},
                     json={"model": "claude-x-9", "messages": [{"role": "user", "content": "hi"}]}),
            raw.get(f"{a}/v1/nowhere"),
        ]  # fmt: skip
        gemini_errors = [
            raw.get(f"{g}/v1/batches"),
            raw.get(f"{g}/v1/batches", headers={"x-goog-api-key": "wrong"}),
            raw.get(f"{g}/v1/batches/missing", headers={"x-goog-api-key": KEY}),
            raw.delete(f"{g}/v1beta/files/missing", headers={"x-goog-api-key": KEY}),
            raw.get(f"{g}/v1/files?pageSize=-1", headers={"x-goog-api-key": KEY}),
            raw.post(f"{g}/v1/models/gemini-nope-9:countTokens", headers={"x-goog-api-key": KEY}, json={}),
            raw.get(f"{g}/v2/nowhere", headers={"x-goog-api-key": KEY}),
        ]
    for response in openai_errors:
        assert response.status_code >= 400 and response.headers["x-request-id"]
        ErrorObject.model_validate(response.json()["error"], strict=True)
    for response in anthropic_errors:
        assert response.status_code >= 400 and response.headers["request-id"]
        ErrorResponse.model_validate(response.json(), strict=True)
    for response in gemini_errors:
        error = response.json()["error"]
        assert response.status_code == error["code"] >= 400 and isinstance(error["status"], str) and error["message"]
    assert gemini_errors[1].json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"
