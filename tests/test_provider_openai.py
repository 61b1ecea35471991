"""OpenAI adapter, pure parts: line encoding, result decoding and classification, status mapping."""

from __future__ import annotations

import typing

import openai.types
import orjson
import pytest
from openai.types import Batch
from openai.types.chat import ChatCompletion

from llmbulk.errors import ProviderError
from llmbulk.models import BatchState, Outcome, Task
from llmbulk.providers.base import ProviderSettings
from llmbulk.providers.openai import STATES, OpenAIBatchProvider, batch_status


def _adapter(endpoint: str | None = None) -> OpenAIBatchProvider:
    return OpenAIBatchProvider(ProviderSettings(model="gpt-4o-mini", endpoint=endpoint))


TASK = Task(3, "r3", [{"role": "user", "content": "hello"}], "be brief", {"max_tokens": 5, "temperature": 0.2})


def test_chat_line_shape() -> None:
    line = orjson.loads(_adapter().encode(TASK, "jabc12-3-1"))
    assert line == {
        "custom_id": "jabc12-3-1",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": "gpt-4o-mini",
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}],
            "temperature": 0.2,
            "max_completion_tokens": 5,
        },
    }


def test_responses_and_embeddings_lines() -> None:
    responses = orjson.loads(_adapter("/v1/responses").encode(TASK, "j-1-1"))
    assert responses["url"] == "/v1/responses"
    assert responses["body"]["instructions"] == "be brief" and responses["body"]["max_output_tokens"] == 5
    embeddings = orjson.loads(_adapter("/v1/embeddings").encode(TASK, "j-1-1"))
    assert embeddings["body"] == {"model": "gpt-4o-mini", "input": "hello"}


def _chat_body(content: str) -> dict:
    return ChatCompletion.model_validate(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": 11,
                "completion_tokens": 2,
                "total_tokens": 13,
                "prompt_tokens_details": {"cached_tokens": 4},
                "completion_tokens_details": {"reasoning_tokens": 1},
            },
        }
    ).model_dump(mode="json")


def test_decode_success_reads_text_and_usage() -> None:
    line = {"id": "r", "custom_id": "j-1-1", "response": {"status_code": 200, "body": _chat_body("positive")}}
    out = _adapter().decode(orjson.dumps(line))
    assert (out.outcome, out.output, out.finish_reason) == (Outcome.SUCCEEDED, "positive", "stop")
    assert (out.input_tokens, out.output_tokens, out.cached_tokens, out.reasoning_tokens) == (11, 2, 4, 1)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(400, Outcome.PERMANENT), (404, Outcome.PERMANENT), (429, Outcome.RETRYABLE), (500, Outcome.RETRYABLE)],
)
def test_decode_http_error_lines(status: int, outcome: Outcome) -> None:
    body = {"error": {"message": "m", "type": "t", "param": None, "code": "c"}}
    line = {"custom_id": "j-1-1", "response": {"status_code": status, "body": body}, "error": None}
    out = _adapter().decode(orjson.dumps(line))
    assert out.outcome is outcome and out.error_message == "m" and out.error_code == "c"


@pytest.mark.parametrize("code", ["batch_expired", "batch_cancelled", "request_timeout"])
def test_decode_no_response_lines_are_retryable(code: str) -> None:
    line = {"custom_id": "j-1-1", "response": None, "error": {"code": code, "message": "x"}}
    out = _adapter().decode(orjson.dumps(line))
    assert out.outcome is Outcome.RETRYABLE and out.error_code == code


def test_status_mapping_covers_every_sdk_status() -> None:
    values = set(typing.get_args(Batch.model_fields["status"].annotation))
    assert values == set(STATES)
    for value in values:
        batch = Batch.model_validate(
            {
                "id": "batch_1",
                "object": "batch",
                "endpoint": "/v1/chat/completions",
                "input_file_id": "file-1",
                "completion_window": "24h",
                "created_at": 1,
                "status": value,
                "output_file_id": "file-2",
                "request_counts": {"total": 3, "completed": 2, "failed": 1},
            }
        )
        status = batch_status(batch)
        assert status.state is STATES[value] and status.raw_status == value
        assert status.total == 3 and status.completed == 3 and status.failed == 1


def test_completed_without_files_keeps_polling_and_unknown_status_raises() -> None:
    base = {
        "id": "batch_1",
        "object": "batch",
        "endpoint": "/v1/chat/completions",
        "input_file_id": "file-1",
        "completion_window": "24h",
        "created_at": 1,
        "request_counts": {"total": 3, "completed": 3, "failed": 0},
    }
    late = batch_status(Batch.model_validate({**base, "status": "completed"}))
    assert late.state is BatchState.FINALIZING
    all_failed = batch_status(Batch.model_validate({**base, "status": "completed", "error_file_id": "file-9"}))
    assert all_failed.state is BatchState.ENDED and all_failed.result_refs == {"error_file_id": "file-9"}
    with pytest.raises(ProviderError, match="unknown status"):
        batch_status(Batch.model_construct(**{**base, "status": "paused"}))


def test_sdk_version_is_the_one_documented() -> None:
    assert openai.__version__.split(".")[0] == "3"
    assert hasattr(openai.types, "Batch")
