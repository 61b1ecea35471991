"""Structured outputs end to end on the emulator, per provider: native schema form on the wire, valid
results flattened into `out.<field>` columns, invalid JSON retried and then dead with the message kept.
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
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
from llmbulk.models import SCHEMA_PARAM, Task
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
    # Each item's cost and tokens are on its first row only: the column sums to the job's cost.
    assert all(r["cost_usd"] == "" and r["output_tokens"] == "" for r in rows[1::2])
    job_id = result.stdout.split()[0]
    cost = llmbulk("cost", job_id, "--json").json()
    assert abs(sum(float(r["cost_usd"]) for r in rows[::2]) - cost["actual_usd"]) < 1e-9
    assert sum(int(r["output_tokens"]) for r in rows[::2]) == cost["tokens"]["output_tokens"]
    bad = llmbulk("collect", job_id, "--explode", "label", "--out", "x.csv")
    assert bad.exit_code == 2 and "not a list field" in bad.stderr


# ---- Anthropic native structured outputs on the emulator, checked with the SDK's own types ------------


def _anthropic_requests(n: int) -> list[dict]:
    adapter = AnthropicBatchProvider(ProviderSettings(model=MODELS["anthropic"], api_key="k"))
    tasks = [Task(i, f"r{i}", [{"role": "user", "content": f"Review {i}"}], None, {}, SCHEMA) for i in range(n)]
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


# ---- the schema is checked completely when it is loaded, before anything is sent ---------------------

RECURSIVE_OPTIONAL = {"type": "object", "properties": {"v": {"type": "string"}, "next": {"$ref": "#"}}}
LIST_TREE = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#"}}},
    "required": ["name", "children"],
}
NULLABLE_LINK = {
    "type": "object",
    "properties": {"v": {"type": "string"}, "next": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]}},
    "required": ["v", "next"],
    "$defs": {"Node": {"$ref": "#"}},
}


@pytest.mark.parametrize(
    ("schema", "fragments"),
    [
        ({"$ref": "#"}, ("/$ref", "no finite answer")),
        (
            {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}},
            ("'#/$defs/missing'", "/properties/a/$ref", "points to nothing"),
        ),
        (
            {"type": "object", "properties": {"a": {"$ref": "https://example.com/a.json"}}},
            ("outside the schema", "/properties/a/$ref"),
        ),
        ({"type": "object", "properties": {"a": {"$ref": "a.json#/x"}}}, ("outside the schema",)),
        (
            {"type": "object", "properties": {"a": {"$ref": "#/properties/b/items"}, "b": {"type": "string"}}},
            ("points to nothing",),
        ),
        ({"type": "object", "properties": {"a": {"$ref": "#/required/0"}}, "required": ["a"]}, ("not a schema",)),
        ({"type": "object", "properties": {"a": {"$ref": "#nowhere"}}}, ("no $anchor",)),
        ({"type": "object", "properties": {"a": {"type": "strin"}}}, ("not a valid JSON Schema", "/properties/a/type")),
        ({"type": "object", "required": "a"}, ("not a valid JSON Schema", "/required")),
        ({"$schema": "https://example.com/my-dialect", "type": "object"}, ("unknown $schema",)),
        (
            {"type": "object", "properties": {"a": {"$dynamicRef": "#node"}}},
            ("$dynamicRef", "/properties/a/$dynamicRef"),
        ),
        (
            {"type": "object", "properties": {"a": {"$id": "https://x/a", "type": "string"}}},
            ("$id", "/properties/a/$id"),
        ),
        ({**RECURSIVE_OPTIONAL, "required": ["next"]}, ("/properties/next/$ref", "no finite answer")),
        (
            {
                "type": "object",
                "properties": {"n": {"$ref": "#/$defs/A"}},
                "required": ["n"],
                "$defs": {
                    "A": {"type": "object", "properties": {"b": {"$ref": "#/$defs/B"}}, "required": ["b"]},
                    "B": {"type": "array", "items": {"$ref": "#/$defs/A"}, "minItems": 1},
                },
            },
            ("/$defs/B/items/$ref",),
        ),
        ({"type": "object", "properties": {"a": False}, "required": ["a"]}, ("/properties/a", "matches nothing")),
        ({"type": "array"}, ("top level must be an object",)),
    ],
)
def test_a_schema_that_cannot_work_is_refused_at_load_naming_file_and_pointer(
    tmp_path: Path, schema: dict, fragments: tuple[str, ...]
) -> None:
    path = tmp_path / "bad_schema.json"
    path.write_text(json.dumps(schema))
    for provider in (None, *MODELS):
        with pytest.raises(UsageError) as refused:
            schemas.load_schema(str(path), provider)
        message = str(refused.value)
        assert message.startswith(f"--schema {path}: ") and "\n" not in message
        for fragment in fragments:
            assert fragment in message, message


@pytest.mark.parametrize(
    "schema",
    [
        SCHEMA,
        LIST_TREE,
        NULLABLE_LINK,
        {"type": "object", "properties": {"enum": {"type": "string"}, "copy": {"$ref": "#/properties/enum"}}},
        {"type": "object", "properties": {"a": {"enum": [{"$ref": "not a reference, just data"}]}}},
        {"type": "object", "properties": {"a": {"$ref": "#/$defs/A~1B"}}, "$defs": {"A/B": {"type": "string"}}},
        {
            "$id": "https://example.com/s.json",
            "type": "object",
            "properties": {"a": {"$ref": "https://example.com/s.json#/$defs/A"}},
            "$defs": {"A": {"type": "string"}},
        },
        {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {"a": {"$ref": "#/definitions/A"}},
            "definitions": {"A": {"type": "integer"}},
        },
    ],
)
def test_usable_schemas_still_load_for_openai_and_gemini(tmp_path: Path, schema: dict) -> None:
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(schema))
    for provider in (None, "openai", "gemini"):
        assert schemas.load_schema(str(path), provider) == schema


def test_provider_rules_openai_strict_and_anthropic() -> None:
    """OpenAI strict mode requires every property, so an optional self-reference never stops; Anthropic
    takes no recursion at all, and only what its SDK's transform_schema (which the adapter sends) can take."""
    schemas.check_schema(RECURSIVE_OPTIONAL, "--schema s.json")  # fine in itself, and for Gemini
    schemas.check_schema(RECURSIVE_OPTIONAL, "--schema s.json", "gemini")
    with pytest.raises(UsageError, match=r"OpenAI strict mode .* /properties/next/\$ref"):
        schemas.check_schema(RECURSIVE_OPTIONAL, "--schema s.json", "openai")
    for recursive in (RECURSIVE_OPTIONAL, LIST_TREE, NULLABLE_LINK):
        with pytest.raises(UsageError, match="recursive, which Anthropic structured outputs do not support"):
            schemas.check_schema(recursive, "--schema s.json", "anthropic")
    type_list = {"type": "object", "properties": {"a": {"type": ["string", "null"]}}}
    with pytest.raises(UsageError, match="Anthropic structured outputs cannot take this schema"):
        schemas.check_schema(type_list, "--schema s.json", "anthropic")
    definitions = {"type": "object", "properties": {"a": {"$ref": "#/definitions/A"}}, "definitions": {"A": {}}}
    with pytest.raises(UsageError, match=r"for Anthropic structured outputs.*points to nothing"):
        schemas.check_schema(definitions, "--schema s.json", "anthropic")
    schemas.check_schema(SCHEMA, "--schema s.json", "anthropic")
    schemas.check_schema(LIST_TREE, "--schema s.json", "openai")


