"""The emulator refuses what the real APIs refuse, with their status, error type/code and timing.

Driven by the official SDKs over HTTP (OpenAI and Anthropic with strict response validation); each
test's docstring names the source of the rule. Where the docs and the installed SDK disagree the
installed SDK wins (noted where it matters).
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import orjson
import pytest
from anthropic.types.messages import MessageBatchIndividualResponse
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types
from openai.types.chat import ChatCompletion
from openai.types.responses import Response as OpenAIResponse
from openai.types.shared import ErrorObject

from llmbulk.emulator import EmulatorConfig, EmulatorServer, FaultPlan

KEY = "test-key"
CHAT = "/v1/chat/completions"


def _config(**faults: object) -> EmulatorConfig:
    return EmulatorConfig(
        validating_seconds=0, running_seconds=0, finalizing_seconds=0, cancel_seconds=0, jitter=0,
        faults=FaultPlan.model_validate(faults),
    )  # fmt: skip


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmulatorServer]:
    with EmulatorServer(tmp_path / "emu", _config()) as srv:
        yield srv


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[EmulatorServer]:
    config = _config()
    config.api_key = "the-right-key"
    with EmulatorServer(tmp_path / "keyed", config) as srv:
        yield srv


# ---- OpenAI ---------------------------------------------------------------------------------------


def _openai(server: EmulatorServer, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=server.openai_base_url, _strict_response_validation=True, max_retries=0)


def _run_openai(server: EmulatorServer, bodies: list[dict[str, Any]], url: str = CHAT,
                method: str = "POST") -> tuple[Any, dict[str, dict[str, Any]]]:  # fmt: skip
    """Upload one line per body, run the batch to its end; the batch and every result line by custom_id."""
    client = _openai(server)
    lines = [{"custom_id": f"r{i}", "method": method, "url": url, "body": b} for i, b in enumerate(bodies)]
    payload = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    uploaded = client.files.create(file=("in.jsonl", payload, "application/jsonl"), purpose="batch")
    created = client.batches.create(input_file_id=uploaded.id, endpoint=url, completion_window="24h")  # type: ignore[arg-type]
    batch = client.batches.retrieve(created.id)
    results: dict[str, dict[str, Any]] = {}
    for file_id in (batch.output_file_id, batch.error_file_id):
        if file_id:
            for line in client.files.content(file_id).text.splitlines():
                record = orjson.loads(line)
                results[record["custom_id"]] = record
    return batch, results


def _chat(model: str = "gpt-4o-mini", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "positive or negative?"}], **extra}


def _error(record: dict[str, Any]) -> tuple[int, ErrorObject]:
    response = record["response"]
    return response["status_code"], ErrorObject.model_validate(response["body"]["error"], strict=True)


def test_openai_unknown_model_goes_to_the_error_file_as_404_model_not_found(server: EmulatorServer) -> None:
    """Source: a real error-file line in openai/openai-python#3071 (404, invalid_request_error, model_not_found)."""
    batch, results = _run_openai(server, [_chat("gpt-nonexistent-9")])
    status, err = _error(results["r0"])
    assert batch.status == "completed" and batch.output_file_id is None
    assert (status, err.type, err.code) == (404, "invalid_request_error", "model_not_found")
    assert "gpt-nonexistent-9" in err.message


def test_openai_model_on_the_wrong_endpoint_fails_each_line(server: EmulatorServer) -> None:
    """Source: SDK Literals (ChatModel vs EmbeddingModel); 404 with param "model" as the API answers a
    model on an endpoint it does not serve (egoist/chatwise-releases#1256)."""
    _, results = _run_openai(server, [{"model": "gpt-4o-mini", "input": "hi"}], url="/v1/embeddings")
    status, err = _error(results["r0"])
    assert (status, err.param) == (404, "model")
    _, results = _run_openai(server, [_chat("text-embedding-3-small")])
    status, err = _error(results["r0"])
    assert status == 404 and "not a chat model" in err.message


