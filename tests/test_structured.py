"""Structured outputs end to end on the emulator, per provider: native schema form on the wire, valid
results flattened into `out.<field>` columns, invalid JSON retried and then dead with the message kept.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import anthropic
import orjson
import pytest
from anthropic.types.messages import MessageBatchIndividualResponse
from conftest import QUICKSTART, Outcome

from llmbulk import schemas
from llmbulk.emulator import EmulatorConfig, EmulatorServer, FaultPlan
from llmbulk.errors import UsageError
from llmbulk.models import Task
from llmbulk.providers.anthropic import AnthropicBatchProvider
from llmbulk.providers.base import ProviderSettings

MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"}
SCHEMA = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": ["positive", "negative", "neutral"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "aspects": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["label", "confidence"],
}


def _anthropic_native(params: dict) -> bool:
    """Native structured output on the wire: `output_config.format`, closed objects, no forced tool."""
    fmt = params["output_config"]["format"]
    return (
        fmt["type"] == "json_schema"
        and fmt["schema"]["additionalProperties"] is False
        and set(fmt["schema"]["properties"]) == set(SCHEMA["properties"])
        and "tools" not in params
        and "tool_choice" not in params
    )


@pytest.fixture
def schema_file(tmp_path: Path) -> Path:
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(SCHEMA))
    return path


@pytest.mark.parametrize("provider", sorted(MODELS))
def test_valid_results_are_flattened_into_columns(
    provider: str, llmbulk: Callable[..., Outcome], home: Path, schema_file: Path
) -> None:
    result = llmbulk(
        "run", str(QUICKSTART), "-p", provider, "-m", MODELS[provider], "--prompt", "Review: {{ text }}",
        "--id-column", "review_id", "--schema", str(schema_file), "--out", "out.csv", "--emulate",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    with open(home.parent / "out.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 50
    for row in rows:
        assert row["out.label"] in {"positive", "negative", "neutral"}
        assert 0 <= float(row["out.confidence"]) <= 1
        assert json.loads(row["output"])["label"] == row["out.label"]
    shard = next((home / "jobs").glob("*/shards/00001.jsonl")).read_bytes().splitlines()[0]
    line = orjson.loads(shard)
    native = {
        "openai": lambda: line["body"]["response_format"]["json_schema"]["strict"],
        "anthropic": lambda: _anthropic_native(line["params"]),
        "gemini": lambda: line["request"]["generationConfig"]["responseMimeType"] == "application/json",
    }
    assert native[provider]()


@pytest.mark.parametrize("provider", sorted(MODELS))
def test_invalid_json_is_retried_then_dead_with_the_validation_message(
    provider: str, llmbulk: Callable[..., Outcome], faults: Callable[..., None], home: Path, schema_file: Path
) -> None:
    faults(invalid_json_rate=1.0)
    result = llmbulk(
        "run", str(QUICKSTART), "-p", provider, "-m", MODELS[provider], "--prompt", "Review: {{ text }}",
        "--schema", str(schema_file), "--max-attempts", "2", "--out", "out.csv", "--emulate", "--json",
    )  # fmt: skip
    assert result.exit_code == 4, result.stderr
    assert result.json()["counts"] == {"dead": 50}
    with open(home.parent / "out.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert all(r["attempts"] == "2" and "invalid_output" in r["error"] for r in rows)


def test_pydantic_model_schema_and_strict_form(tmp_path: Path) -> None:
    module = tmp_path / "models.py"
    module.write_text("from pydantic import BaseModel\nclass Review(BaseModel):\n    label: str\n    score: float\n")
    schema = schemas.load_schema(f"{module}:Review")
    assert set(schema["properties"]) == {"label", "score"}
    strict = schemas.strict({"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {}}}}})
    assert strict["additionalProperties"] is False and strict["required"] == ["a"]
    assert strict["properties"]["a"]["required"] == ["b"]
    with pytest.raises(UsageError):
        schemas.load_schema(f"{module}:Missing")
    assert schemas.validate_output('{"label": "x"}', schema) is not None
    assert schemas.validate_output('{"label": "x", "score": 0.5}', schema) is None


def test_explode_gives_one_row_per_list_element(llmbulk: Callable[..., Outcome], home: Path, tmp_path: Path) -> None:
    pair = {"type": "object", "properties": {"question": {"type": "string"}, "answer": {"type": "string"}}}
    qa = {
        "type": "object",
        "properties": {
            "pairs": {
                "type": "array",
                "items": {**pair, "required": ["question", "answer"]},
                "minItems": 2, "maxItems": 2,
            }
        },
        "required": ["pairs"],
    }  # fmt: skip
    (tmp_path / "qa.json").write_text(json.dumps(qa))
    result = llmbulk(
        "run", str(QUICKSTART), "-p", "openai", "-m", "gpt-4o-mini", "--prompt", "Q&A about: {{ text }}",
        "--id-column", "review_id", "--schema", str(tmp_path / "qa.json"), "--explode", "pairs",
        "--out", "qa.csv", "--emulate",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    with open(home.parent / "qa.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 100
    assert [r["review_id"] for r in rows[:4]] == ["R1001", "R1001", "R1002", "R1002"]
    assert all(r["out.pairs.question"] and r["out.pairs.answer"] for r in rows)
    bad = llmbulk("collect", result.stdout.split()[0], "--explode", "label", "--out", "x.csv")
    assert bad.exit_code == 2 and "not a list field" in bad.stderr


# ---- Anthropic native structured outputs on the emulator, checked with the SDK's own types ------------


def _anthropic_requests(n: int) -> list[dict]:
    adapter = AnthropicBatchProvider(ProviderSettings(model=MODELS["anthropic"], api_key="k"))
    tasks = [
        Task(i, f"r{i}", [{"role": "user", "content": f"Review {i}"}], None, {schemas.PARAM: SCHEMA}) for i in range(n)
    ]
    return [orjson.loads(adapter.encode(task, f"j1-{task.row_index}-1")) for task in tasks]


def _emulated_results(tmp_path: Path, requests: list[dict], **faults: object) -> list[dict]:
    config = EmulatorConfig(
        validating_seconds=0, running_seconds=0, finalizing_seconds=0, cancel_seconds=0, jitter=0,
        faults=FaultPlan.model_validate(faults),
    )  # fmt: skip
    with EmulatorServer(tmp_path / "emu", config) as server:
        client = anthropic.Anthropic(
            api_key="k", base_url=server.anthropic_base_url, _strict_response_validation=True, max_retries=0
        )
        batch = client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
        assert client.messages.batches.retrieve(batch.id).processing_status == "ended"
        lines = [r.model_dump(mode="json") for r in client.messages.batches.results(batch.id)]
    for line in lines:
        MessageBatchIndividualResponse.model_validate(line)
    return lines


def test_emulator_answers_native_structured_output_with_schema_valid_text(tmp_path: Path) -> None:
    lines = _emulated_results(tmp_path, _anthropic_requests(10))
    assert len(lines) == 10
    for line in lines:
        message = line["result"]["message"]
        assert line["result"]["type"] == "succeeded" and message["stop_reason"] == "end_turn"
        assert [block["type"] for block in message["content"]] == ["text"]
        assert schemas.validate_output(message["content"][0]["text"], SCHEMA) is None


def test_emulator_native_structured_output_honours_invalid_json_faults(tmp_path: Path) -> None:
    lines = _emulated_results(tmp_path, _anthropic_requests(3), invalid_json_rate=1.0)
    for line in lines:
        content = line["result"]["message"]["content"]
        assert [block["type"] for block in content] == ["text"]
        assert "not JSON" in (schemas.validate_output(content[0]["text"], SCHEMA) or "")


def test_emulator_still_answers_forced_tool_requests(tmp_path: Path) -> None:
    request = _anthropic_requests(1)[0]
    params = request["params"]
    schema = params.pop("output_config")["format"]["schema"]
    params["tools"] = [{"name": "record_output", "description": "Record the answer.", "input_schema": schema}]
    params["tool_choice"] = {"type": "tool", "name": "record_output"}
    (line,) = _emulated_results(tmp_path, [request])
    message = line["result"]["message"]
    assert message["stop_reason"] == "tool_use" and message["content"][0]["type"] == "tool_use"
    assert schemas.validate_output(json.dumps(message["content"][0]["input"]), SCHEMA) is None
    outcome = AnthropicBatchProvider(ProviderSettings(model="m", api_key="k")).decode(orjson.dumps(line))
    assert schemas.validate_output(outcome.output, SCHEMA) is None  # older jobs' tool answers still decode


@pytest.mark.parametrize(
    ("output_config", "problem"),
    [
        ({"format": {"type": "json_schema"}}, "output_config.format.schema: Field required"),
        ({"format": {"type": "json_object", "schema": SCHEMA}}, "output_config.format.type"),
        ({"format": {"type": "json_schema", "schema": "{}"}}, "output_config.format.schema"),
        ({"format": "json"}, "output_config.format"),
        ("json", "output_config"),
    ],
)
def test_emulator_rejects_malformed_output_config_at_create(
    tmp_path: Path, output_config: object, problem: str
) -> None:
    request = _anthropic_requests(1)[0]
    request["params"]["output_config"] = output_config
    config = EmulatorConfig(validating_seconds=0, running_seconds=0, finalizing_seconds=0, cancel_seconds=0, jitter=0)
    with EmulatorServer(tmp_path / "emu", config) as server:
        client = anthropic.Anthropic(api_key="k", base_url=server.anthropic_base_url, max_retries=0)
        with pytest.raises(anthropic.BadRequestError) as bad:
            client.messages.batches.create(requests=[request])  # type: ignore[list-item]
        assert not list(client.messages.batches.list())
    body = bad.value.body
    assert isinstance(body, dict) and body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith(f"requests.0.params.{problem}")
