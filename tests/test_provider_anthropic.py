"""Anthropic adapter, pure parts: request lines, result decoding and classification, status mapping,
orphan matching and error mapping. Fixtures are validated through the SDK's own models first."""

from __future__ import annotations

import random
import typing
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import orjson
import pytest
from anthropic.types.json_output_format_param import JSONOutputFormatParam
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
from anthropic.types.messages import MessageBatch, MessageBatchIndividualResponse
from anthropic.types.messages.batch_create_params import Request
from anthropic.types.shared.error_object import ErrorObject
from pydantic import TypeAdapter

from llmbulk.errors import ConfigError, InputError, ProviderError, QuotaError
from llmbulk.models import BatchState, Outcome, Task, make_custom_id
from llmbulk.providers import create, limits
from llmbulk.providers.anthropic import (
    DEFAULT_MAX_TOKENS,
    LIMITS,
    PERMANENT_ERROR_TYPES,
    STATES,
    AnthropicBatchProvider,
    batch_status,
    match_batches,
    split_lines,
    write_create_body,
)
from llmbulk.providers.base import ProviderSettings

MODEL = "claude-haiku-4-5"
KEY = "fake-anthropic-test-secret-0000"
# anthropic 2.12.0 no longer declares these in MessageCreateParams, but sends them unchanged.
SDK_UNDECLARED = {"temperature", "top_p", "top_k"}
RETRYABLE_ERROR_TYPES = {"api_error", "overloaded_error", "rate_limit_error", "timeout_error"}


def _adapter() -> AnthropicBatchProvider:
    return AnthropicBatchProvider(ProviderSettings(model=MODEL, api_key=KEY, base_url="http://127.0.0.1:9"))


def _task(messages: list[dict[str, Any]] | None = None, system: str | None = None, **params: Any) -> Task:
    schema = params.pop("json_schema", None)  # --schema: a typed field of the task
    return Task(3, "r3", messages or [{"role": "user", "content": "hello"}], system, params, schema)


def _line(task: Task, custom_id: str = "jabc12-3-1") -> dict[str, Any]:
    return orjson.loads(_adapter().encode(task, custom_id))


# ---- encode ------------------------------------------------------------------------------------


def test_line_shape_and_keys_accepted_by_the_sdk() -> None:
    task = _task(system="be brief", max_tokens=5, temperature=0.2, top_p=0.9, stop="END", seed=7)
    line = _line(task)
    assert set(line) == Request.__required_keys__ | Request.__optional_keys__
    params = line["params"]
    sdk_keys = MessageCreateParamsNonStreaming.__required_keys__ | MessageCreateParamsNonStreaming.__optional_keys__
    assert set(params) - SDK_UNDECLARED <= sdk_keys
    assert params == {
        "model": MODEL,
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "hello"}],
        "system": "be brief",
        "temperature": 0.2,
        "top_p": 0.9,
        "stop_sequences": ["END"],
    }
    assert isinstance(params["max_tokens"], int) and isinstance(params["system"], str)
    assert all(isinstance(s, str) for s in params["stop_sequences"])


def test_max_tokens_defaults_and_must_be_positive() -> None:
    assert _line(_task())["params"]["max_tokens"] == DEFAULT_MAX_TOKENS
    assert "system" not in _line(_task())["params"]
    for bad in (0, -1, True, "100", 1.5):
        with pytest.raises(InputError, match="max_tokens"):
            _adapter().encode(_task(max_tokens=bad), "j-1-1")


def test_stop_list_passes_and_reserved_params_are_refused() -> None:
    assert _line(_task(stop=["a", "b"]))["params"]["stop_sequences"] == ["a", "b"]
    for reserved in ("stream", "model", "messages"):
        with pytest.raises(InputError, match=reserved):
            _adapter().encode(Task(1, "r1", [{"role": "user", "content": "hi"}], None, {reserved: True}), "j-1-1")


@pytest.mark.parametrize("custom_id", ["x" * 65, "job.1-2-1", "job 1", "jöb-1-1", ""])
def test_invalid_custom_ids_are_refused_by_name(custom_id: str) -> None:
    with pytest.raises(InputError) as caught:
        _adapter().encode(_task(), custom_id)
    assert repr(custom_id) in caught.value.message


def test_valid_custom_ids_pass() -> None:
    for custom_id in ("x" * 64, "A_b-9", make_custom_id("jabc12", 99_999, 3)):
        assert _line(_task(), custom_id)["custom_id"] == custom_id


