"""Structured outputs end to end on the emulator, per provider: native schema form on the wire, valid
results flattened into `out.<field>` columns, invalid JSON retried and then dead with the message kept.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from conftest import QUICKSTART, Outcome

from llmbulk import schemas
from llmbulk.errors import UsageError

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
        "anthropic": lambda: line["params"]["tool_choice"]["type"] == "tool",
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