@pytest.mark.parametrize(
    ("extra", "param", "code", "fragment"),
    [
        ({"frobnicate": True}, None, None, "Unrecognized request argument supplied: frobnicate"),
        ({"temperature": 7}, "temperature", "decimal_above_max_value", "Expected a value <= 2, but got 7"),
        ({"top_p": 2}, "top_p", "decimal_above_max_value", "<= 1"),
        ({"n": 200}, "n", "integer_above_max_value", "<= 128"),
        ({"temperature": "hot"}, "temperature", "invalid_type", "expected a decimal, but got a string"),
        ({"max_completion_tokens": 100_000}, "max_completion_tokens", None, "supports at most 16384"),
        ({"messages": []}, "messages", "empty_array", "empty array"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role", "invalid_value", "'wizard'"),
    ],
)
def test_openai_bad_parameters_fail_their_line_with_the_api_error(
    server: EmulatorServer, extra: dict[str, Any], param: str | None, code: str | None, fragment: str
) -> None:
    """Sources: "Unrecognized request argument supplied" (tbxark/ChatGPT-Telegram-Workers#5); ranges
    from the chat/create reference (temperature 0-2, top_p 0-1, n 1-128); "max_tokens is too large …
    supports at most N completion tokens" (ChatGPTNextWeb/NextChat#3195) with gpt-4o-mini's 16,384."""
    _, results = _run_openai(server, [_chat(**extra), _chat()])
    status, err = _error(results["r0"])
    assert status == 400 and err.type == "invalid_request_error"
    assert (err.param, err.code) == (param, code) and fragment in err.message
    assert results["r1"]["response"]["status_code"] == 200  # only the bad line fails


def test_openai_missing_messages_and_reasoning_model_temperature(server: EmulatorServer) -> None:
    """Sources: SDK CompletionCreateParams (model, messages Required); reasoning models take only the
    default temperature (NVlabs/cvdp_benchmark#29: code unsupported_value)."""
    _, results = _run_openai(server, [{"model": "gpt-4o-mini"}])
    assert _error(results["r0"])[1].code == "missing_required_parameter"
    _, results = _run_openai(server, [_chat("o4-mini", temperature=0.2)])  # one model per batch file
    assert _error(results["r0"])[1].code == "unsupported_value"


def test_openai_method_other_than_post_fails_validation(server: EmulatorServer) -> None:
    """Source: OpenAPI BatchRequestInput ("Currently only POST is supported"); error code unverified."""
    batch, _ = _run_openai(server, [_chat()], method="GET")
    assert batch.status == "failed" and batch.errors and batch.errors.data[0].param == "method"


def test_openai_rate_limited_lines_carry_the_real_type_and_code(tmp_path: Path) -> None:
    """Source: the API's rate-limit errors: type "requests" (or "tokens"), code "rate_limit_exceeded"."""
    with EmulatorServer(tmp_path / "emu", _config(item_errors={"rate_limit": 1.0})) as srv:
        _, results = _run_openai(srv, [_chat()])
    status, err = _error(results["r0"])
    assert (status, err.type, err.code) == (429, "requests", "rate_limit_exceeded")


def test_openai_responses_bodies_are_complete_response_objects(server: EmulatorServer) -> None:
    """Source: OpenAPI `Response` (required incl. nullable error, incomplete_details, instructions,
    metadata, temperature, top_p), validated with the SDK's type in strict mode."""
    schema = {"type": "object", "properties": {f"field_{i}": {"type": "string"} for i in range(12)}}
    text = {"format": {"type": "json_schema", "name": "out", "schema": schema, "strict": True}}
    bodies = [
        {"model": "gpt-4o-mini", "input": "hello", "instructions": "be brief"},
        {"model": "gpt-4o-mini", "input": "hello", "max_output_tokens": 16, "text": text},
    ]
    _, results = _run_openai(server, bodies, url="/v1/responses")
    full = {k: results[f"r{i}"]["response"]["body"] for i, k in enumerate(("done", "cut"))}
    for body in full.values():
        OpenAIResponse.model_validate(body, strict=False)
        assert {"error", "incomplete_details", "instructions", "metadata", "temperature", "top_p"} <= set(body)
    assert full["done"]["status"] == "completed" and full["done"]["incomplete_details"] is None
    assert full["cut"]["status"] == "incomplete" and full["cut"]["incomplete_details"] == {
        "reason": "max_output_tokens"
    }


def test_openai_objects_headers_and_lists(server: EmulatorServer) -> None:
    """Sources: `x-request-id` on every response (API reference, debugging requests); batch input files
    expire after 30 days by default and output files carry `expires_at` (SDK files/batches docstrings);
    list `limit` 1-100 for batches (SDK); unknown paths answer a JSON 404 envelope."""
    client = _openai(server)
    batch, _ = _run_openai(server, [_chat()])
    raw = client.batches.with_raw_response.retrieve(batch.id)
    assert raw.headers.get("x-request-id", "").startswith("req_")
    assert client.files.retrieve(batch.output_file_id or "").expires_at
    assert client.files.retrieve(batch.input_file_id).expires_at
    with pytest.raises(openai.BadRequestError):
        client.batches.list(limit=101)
    with pytest.raises(openai.NotFoundError) as missing:
        client.get("/nowhere", cast_to=object)
    assert missing.value.code is None and "Invalid URL" in str(missing.value) and missing.value.request_id


def test_openai_result_order_is_not_input_order_and_shuffle_is_a_switch(tmp_path: Path) -> None:
    """Source: OpenAI Batch guide — output order is not guaranteed (join on custom_id)."""
    for faults in ({}, {"shuffle_results": True}):
        with EmulatorServer(tmp_path / f"emu{len(faults)}", _config(**faults)) as srv:
            client = _openai(srv)
            batch, results = _run_openai(srv, [_chat() for _ in range(20)])
            ids = [
                orjson.loads(x)["custom_id"] for x in client.files.content(batch.output_file_id or "").text.splitlines()
            ]
        assert sorted(ids) == sorted(results) and ids != [f"r{i}" for i in range(20)]


# ---- Anthropic ------------------------------------------------------------------------------------


def _anthropic(server: EmulatorServer, key: str = KEY, **kwargs: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=key, base_url=server.anthropic_base_url, _strict_response_validation=True,
                               max_retries=0, **kwargs)  # fmt: skip


def _request(i: int, **params: Any) -> dict[str, Any]:
    base = {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": f"hi {i}"}]}
    return {"custom_id": f"r{i}", "params": {**base, **params}}


def _anthropic_results(client: anthropic.Anthropic, requests: list[dict[str, Any]]) -> dict[str, Any]:
    batch = client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    assert client.messages.batches.retrieve(batch.id).processing_status == "ended"
    return {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}


def test_anthropic_validates_each_request_while_running_not_at_create(server: EmulatorServer) -> None:
    """Source: Message Batches docs — a batch is accepted and a request with bad params ends `errored`
    with the Messages API's error (before, one request without max_tokens refused the whole batch)."""
    client = _anthropic(server)
    no_max = _request(0)
    del no_max["params"]["max_tokens"]
    results = _anthropic_results(client, [no_max, _request(1)])
    assert results["r0"].type == "errored" and results["r1"].type == "succeeded"
    error = results["r0"].error.error
    assert (error.type, error.message) == ("invalid_request_error", "max_tokens: Field required")
    assert results["r1"].message.usage.service_tier == "batch"  # batch results report the batch tier


@pytest.mark.parametrize(
    ("params", "kind", "fragment"),
    [
        ({"model": "claude-nonexistent-9"}, "not_found_error", "model: claude-nonexistent-9"),
        ({"temperature": 0.5}, "invalid_request_error", "temperature: Extra inputs are not permitted"),
        ({"frobnicate": True}, "invalid_request_error", "frobnicate: Extra inputs are not permitted"),
        ({"max_tokens": 100_000}, "invalid_request_error", "maximum allowed number of output tokens"),
        ({"messages": [{"role": "system", "content": "x"}]}, "invalid_request_error", 'Unexpected role "system"'),
        ({"output_config": {"format": {"type": "json_schema"}}}, "invalid_request_error",
         "output_config.format.schema: Field required"),
        ({"output_config": "json"}, "invalid_request_error", "output_config: Input should be a valid dictionary"),
    ],
)  # fmt: skip
def test_anthropic_bad_request_params_end_errored(
    server: EmulatorServer, params: dict[str, Any], kind: str, fragment: str
) -> None:
    """Sources: Anthropic errors page (404 not_found_error for an unknown model); API version
    2026-10-21 — the installed SDK's default — removed temperature/top_p/top_k ("Extra inputs are not
    permitted"; anthropic 2.15's MessageCreateParams has no such keys); Haiku 4.5's 64K output limit
    (platform.claude.com model page); anthropic 2.15 OutputConfigParam for output_config."""
    results = _anthropic_results(_anthropic(server), [_request(0, **params)])
    assert results["r0"].type == "errored"
    assert results["r0"].error.error.type == kind and fragment in results["r0"].error.error.message


def test_anthropic_sampling_params_are_checked_by_range_on_the_old_api_version(server: EmulatorServer) -> None:
    """Source: anthropic-version 2023-06-01 still takes temperature in [0, 1] (Messages API reference)."""
    client = _anthropic(server, default_headers={"anthropic-version": "2023-06-01"})
    results = _anthropic_results(client, [_request(0, temperature=7), _request(1, temperature=0.5)])
    assert results["r0"].error.error.message == "temperature: Input should be less than or equal to 1"
    assert results["r1"].type == "succeeded"


def test_anthropic_auth_version_and_headers(server: EmulatorServer, keyed: EmulatorServer) -> None:
    """Sources: API overview (x-api-key and anthropic-version required; `request-id` on every
    response). [SDK≠docs] anthropic 2.x sends the key as `Authorization: Bearer` and the API takes it,
    so both are accepted; with `serve --api-key`, only that key."""
    url = f"{server.anthropic_base_url}/v1/messages/batches"
    with httpx2.Client() as raw:
        no_version = raw.get(url, headers={"x-api-key": KEY})
        by_header = raw.get(url, headers={"x-api-key": KEY, "anthropic-version": "2026-10-21"})
        by_bearer = raw.get(url, headers={"authorization": f"Bearer {KEY}", "anthropic-version": "2026-10-21"})
    assert no_version.status_code == 400 and "anthropic-version" in no_version.json()["error"]["message"]
    assert by_header.status_code == by_bearer.status_code == 200 and by_header.headers["request-id"]
    with pytest.raises(anthropic.AuthenticationError):
        _anthropic(keyed, key="wrong").messages.batches.list()
    assert _anthropic(keyed, key="the-right-key").messages.batches.list().data == []


def test_anthropic_paging_limits_count_tokens_and_unknown_routes(server: EmulatorServer) -> None:
    """Sources: list reference (limit 1-1000; before_id pages report has_more); token counting API
    (`POST /v1/messages/count_tokens` → input_tokens); errors page (JSON error envelope on 404)."""
    client = _anthropic(server)
    ids = [client.messages.batches.create(requests=[_request(0)]).id for _ in range(5)]  # type: ignore[list-item]
    page = client.messages.batches.list(limit=2, before_id=ids[1])  # newest first: ids[4], ids[3], ids[2] precede
    assert [b.id for b in page.data] == [ids[3], ids[2]] and page.has_more
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.list(limit=1001)
    counted = client.messages.count_tokens(model="claude-haiku-4-5", messages=[{"role": "user", "content": "hi"}])
    assert counted.input_tokens > 0
    with pytest.raises(anthropic.NotFoundError):
        client.messages.count_tokens(model="claude-nonexistent-9", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.get("/v1/nowhere", cast_to=object)
    assert missing.value.type == "not_found_error" and missing.value.request_id


def test_anthropic_results_validate_and_shuffle_is_a_switch(tmp_path: Path) -> None:
    """Source: Message Batches docs — results "may be in any order"; every line is MessageBatchIndividualResponse."""
    with EmulatorServer(tmp_path / "emu", _config(shuffle_results=True)) as srv:
        client = _anthropic(srv)
        batch = client.messages.batches.create(requests=[_request(i) for i in range(20)])  # type: ignore[misc]
        lines = list(client.messages.batches.results(batch.id))
    assert [r.custom_id for r in lines] != [f"r{i}" for i in range(20)]
    for line in lines:
        MessageBatchIndividualResponse.model_validate(line.model_dump(mode="json"), strict=False)


# ---- Gemini ---------------------------------------------------------------------------------------


def _gemini(server: EmulatorServer, version: str = "v1", key: str = KEY) -> genai.Client:
    return genai.Client(api_key=key, vertexai=False, http_options=genai_types.HttpOptions(
        base_url=server.gemini_base_url, api_version=version))  # fmt: skip


def _gemini_file(client: genai.Client, lines: list[dict[str, Any]]) -> tuple[str, bytes]:
    payload = b"".join(orjson.dumps(x) + b"\n" for x in lines)
    uploaded = client.files.upload(file=io.BytesIO(payload), config={"mime_type": "application/jsonl"})
    return uploaded.name or "", payload


def _line(i: int, **config: Any) -> dict[str, Any]:
    request: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": f"hi {i}"}]}]}
    if config:
        request["generationConfig"] = config
    return {"key": f"k{i}", "request": request}


def _gemini_results(server: EmulatorServer, lines: list[dict[str, Any]], version: str = "v1") -> list[dict[str, Any]]:
    client = _gemini(server, version)
    name, _ = _gemini_file(client, lines)
    job = client.batches.create(model="gemini-2.5-flash", src=name, config={"display_name": "t"})
    done = client.batches.get(name=job.name or "")
    assert done.dest and done.dest.file_name
    return [orjson.loads(x) for x in client.files.download(file=done.dest.file_name).splitlines()]


@pytest.mark.parametrize("model", ["gemini-nonexistent-9", "gemini-embedding-001"])
def test_gemini_unknown_or_non_generating_model_is_404_at_create(server: EmulatorServer, model: str) -> None:
    """Source: Gemini API — a model that does not exist or lacks the method answers 404 NOT_FOUND
    ("… is not found for API version v1, or is not supported for …"); model lists from genai-prices."""
    client = _gemini(server)
    name, _ = _gemini_file(client, [_line(0)])
    with pytest.raises(genai_errors.ClientError) as caught:
        client.batches.create(model=model, src=name, config={"display_name": "t"})
    assert caught.value.code == 404 and caught.value.status == "NOT_FOUND"


def test_gemini_display_name_is_required_and_inline_unknown_fields_fail_create(server: EmulatorServer) -> None:
    """Sources: GenerateContentBatch.displayName is REQUIRED (API reference); inline requests are
    parsed with the create call, so an unknown field is a 400 there (proto JSON: "Unknown name")."""
    client = _gemini(server)
    src = [{"contents": [{"role": "user", "parts": [{"text": "x"}]}], "metadata": {"key": "k1"}}]
    with pytest.raises(genai_errors.ClientError) as unnamed:
        client.batches.create(model="gemini-2.5-flash", src=src)  # type: ignore[arg-type]
    assert unnamed.value.code == 400 and "display_name" in str(unnamed.value.message)
    with httpx2.Client() as raw:
        body = {
            "batch": {
                "displayName": "t",
                "inputConfig": {
                    "requests": {
                        "requests": [
                            {
                                "request": {"contents": [{"parts": [{"text": "x"}]}], "frobnicate": 1},
                                "metadata": {"key": "k"},
                            }
                        ]
                    }
                },
            }
        }
        bad = raw.post(f"{server.gemini_base_url}/v1/models/gemini-2.5-flash:batchGenerateContent",
                       headers={"x-goog-api-key": KEY}, json=body)  # fmt: skip
    assert bad.status_code == 400 and 'Unknown name "frobnicate"' in bad.json()["error"]["message"]


def test_gemini_item_errors_are_grpc_status_in_input_order(tmp_path: Path) -> None:
    """Sources: google.rpc.Status (code is a gRPC code: 3 INVALID_ARGUMENT, 8 RESOURCE_EXHAUSTED);
    batch-mode docs: results in input order; GenerationConfig ranges (temperature 0-2)."""
    with EmulatorServer(tmp_path / "emu", _config(item_errors={"rate_limit": 1.0})) as srv:
        results = _gemini_results(
            srv, [_line(0, temperature=7), _line(1, frobnicate=1)] + [_line(i) for i in range(2, 12)]
        )
    assert [r["key"] for r in results] == [f"k{i}" for i in range(12)]
    assert results[0]["error"]["code"] == 3 and "temperature" in results[0]["error"]["message"]
    assert results[1]["error"]["code"] == 3 and 'Unknown name "frobnicate"' in results[1]["error"]["message"]
    codes = {r["error"]["code"] for r in results[2:] if "error" in r}
    assert codes == {8} and set(results[0]["error"]) == {"code", "message"}


def test_gemini_shuffle_is_a_switch(tmp_path: Path) -> None:
    """Source: python-genai#1909 reports out-of-order results at scale: tests can ask for it."""
    with EmulatorServer(tmp_path / "emu", _config(shuffle_results=True)) as srv:
        results = _gemini_results(srv, [_line(i) for i in range(12)])
    assert [r["key"] for r in results] != [f"k{i}" for i in range(12)]


def test_gemini_keys_operations_files_and_deletes(
    server: EmulatorServer, keyed: EmulatorServer, tmp_path: Path
) -> None:
    """Sources: Google API error model (wrong key: 400 INVALID_ARGUMENT, details[].reason API_KEY_INVALID);
    File.sha256Hash is the base64 SHA-256; files.list pages (pageSize ≤ 100, nextPageToken); deleting
    a missing batch or file is 404; operation metadata carries name and inputConfig."""
    wrong_client = _gemini(keyed, key="wrong")  # a temporary genai.Client closes itself (providers.md)
    with pytest.raises(genai_errors.ClientError) as wrong:
        list(wrong_client.batches.list())
    assert wrong.value.code == 400 and wrong.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    client = _gemini(server)
    names = [_gemini_file(client, [_line(i)]) for i in range(5)]
    got = client.files.get(name=names[0][0])
    assert got.sha256_hash == base64.b64encode(hashlib.sha256(names[0][1]).digest()).decode()
    assert len(list(client.files.list(config={"page_size": 2}))) == 5
    with httpx2.Client() as raw:
        first = raw.get(f"{server.gemini_base_url}/v1/files?pageSize=2", headers={"x-goog-api-key": KEY}).json()
        job = client.batches.create(model="gemini-2.5-flash", src=names[0][0], config={"display_name": "t"})
        op = raw.get(f"{server.gemini_base_url}/v1/{job.name}", headers={"x-goog-api-key": KEY}).json()
        nowhere = raw.get(f"{server.gemini_base_url}/v1/nowhere", headers={"x-goog-api-key": KEY})
    assert len(first["files"]) == 2 and first["nextPageToken"]
    assert op["metadata"]["name"] == job.name and op["metadata"]["inputConfig"] == {"fileName": names[0][0]}
    assert nowhere.status_code == 404 and nowhere.json()["error"]["status"] == "NOT_FOUND"
    for delete in (
        lambda: client.batches.delete(name="batches/missing"),
        lambda: client.files.delete(name="files/missing"),
    ):
        with pytest.raises(genai_errors.ClientError) as missing:
            delete()
        assert missing.value.code == 404


@pytest.mark.parametrize("version", ["v1", "v1beta"])
def test_gemini_count_tokens(server: EmulatorServer, version: str) -> None:
    """Source: models.countTokens (v1 and v1beta) → totalTokens; third-party batch clients call it first."""
    client = _gemini(server, version)
    counted = client.models.count_tokens(model="gemini-2.5-flash", contents="hello there")
    assert (counted.total_tokens or 0) > 0
    with pytest.raises(genai_errors.ClientError) as caught:
        client.models.count_tokens(model="gemini-nonexistent-9", contents="hello")
    assert caught.value.code == 404


def test_gemini_adapter_reports_a_wrong_key_as_a_key_problem(keyed: EmulatorServer) -> None:
    """Source: API_KEY_INVALID reason (Google API error model); llmbulk's adapter turns it into ConfigError."""
    from datetime import UTC, datetime

    from llmbulk.errors import ConfigError
    from llmbulk.providers.base import ProviderSettings
    from llmbulk.providers.gemini import GeminiBatchProvider

    adapter = GeminiBatchProvider(ProviderSettings(model="gemini-2.5-flash", base_url=keyed.gemini_base_url,
                                                   api_key="wrong"))  # fmt: skip
    with pytest.raises(ConfigError, match="GOOGLE_API_KEY"):
        adapter.find({"llmbulk_job": "j", "llmbulk_shard": "s"}, datetime(2020, 1, 1, tzinfo=UTC), 1)
    adapter.close()


# ---- every route's answers parse with the SDK types ----------------------------------------------


def test_chat_answers_parse_strictly(server: EmulatorServer) -> None:
    """Source: the SDK types (ChatCompletion) in strict mode."""
    _, results = _run_openai(server, [_chat()])
    ChatCompletion.model_validate(results["r0"]["response"]["body"], strict=False)