def test_system_messages_are_lifted() -> None:
    messages = [
        {"role": "system", "content": "rule one"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "system", "content": [{"type": "text", "text": "rule two"}]},
        {"role": "user", "content": [{"type": "text", "text": "again"}], "name": "ignored"},
    ]
    params = _line(_task(messages, system="task system"))["params"]
    assert params["system"] == "task system\n\nrule one\n\nrule two"
    assert [m["role"] for m in params["messages"]] == ["user", "assistant", "user"]
    assert params["messages"][2] == {"role": "user", "content": [{"type": "text", "text": "again"}]}


def test_unsupported_roles_and_system_only_tasks_are_refused() -> None:
    with pytest.raises(InputError, match="role 'tool'"):
        _adapter().encode(_task([{"role": "user", "content": "a"}, {"role": "tool", "content": "b"}]), "j-1-1")
    with pytest.raises(InputError, match="no user or assistant"):
        _adapter().encode(_task([{"role": "system", "content": "only"}]), "j-1-1")


SCHEMA = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": ["positive", "negative"]},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "tags": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
    },
    "required": ["label"],
}


def test_schema_becomes_native_output_config_accepted_by_the_sdk() -> None:
    params = _line(_task(json_schema=SCHEMA))["params"]
    assert "tools" not in params and "tool_choice" not in params
    assert set(params["output_config"]) == {"format"}
    fmt = params["output_config"]["format"]
    assert set(fmt) == JSONOutputFormatParam.__required_keys__ | JSONOutputFormatParam.__optional_keys__
    assert fmt["type"] == "json_schema"
    # The SDK's own transform: every object closed, unsupported bounds moved into the description.
    assert fmt["schema"] == anthropic.transform_schema(SCHEMA)
    assert fmt["schema"]["additionalProperties"] is False
    assert fmt["schema"]["properties"]["tags"]["items"]["additionalProperties"] is False
    assert "minimum" not in fmt["schema"]["properties"]["score"]
    assert fmt["schema"]["required"] == ["label"]
    assert "additionalProperties" not in SCHEMA  # the job's schema (used to validate results) is untouched
    # The whole request validates as the SDK's batch request type.
    TypeAdapter(Request).validate_python(_line(_task(json_schema=SCHEMA)), strict=True)


def test_output_config_effort_merges_with_the_schema_format() -> None:
    for params in ({"output_config": {"effort": "low"}, "json_schema": SCHEMA},
                   {"json_schema": SCHEMA, "output_config": {"effort": "low", "format": None}}):  # fmt: skip
        config = _line(_task(**params))["params"]["output_config"]
        assert config["effort"] == "low" and config["format"]["type"] == "json_schema"
    assert _line(_task(output_config={"effort": "high"}))["params"]["output_config"] == {"effort": "high"}


def test_schema_the_sdk_cannot_transform_is_refused() -> None:
    with pytest.raises(InputError, match="structured outputs"):
        _adapter().encode(_task(json_schema={"type": "object", "properties": {"any": {}}}), "j-1-1")


# ---- decode ------------------------------------------------------------------------------------


def _result_line(custom_id: str, result: dict[str, Any]) -> bytes:
    """A results line as the API would write it, checked against the SDK's own model first."""
    validated = MessageBatchIndividualResponse.model_validate({"custom_id": custom_id, "result": result})
    return validated.model_dump_json().encode()


def _message(content: list[dict[str, Any]], stop_reason: str = "end_turn", **usage: int) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": content,
        "stop_reason": stop_reason,
        "usage": {"input_tokens": 11, "output_tokens": 2, **usage},
    }


def _errored(error_type: str, message: str = "went wrong") -> dict[str, Any]:
    return {
        "type": "errored",
        "error": {"type": "error", "error": {"type": error_type, "message": message}, "request_id": "req_1"},
    }


def test_decode_success_joins_text_and_reads_usage() -> None:
    content = [{"type": "text", "text": "posi"}, {"type": "text", "text": "tive"}]
    line = _result_line("j-1-1", {"type": "succeeded", "message": _message(content, cache_read_input_tokens=4)})
    out = _adapter().decode(line)
    assert (out.custom_id, out.outcome, out.output, out.finish_reason) == (
        "j-1-1",
        Outcome.SUCCEEDED,
        "positive",
        "end_turn",
    )
    # Anthropic's input_tokens excludes cache reads; llmbulk counts cached tokens inside input.
    assert (out.input_tokens, out.output_tokens, out.cached_tokens) == (15, 2, 4)


def test_decode_success_without_cache_fields() -> None:
    line = _result_line("j-1-1", {"type": "succeeded", "message": _message([{"type": "text", "text": "x"}])})
    out = _adapter().decode(line)
    assert (out.input_tokens, out.output_tokens, out.cached_tokens) == (11, 2, None)