def test_pydantic_models_recursive_with_a_way_to_stop_load_and_without_are_refused(tmp_path: Path) -> None:
    module = tmp_path / "tree_models.py"
    module.write_text(
        "from __future__ import annotations\n"
        "from pydantic import BaseModel\n"
        "class Tree(BaseModel):\n    name: str\n    children: list[Tree]\n"
        "class Chain(BaseModel):\n    v: str\n    next: Chain | None\n"
        "class Endless(BaseModel):\n    v: str\n    next: Endless\n"
    )
    for name in ("Tree", "Chain"):
        assert schemas.load_schema(f"{module}:{name}", "openai")["$defs"]
    with pytest.raises(UsageError, match=r"no finite answer"):
        schemas.load_schema(f"{module}:Endless")


def test_schema_file_problems_are_one_line(tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes(b'{"type": "object", "description": "caf\xe9"}')
    with pytest.raises(UsageError, match=r"latin1.json: not valid UTF-8 \(byte 38\)"):
        schemas.load_schema(str(latin1))
    bom = tmp_path / "bom.json"
    bom.write_bytes(b'\xef\xbb\xbf{"type": "object"}')
    assert schemas.load_schema(str(bom)) == {"type": "object"}
    broken = tmp_path / "broken.json"
    broken.write_text('{"type": "object",\n "properties": }')
    with pytest.raises(UsageError, match=r"not valid JSON .* line 2"):
        schemas.load_schema(str(broken))
    with pytest.raises(UsageError, match="no such file"):
        schemas.load_schema(str(tmp_path / "missing.json"))
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="FIFO"):
        schemas.load_schema(str(fifo))
    fifo_module = tmp_path / "fifo_models.py"
    os.mkfifo(fifo_module)
    with pytest.raises(UsageError, match="FIFO"):
        schemas.load_schema(f"{fifo_module}:Model")


