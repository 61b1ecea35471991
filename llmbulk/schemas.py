"""Structured outputs: load a JSON Schema (file or Pydantic model), shape it per provider, validate results.

`--schema` takes `schema.json`, `path/to/models.py:ClassName` or `package.module:ClassName`.
The schema is checked completely when it is loaded, before anything is sent: a valid JSON Schema,
every `$ref` local and resolvable, some finite answer possible (no self-reference without a way
to stop), and the provider's own structured-output rules where they are certain.

Each result is parsed and validated: an answer that does not match is a retryable item failure
that keeps the message; an answer that cannot be checked at all (whatever the schema or answer)
is that item's permanent failure, never an exception out of collect.

This module owns loading, the public checks and answer validation; what makes a schema usable at all
is in `schema_checks`, and each provider's own rules in `schema_rules`.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from llmbulk.errors import UsageError
from llmbulk.schema_checks import Finite, Refs, check_meta, clip, one_line
from llmbulk.schema_rules import check_provider

SCHEMA_ERROR = "schema_error"  # error code of an answer that could not be checked against the schema
INVALID_OUTPUT = "invalid_output"  # error code of an answer that does not match the schema


def load_schema(spec: str, provider: str | None = None) -> dict[str, Any]:
    """A JSON Schema from a file or a Pydantic model reference, checked completely (see `check_schema`).

    With `provider`, that provider's own structured-output rules are checked too.
    """
    label = f"--schema {spec}"
    path = Path(spec)
    if path.suffix.lower() == ".json":
        schema = _read_json(path, label)
    elif ":" in spec:
        schema = _pydantic_schema(spec)
    else:
        raise UsageError(f"--schema {spec!r} is neither a .json file nor module:Class", hint="e.g. models.py:Review")
    check_schema(schema, label, provider)
    return schema


def _read_json(path: Path, label: str) -> Any:
    from llmbulk.tables import not_regular_file

    if not path.exists():
        raise UsageError(f"{label}: no such file", hint="check the path")
    problem = not_regular_file(path)
    if problem is not None:  # a FIFO would block the read, /dev/zero never end it
        raise UsageError(f"{label}: it {problem}", hint="pass a JSON Schema file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{label}: cannot read it ({exc.strerror})") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{label}: not valid UTF-8 (byte {exc.start})", hint="re-save it as UTF-8") from exc
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if "depth" in exc.msg:  # orjson stops at 1,024 nested levels
            raise UsageError(f"{label}: the schema is nested too deeply to check", hint="flatten it") from exc
        raise UsageError(f"{label}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from exc


def _pydantic_schema(spec: str) -> dict[str, Any]:
    module_ref, _, class_name = spec.rpartition(":")
    try:
        if module_ref.endswith(".py"):
            from llmbulk.tables import not_regular_file

            location = Path(module_ref)
            problem = not_regular_file(location)
            if problem is not None:
                raise UsageError(f"--schema {spec}: {module_ref} {problem}")
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
            f"--schema {spec}: {exc.__class__.__name__}: {one_line(exc)}", hint="module:Class of a Pydantic model"
        ) from exc


# ---- checking a schema before anything is sent ------------------------------------------------------


def check_schema(schema: Any, label: str = "the schema", provider: str | None = None) -> None:
    """Raise a one-line UsageError naming `label` and a JSON pointer unless `schema` is usable.

    Usable: an object schema, valid as a JSON Schema, whose every `$ref` is local and resolves,
    that some finite answer can match, and (with `provider`) that the provider's structured
    outputs can take.
    """
    if not isinstance(schema, dict) or schema.get("type", "object") != "object":
        raise UsageError(f"{label}: the top level must be an object schema")
    try:
        check_meta(schema, label)
        blame = Finite(Refs(schema, label)).blame(schema)
        if blame is not None:
            raise UsageError(f"{label}: {blame}")
        if provider is not None:
            check_provider(schema, label, provider)
    except RecursionError as exc:
        raise UsageError(f"{label}: the schema is nested too deeply to check", hint="flatten it") from exc


# ---- validating answers ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutputProblem:
    """Why an answer fails: `retryable` when the answer does not match (a new answer may),
    permanent when it could not be checked at all."""

    code: str
    message: str
    retryable: bool


class OutputChecker:
    """Validates answers against one schema, compiled once; never raises."""

    def __init__(self, schema: Any) -> None:
        self._validator: Any = None
        self._broken: str | None = None
        try:
            import jsonschema
            from jsonschema import validators

            cls = validators.validator_for(schema, default=jsonschema.Draft202012Validator)
            cls.check_schema(schema)
            self._validator = cls(schema)
        except Exception as exc:  # a schema recorded before load-time checks, or one they missed
            self._broken = f"the job's schema cannot check answers ({exc.__class__.__name__}: {clip(one_line(exc))})"

    def problem(self, text: str | None) -> OutputProblem | None:
        """None when `text` is JSON valid for the schema."""
        if text is None:
            return OutputProblem(INVALID_OUTPUT, "empty output", True)
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            return OutputProblem(INVALID_OUTPUT, f"output is not JSON: {exc.msg}", True)
        if self._broken is not None:
            return OutputProblem(SCHEMA_ERROR, self._broken, False)
        try:
            import jsonschema

            error = jsonschema.exceptions.best_match(self._validator.iter_errors(value))
        except Exception as exc:  # e.g. an unresolvable $ref, unbounded recursion, a pathological answer
            message = f"the answer could not be checked against the schema ({exc.__class__.__name__}: "
            return OutputProblem(SCHEMA_ERROR, message + f"{clip(one_line(exc))})", False)
        if error is None:
            return None
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return OutputProblem(
            INVALID_OUTPUT, f"output does not match the schema at {where}: {clip(error.message)}", True
        )


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


def validate_output(text: str | None, schema: Any) -> str | None:
    """None when `text` is JSON valid for the schema, else the reason (never raises)."""
    found = OutputChecker(schema).problem(text)
    return None if found is None else found.message


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