def test_decode_native_structured_output_is_the_json_text() -> None:
    content = [{"type": "text", "text": '{"label": "positive", "score": 0.9}'}]
    out = _adapter().decode(_result_line("j-1-1", {"type": "succeeded", "message": _message(content)}))
    assert orjson.loads(out.output or "") == {"label": "positive", "score": 0.9}
    assert out.finish_reason == "end_turn"


def test_decode_tool_use_gives_its_input_as_json() -> None:
    """Jobs submitted by older versions forced a tool call; their answers still decode."""
    content = [
        {"type": "text", "text": "Here you go"},
        {"type": "tool_use", "id": "toolu_1", "name": "answer", "input": {"label": "positive", "score": 0.9}},
    ]
    line = _result_line("j-1-1", {"type": "succeeded", "message": _message(content, stop_reason="tool_use")})
    out = _adapter().decode(line)
    assert orjson.loads(out.output or "") == {"label": "positive", "score": 0.9}
    assert out.finish_reason == "tool_use"


def _sdk_item_error_types() -> set[str]:
    members = typing.get_args(typing.get_args(ErrorObject)[0])
    return {value for member in members for value in typing.get_args(member.model_fields["type"].annotation)}


def test_every_sdk_item_error_type_is_classified_as_documented() -> None:
    # request_too_large is an HTTP-level type only: the SDK's per-item error union does not include it.
    assert _sdk_item_error_types() == (PERMANENT_ERROR_TYPES - {"request_too_large"}) | RETRYABLE_ERROR_TYPES


@pytest.mark.parametrize("error_type", sorted(PERMANENT_ERROR_TYPES | RETRYABLE_ERROR_TYPES))
def test_decode_errored_lines(error_type: str) -> None:
    if error_type in _sdk_item_error_types():
        line = _result_line("j-1-1", _errored(error_type))
    else:
        line = orjson.dumps({"custom_id": "j-1-1", "result": _errored(error_type)})
    out = _adapter().decode(line)
    expected = Outcome.PERMANENT if error_type in PERMANENT_ERROR_TYPES else Outcome.RETRYABLE
    assert out.outcome is expected
    assert (out.error_type, out.error_code, out.error_message) == (error_type, error_type, "went wrong")


def test_decode_unknown_error_types_are_retryable_and_keep_details() -> None:
    line = orjson.dumps({"custom_id": "j-1-1", "result": _errored("brand_new_error")})
    out = _adapter().decode(line)
    assert out.outcome is Outcome.RETRYABLE and out.error_type == "brand_new_error"
    detailed = _errored("invalid_request_error")
    detailed["error"]["error"]["details"] = {"error_code": "prefill_not_supported"}
    out = _adapter().decode(orjson.dumps({"custom_id": "j-1-1", "result": detailed}))
    assert out.outcome is Outcome.PERMANENT and out.error_code == "prefill_not_supported"


@pytest.mark.parametrize("kind", ["canceled", "expired"])
def test_decode_canceled_and_expired_are_retryable(kind: str) -> None:
    out = _adapter().decode(_result_line("j-1-1", {"type": kind}))
    assert out.outcome is Outcome.RETRYABLE and out.error_code == kind and out.error_message


def test_decode_keys_on_custom_id_in_any_order() -> None:
    lines = [
        _result_line("j-0-1", {"type": "succeeded", "message": _message([{"type": "text", "text": "zero"}])}),
        _result_line("j-1-1", _errored("overloaded_error")),
        _result_line("j-2-1", {"type": "expired"}),
        _result_line("j-3-1", {"type": "succeeded", "message": _message([{"type": "text", "text": "three"}])}),
    ]
    random.Random(4).shuffle(lines)
    by_id = {o.custom_id: o for o in map(_adapter().decode, lines)}
    assert by_id["j-0-1"].output == "zero" and by_id["j-3-1"].output == "three"
    assert by_id["j-1-1"].outcome is by_id["j-2-1"].outcome is Outcome.RETRYABLE


def test_decode_unknown_result_type_raises() -> None:
    with pytest.raises(ProviderError, match="unknown type 'deferred'"):
        _adapter().decode(orjson.dumps({"custom_id": "j-1-1", "result": {"type": "deferred"}}))


# ---- status ------------------------------------------------------------------------------------

CREATED = "2026-01-01T00:00:00Z"