# ---- whatever the schema or the answer, result handling cannot crash the job --------------------------

BROKEN_SCHEMAS = {
    "dangling-ref": {"type": "object", "properties": {"label": {"$ref": "#/$defs/missing"}}},
    "remote-ref": {"type": "object", "properties": {"label": {"$ref": "https://example.com/label.json"}}},
    "root-self-ref": {"$ref": "#"},
    "invalid-schema": {"type": "object", "properties": {"label": {"type": "strin"}}},
    "not-a-schema": 42,
}


@pytest.mark.parametrize(
    "answer", ['{"label": "positive"}', '{"label": ' * 600 + "1" + "}" * 600, "[" * 5000, "", None]
)
@pytest.mark.parametrize("broken", sorted(BROKEN_SCHEMAS))
def test_checking_an_answer_never_raises(broken: str, answer: str | None) -> None:
    problem = schemas.OutputChecker(BROKEN_SCHEMAS[broken]).problem(answer)
    assert problem is not None and "\n" not in problem.message and len(problem.message) <= 300
    if answer is not None and answer.startswith('{"label": "'):  # JSON the schema could not check
        assert (problem.code, problem.retryable) == (schemas.SCHEMA_ERROR, False)
        assert "schema" in problem.message
    assert schemas.validate_output(answer, BROKEN_SCHEMAS[broken]) == problem.message


def _record_schema(home: Path, job_id: str, schema: object) -> None:
    """Rewrite the job's recorded schema, as a job submitted before load-time checks would hold it."""
    with sqlite3.connect(home / "llmbulk.db") as db:
        (spec_json,) = db.execute("SELECT spec_json FROM jobs WHERE id = ?", (job_id,)).fetchone()
        spec = json.loads(spec_json)
        spec["params"][SCHEMA_PARAM] = schema
        db.execute("UPDATE jobs SET spec_json = ? WHERE id = ?", (json.dumps(spec), job_id))
    db.close()


@pytest.mark.parametrize(
    ("provider", "broken"),
    # (a recorded "schema" that is not even an object is left to the unit test: merge.py reads its properties)
    [("openai", name) for name in sorted(BROKEN_SCHEMAS) if name != "not-a-schema"]
    + [("anthropic", "dangling-ref"), ("gemini", "root-self-ref")],
)
def test_a_recorded_schema_that_cannot_check_answers_fails_items_permanently_never_the_collect(
    provider: str, broken: str, llmbulk: Callable[..., Outcome], home: Path, schema_file: Path
) -> None:
    submitted = llmbulk(
        "submit", str(QUICKSTART), "-p", provider, "-m", MODELS[provider], "--prompt", "Review: {{ text }}",
        "--schema", str(schema_file), "--emulate", "--json",
    )  # fmt: skip
    assert submitted.exit_code == 0, submitted.stderr
    job_id = submitted.json()["job_id"]
    _record_schema(home, job_id, BROKEN_SCHEMAS[broken])
    for _ in range(2):  # and a second collect (or a run) finds nothing left to do, not a crash
        collected = llmbulk("collect", job_id, "--out", "out.csv", "--json")
        assert collected.exit_code == 4, collected.stderr
        assert collected.json()["counts"] == {"failed_permanent": 50}
    ran = llmbulk("run", job_id, "--out", "out.csv", "--json")
    assert ran.exit_code == 4 and ran.json()["counts"] == {"failed_permanent": 50}, ran.stderr
    with sqlite3.connect(home / "llmbulk.db") as db:
        rows = db.execute("SELECT error_code, error_message FROM attempts WHERE job_id = ?", (job_id,)).fetchall()
    db.close()
    assert len(rows) == 50 and {code for code, _ in rows} == {schemas.SCHEMA_ERROR}
    assert all("schema" in message for _, message in rows)
