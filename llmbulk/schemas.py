"""Structured outputs: load a JSON Schema (file or Pydantic model), shape it per provider, validate results.

`--schema` takes `schema.json`, `path/to/models.py:ClassName` or `package.module:ClassName`.
Each result is parsed and validated; a failure is a retryable item failure that keeps the message.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
from pathlib import Path
from typing import Any

import orjson

from llmbulk.errors import UsageError

PARAM = "json_schema"  # the task parameter adapters read


def load_schema(spec: str) -> dict[str, Any]:
    """A JSON Schema from a file or a Pydantic model reference."""
    path = Path(spec)
    if path.suffix == ".json" and path.exists():
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise UsageError(f"--schema {spec}: not a readable JSON file ({exc})") from exc
    elif ":" in spec:
        schema = _pydantic_schema(spec)
    else:
        raise UsageError(f"--schema {spec!r} is neither a .json file nor module:Class", hint="e.g. models.py:Review")
    if not isinstance(schema, dict) or schema.get("type", "object") != "object":
        raise UsageError(f"--schema {spec}: the top level must be an object schema")
    return schema


def _pydantic_schema(spec: str) -> dict[str, Any]:
    module_ref, _, class_name = spec.rpartition(":")
    try:
        if module_ref.endswith(".py"):
            location = Path(module_ref)
            loader_spec = importlib.util.spec_from_file_location(location.stem, location)
            if loader_spec is None or loader_spec.loader is None or not location.exists():
                raise UsageError(f"--schema: cannot load {module_ref}")
            module = importlib.util.module_from_spec(loader_spec)
            loader_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_ref)
        model = getattr(module, class_name)
        return dict(model.model_json_schema())
    except UsageError:
        raise
    except Exception as exc:
        raise UsageError(
            f"--schema {spec}: {exc.__class__.__name__}: {exc}", hint="module:Class of a Pydantic model"
        ) from exc


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema as OpenAI strict mode needs it: every object closed and all its properties required."""
    result = copy.deepcopy(schema)

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" or "properties" in node:
                node.setdefault("properties", {})
                node["additionalProperties"] = False
                node["required"] = list(node["properties"])
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(result)
    return result


def validate_output(text: str | None, schema: dict[str, Any]) -> str | None:
    """None when `text` is JSON valid for the schema, else the reason."""
    import jsonschema

    if text is None:
        return "empty output"
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return f"output is not JSON: {exc.msg}"
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        return f"output does not match the schema at {where}: {exc.message}"
    return None


def flatten(output: str | None, fields: list[str]) -> dict[str, Any]:
    """`out.<field>` columns from a JSON output (lists and objects stay JSON text)."""
    values: dict[str, Any] = dict.fromkeys((f"out.{f}" for f in fields), None)
    if not output:
        return values
    try:
        data = orjson.loads(output)
    except orjson.JSONDecodeError:
        return values
    if isinstance(data, dict):
        for field in fields:
            value = data.get(field)
            values[f"out.{field}"] = orjson.dumps(value).decode() if isinstance(value, dict | list) else value
    return values