def _batch(status: str, counts: dict[str, int] | None = None, **fields: Any) -> MessageBatch:
    zero = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    return MessageBatch.model_validate(
        {
            "id": "msgbatch_1",
            "type": "message_batch",
            "processing_status": status,
            "request_counts": {**zero, **(counts or {})},
            "created_at": fields.pop("created_at", CREATED),
            "expires_at": "2026-01-02T00:00:00Z",
            **fields,
        }
    )


def _ended(**fields: Any) -> MessageBatch:
    counts = {"succeeded": 5, "errored": 1, "canceled": 2, "expired": 1}
    url = "https://api.example/v1/messages/batches/msgbatch_1/results"
    return _batch("ended", counts, ended_at="2026-01-01T01:00:00Z", results_url=url, **fields)


def test_status_mapping_covers_every_sdk_status() -> None:
    values = set(typing.get_args(MessageBatch.model_fields["processing_status"].annotation))
    assert values == set(STATES)
    for value in values:
        batch = _ended() if value == "ended" else _batch(value, {"processing": 9})
        status = batch_status(batch)
        assert status.state is STATES[value] and status.raw_status == value and status.total == 9
        assert status.raw["id"] == "msgbatch_1"


def test_counts_are_unknown_until_ended() -> None:
    for value in ("in_progress", "canceling"):
        status = batch_status(_batch(value, {"processing": 9}))
        assert status.counts_known is False and status.total == 9
        assert status.completed is None and status.failed is None
        assert status.result_refs == {} and status.ended_at is None


def test_ended_batch_counts_refs_and_time() -> None:
    status = batch_status(_ended())
    assert status.state is BatchState.ENDED and status.counts_known
    assert (status.total, status.completed, status.failed) == (9, 9, 4)
    assert status.result_refs == {"results_url": "https://api.example/v1/messages/batches/msgbatch_1/results"}
    assert status.ended_at == datetime(2026, 1, 1, 1, tzinfo=UTC).timestamp()


def test_cancelled_batches_are_told_apart() -> None:
    cancelling = batch_status(_batch("canceling", {"processing": 9}, cancel_initiated_at=CREATED))
    assert cancelling.state is BatchState.CANCELLING
    cancelled = batch_status(_ended(cancel_initiated_at=CREATED))
    assert cancelled.state is BatchState.CANCELLED and cancelled.state.terminal
    assert cancelled.result_refs and cancelled.completed == 9


def test_unknown_status_raises() -> None:
    batch = _batch("in_progress", {"processing": 1}).model_copy(update={"processing_status": "paused"})
    with pytest.raises(ProviderError, match="unknown status 'paused'"):
        batch_status(batch)


# ---- find --------------------------------------------------------------------------------------


def test_match_batches_by_time_and_count_and_stops_at_older_ones() -> None:
    newest_first = [
        _batch("in_progress", {"processing": 6}, id="msgbatch_new", created_at="2026-01-01T00:10:00Z"),
        _batch("in_progress", {"processing": 7}, id="msgbatch_other", created_at="2026-01-01T00:09:00Z"),
        _batch("ended", {"succeeded": 4, "errored": 2}, id="msgbatch_done", created_at="2026-01-01T00:05:00Z"),
        _batch("ended", {"succeeded": 6}, id="msgbatch_old", created_at="2025-12-31T23:00:00Z"),
    ]
    seen: list[str] = []

    def pages() -> Iterator[MessageBatch]:
        for batch in newest_first:
            seen.append(batch.id)
            yield batch
        raise AssertionError("paged past the cutoff")

    cutoff = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    found = match_batches(pages(), cutoff, 6)
    assert [f.batch_id for f in found] == ["msgbatch_new", "msgbatch_done"]
    assert found[0].provider == "anthropic"
    assert found[0].created_at == datetime(2026, 1, 1, 0, 10, tzinfo=UTC).timestamp()
    assert seen == [b.id for b in newest_first]  # stopped at the first older batch
    assert match_batches(iter(newest_first), cutoff, 99) == []


# ---- results stream ----------------------------------------------------------------------------


def test_split_lines_across_chunks_without_blank_lines() -> None:
    chunks = [b'{"a":1}\n{"b"', b":2}\r\n\n", b"\n", b'{"c":3}']
    assert list(split_lines(chunks)) == [b'{"a":1}', b'{"b":2}', b'{"c":3}']
    assert list(split_lines([b"", b"\n \n"])) == []


def test_result_blocks_end_at_line_ends_and_keep_every_byte() -> None:
    from llmbulk.providers.base import whole_line_blocks

    # What a download writes to disk: chunks cut anywhere become blocks of whole lines, nothing lost.
    chunks = [b'{"a":1}\n{"b"', b":2}", b'\r\n\n{"c":3}\n', b'{"d"', b":4}"]
    blocks = list(whole_line_blocks(chunks))
    assert blocks == [b'{"a":1}\n', b'{"b":2}\r\n\n{"c":3}\n', b'{"d":4}\n']  # the last line gets its newline
    assert list(split_lines(blocks)) == [b'{"a":1}', b'{"b":2}', b'{"c":3}', b'{"d":4}']
    assert list(whole_line_blocks([b"", b"x"])) == [b"x\n"] and list(whole_line_blocks([b" "])) == []


# ---- errors, limits, registry ------------------------------------------------------------------


def _status_error(cls: type[anthropic.APIStatusError], code: int, error_type: str, message: str) -> Exception:
    body = {"type": "error", "error": {"type": error_type, "message": message}, "request_id": "req_1"}
    response = httpx2.Response(code, request=httpx2.Request("GET", "http://127.0.0.1:9/v1/messages/batches"))
    return cls(f"Error code: {code} - {body}", response=response, body=body)


def _mapped(exc: Exception) -> Exception:
    with pytest.raises(Exception) as caught, _adapter()._mapped("poll"):
        raise exc
    assert KEY not in str(caught.value) and "{'type'" not in str(caught.value)
    return caught.value


def test_error_mapping() -> None:
    auth = _mapped(_status_error(anthropic.AuthenticationError, 401, "authentication_error", f"bad key {KEY}"))
    assert isinstance(auth, ConfigError) and "ANTHROPIC_API_KEY" in str(auth)
    quota = _mapped(_status_error(anthropic.RateLimitError, 429, "rate_limit_error", "slow down"))
    assert isinstance(quota, QuotaError) and quota.retryable and "slow down" in str(quota)
    big = _mapped(_status_error(anthropic.ContentTooLargeError, 413, "request_too_large", "too big"))
    assert type(big) is ProviderError and not big.retryable and "--max-bytes-per-batch" in str(big)
    bad = _mapped(_status_error(anthropic.BadRequestError, 400, "invalid_request_error", "requests.0: nope"))
    assert type(bad) is ProviderError and not bad.retryable and "requests.0: nope" in str(bad)
    for cls, code in ((anthropic.OverloadedError, 529), (anthropic.InternalServerError, 500)):
        busy = _mapped(_status_error(cls, code, "overloaded_error", "busy"))
        assert type(busy) is ProviderError and busy.retryable
    request = httpx2.Request("GET", "http://127.0.0.1:9/v1/messages/batches")
    down = _mapped(anthropic.APIConnectionError(request=request))
    assert type(down) is ProviderError and down.retryable and "ANTHROPIC_BASE_URL" in str(down)
    early = _mapped(anthropic.AnthropicError("No `results_url` for the given batch; Has it finished? in_progress"))
    assert type(early) is ProviderError and "results_url" in str(early)


def test_limits_registry_and_noop_calls() -> None:
    assert (LIMITS.max_items, LIMITS.counts_live) == (100_000, False)
    # A shard filled to both caps still makes a create body within the 256 MB limit.
    assert LIMITS.max_bytes + (LIMITS.max_items - 1) + len(b'{"requests":[]}') <= 256 * 1024 * 1024
    assert limits("anthropic") is LIMITS
    adapter = create("anthropic", ProviderSettings(model=MODEL, api_key=KEY))
    assert isinstance(adapter, AnthropicBatchProvider) and adapter._client is None  # SDK client made lazily
    assert adapter.files is None  # the requests travel in the create body: nothing to upload or delete
    adapter.close()


def test_sdk_version_is_the_one_documented() -> None:
    assert anthropic.__version__.split(".")[0] == "2"


def test_create_body_is_the_shard_lines_as_a_requests_array(tmp_path: Path) -> None:
    shard = tmp_path / "00001.jsonl"
    requests = [
        {"custom_id": f"j-{i}-1", "params": {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user",
         "content": "a \"quoted\", multi\nline ✓ text"}]}}
        for i in range(3)
    ]  # fmt: skip
    lines = b"".join(orjson.dumps(r) + b"\n" for r in requests)
    shard.write_bytes(lines + b"\n")  # a trailing blank line is not a request
    body = write_create_body(shard)
    assert orjson.loads(body.read_bytes()) == {"requests": requests}
    assert body.stat().st_size == len(lines) - len(requests) + 2 * (len(requests) - 1) + len(b'{"requests":[]}')
    assert body.parent == shard.parent and body.name.startswith(".")
