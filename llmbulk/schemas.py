"""Structured outputs: load a JSON Schema (file or Pydantic model), shape it per provider, validate results.

`--schema` takes `schema.json`, `path/to/models.py:ClassName` or `package.module:ClassName`.
The schema is checked completely when it is loaded, before anything is sent: a valid JSON Schema,
every `$ref` local and resolvable, some finite answer possible (no self-reference without a way
to stop), and the provider's own structured-output rules where they are certain.

Each result is parsed and validated: an answer that does not match is a retryable item failure
that keeps the message; an answer that cannot be checked at all (whatever the schema or answer)
is that item's permanent failure, never an exception out of collect.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import orjson

from llmbulk.errors import UsageError

SCHEMA_ERROR = "schema_error"  # error code of an answer that could not be checked against the schema
INVALID_OUTPUT = "invalid_output"  # error code of an answer that does not match the schema
# Keywords whose values are data, not subschemas: a {"$ref": …} inside them is not a reference.
_DATA_KEYWORDS = frozenset({"enum", "const", "examples", "default"})
# Keywords whose values map names to subschemas (a property may well be called "enum").
_MAP_KEYWORDS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
_STEP_LIMIT = 200_000  # the finite-answer search gives up (and accepts) past this many steps
_MESSAGE_LIMIT = 200


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
            f"--schema {spec}: {exc.__class__.__name__}: {_one_line(exc)}", hint="module:Class of a Pydantic model"
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
        _check_meta(schema, label)
        refs = _Refs(schema, label)
        blame = _Finite(refs).blame(schema)
        if blame is not None:
            raise UsageError(f"{label}: {blame}")
        if provider is not None:
            _check_provider(schema, label, provider)
    except RecursionError as exc:
        raise UsageError(f"{label}: the schema is nested too deeply to check", hint="flatten it") from exc


def _check_meta(schema: dict[str, Any], label: str) -> None:
    """The schema against its JSON Schema meta-schema (draft 2020-12 unless `$schema` names another)."""
    import jsonschema
    from jsonschema import validators

    dialect = schema.get("$schema")
    if dialect is not None and (not isinstance(dialect, str) or validators.validator_for(schema, default=None) is None):
        raise UsageError(
            f"{label}: unknown $schema {dialect!r} at /$schema",
            hint="drop it, or use https://json-schema.org/draft/2020-12/schema",
        )
    cls = validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    error = jsonschema.exceptions.best_match(cls(cls.META_SCHEMA).iter_errors(schema))
    if error is not None:
        raise UsageError(f"{label}: not a valid JSON Schema at {_pointer(error.absolute_path)}: {_clip(error.message)}")


def _pointer(parts: Any) -> str:
    """A JSON pointer ('/properties/a~1b') from path parts; '(root)' for the root."""
    escaped = [str(p).replace("~", "~0").replace("/", "~1") for p in parts]
    return "/" + "/".join(escaped) if escaped else "(root)"


class _Refs:
    """Every `$ref` of a schema, each checked to be local and to resolve; anchors by name."""

    def __init__(self, root: dict[str, Any], label: str) -> None:
        self.root = root
        self.label = label
        base = root.get("$id")
        self.base = base.split("#", 1)[0] if isinstance(base, str) else None
        self.anchors: dict[str, tuple[str, ...]] = {}
        self.refs: list[tuple[tuple[str, ...], str]] = []  # (where the $ref is, its value)
        for at, node in _subschemas(root, ()):
            self._collect(at, node)
        self.targets = {ref: self._resolve(at, ref) for at, ref in self.refs}

    def _collect(self, at: tuple[str, ...], node: dict[str, Any]) -> None:
        for keyword in ("$dynamicRef", "$recursiveRef"):
            if keyword in node:
                raise UsageError(
                    f"{self.label}: {keyword} at {_pointer((*at, keyword))} is not supported",
                    hint="use $ref to #/$defs/Name",
                )
        if at and "$id" in node:
            raise UsageError(
                f"{self.label}: $id at {_pointer((*at, '$id'))} is not supported inside the schema",
                hint="keep one schema document and refer into it with #/$defs/Name",
            )
        anchor = node.get("$anchor")
        if isinstance(anchor, str):
            self.anchors[anchor] = at
        ref = node.get("$ref")
        if isinstance(ref, str):
            self.refs.append((at, ref))

    def _resolve(self, at: tuple[str, ...], ref: str) -> tuple[str, ...]:
        where = _pointer((*at, "$ref"))
        document, _, fragment = ref.partition("#")
        if document and document != self.base:
            raise UsageError(
                f"{self.label}: $ref {ref!r} at {where} points outside the schema (remote references are not "
                "fetched and no provider takes them)",
                hint="copy the referenced schema into $defs and use #/$defs/Name",
            )
        fragment = unquote(fragment)
        if fragment and not fragment.startswith("/"):
            if fragment not in self.anchors:
                raise UsageError(f"{self.label}: $ref {ref!r} at {where} names no $anchor in the schema")
            return self.anchors[fragment]
        node: Any = self.root
        parts: tuple[str, ...] = ()
        for token in fragment.split("/")[1:] if fragment else ():
            key = token.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            else:
                raise UsageError(
                    f"{self.label}: $ref {ref!r} at {where} points to nothing",
                    hint="define it under $defs, or fix the reference",
                )
            parts = (*parts, key)
        if not isinstance(node, dict | bool):
            raise UsageError(f"{self.label}: $ref {ref!r} at {where} points to a JSON value that is not a schema")
        return parts

    def node(self, parts: tuple[str, ...]) -> Any:
        node: Any = self.root
        for key in parts:
            node = node[int(key)] if isinstance(node, list) else node[key]
        return node


def _subschemas(node: Any, at: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """Every subschema object with its path; data keywords (enum, const, …) are not descended into."""
    stack: list[tuple[tuple[str, ...], Any, bool]] = [(at, node, False)]  # (path, value, value is a name map)
    while stack:
        where, value, names = stack.pop()
        if isinstance(value, dict) and names:
            stack.extend(((*where, k), v, False) for k, v in value.items())
        elif isinstance(value, dict):
            yield where, value
            stack.extend(((*where, k), v, k in _MAP_KEYWORDS) for k, v in value.items() if k not in _DATA_KEYWORDS)
        elif isinstance(value, list):
            stack.extend(((*where, str(i)), v, False) for i, v in enumerate(value))


class _Finite:
    """Whether some finite answer can match a schema; else where it cannot.

    A minimal finite answer never passes through the same `$ref` twice on one path, so a `$ref`
    met again on the current path counts as "no answer this way". Conservative: anything not
    understood counts as satisfiable, so a schema is refused only when provably unanswerable.
    """

    def __init__(self, refs: _Refs) -> None:
        self.refs = refs
        self.known_finite: set[tuple[str, ...]] = set()
        self.steps = 0

    def blame(self, root: dict[str, Any]) -> str | None:
        found = self._visit(root, (), frozenset({()}))
        if found is None or self.steps > _STEP_LIMIT:
            return None
        kind, at = found
        if kind == "cycle":
            return (
                f"$ref at {_pointer((*at, '$ref'))} leads back to itself with no way to stop, so no finite answer "
                'matches — make that property optional, nullable (anyOf with {"type": "null"}) or a list'
            )
        return f"no answer can match the schema: it requires {_pointer(at)}, which matches nothing"

    def _visit(
        self, node: Any, at: tuple[str, ...], path: frozenset[tuple[str, ...]]
    ) -> tuple[str, tuple[str, ...]] | None:
        self.steps += 1
        if node is False:
            return "false", at
        if not isinstance(node, dict) or self.steps > _STEP_LIMIT:
            return None
        ref = node.get("$ref")
        target = self.refs.targets.get(ref) if isinstance(ref, str) else None
        if target is not None:
            if target in path:
                return "cycle", at
            if target not in self.known_finite:
                found = self._visit(self.refs.node(target), target, path | {target})
                if found is not None:
                    return found
                self.known_finite.add(target)
        for i, sub in enumerate(_list(node.get("allOf"))):
            found = self._visit(sub, (*at, "allOf", str(i)), path)
            if found is not None:
                return found
        for keyword in ("anyOf", "oneOf"):
            branches = _list(node.get(keyword))
            if branches:
                found = self._first_all_blamed(
                    self._visit(sub, (*at, keyword, str(i)), path) for i, sub in enumerate(branches)
                )
                if found is not None:
                    return found
        return self._typed(node, at, path)

    def _typed(
        self, node: dict[str, Any], at: tuple[str, ...], path: frozenset[tuple[str, ...]]
    ) -> tuple[str, tuple[str, ...]] | None:
        kind = node.get("type")
        kinds = {kind} if isinstance(kind, str) else set(kind) if isinstance(kind, list) else None
        if kinds is None or kinds - {"object", "array"} or "enum" in node or "const" in node:
            return None  # a scalar or a listed constant answers it
        candidates = []
        if "object" in kinds:
            candidates.append(self._object(node, at, path))
        if "array" in kinds:
            candidates.append(self._array(node, at, path))
        return self._first_all_blamed(iter(candidates))

    def _object(
        self, node: dict[str, Any], at: tuple[str, ...], path: frozenset[tuple[str, ...]]
    ) -> tuple[str, tuple[str, ...]] | None:
        properties = node.get("properties")
        if not isinstance(properties, dict):
            return None
        for name in _list(node.get("required")):
            if isinstance(name, str) and name in properties:
                found = self._visit(properties[name], (*at, "properties", name), path)
                if found is not None:
                    return found
        return None

    def _array(
        self, node: dict[str, Any], at: tuple[str, ...], path: frozenset[tuple[str, ...]]
    ) -> tuple[str, tuple[str, ...]] | None:
        least = node.get("minItems")
        if type(least) is not int or least < 1:
            return None  # the empty list answers it
        prefix = _list(node.get("prefixItems"))
        for i, sub in enumerate(prefix[:least]):
            found = self._visit(sub, (*at, "prefixItems", str(i)), path)
            if found is not None:
                return found
        items = node.get("items")
        if least > len(prefix) and isinstance(items, dict | bool):
            return self._visit(items, (*at, "items"), path)
        return None

    @staticmethod
    def _first_all_blamed(
        results: Iterator[tuple[str, tuple[str, ...]] | None],
    ) -> tuple[str, tuple[str, ...]] | None:
        """None if any alternative may be answered, else the first alternative's blame."""
        first = None
        for found in results:
            if found is None:
                return None
            first = first or found
        return first


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# ---- the providers' own rules ----------------------------------------------------------------------


def _check_provider(schema: dict[str, Any], label: str, provider: str) -> None:
    """The provider's own rules for structured outputs, named as data on its limits."""
    from llmbulk import providers

    for rule in providers.limits(provider).schema_checks:
        _PROVIDER_RULES[rule](schema, label, provider)


def _strict_answerable(schema: dict[str, Any], label: str, provider: str) -> None:
    """OpenAI strict mode makes every property required: some finite answer must still match."""
    from llmbulk import providers

    closed = providers.sent_schema(provider, schema)
    blame = _Finite(_Refs(closed, label)).blame(closed)
    if blame is not None:
        raise UsageError(f"{label}: OpenAI strict mode makes every property required, and then {blame}")


def _sent_form_resolves(schema: dict[str, Any], label: str, provider: str) -> None:
    """Anthropic: what the SDK's `transform_schema` (which the adapter sends) makes of it still resolves."""
    from llmbulk import providers

    try:
        transformed = providers.sent_schema(provider, schema)
    except Exception as exc:  # the SDK's own checks (and its assertions) on an unsupported shape
        reason = _one_line(exc) or exc.__class__.__name__
        raise UsageError(
            f"{label}: Anthropic structured outputs cannot take this schema ({_clip(reason)})",
            hint="give every node one type (or anyOf/enum/const)",
        ) from exc
    try:
        _Refs(transformed, label)
    except UsageError as exc:
        raise UsageError(
            f"{label}: for Anthropic structured outputs, {exc.message.removeprefix(label + ': ')}",
            hint="keep referenced schemas under the top-level $defs",
        ) from None


def _no_recursion(schema: dict[str, Any], label: str, provider: str) -> None:
    cycle = _ref_cycle(_Refs(schema, label))
    if cycle is not None:
        raise UsageError(
            f"{label}: $ref at {_pointer((*cycle, '$ref'))} makes the schema recursive, which Anthropic structured "
            "outputs do not support",
            hint="unroll the recursion to a fixed depth",
        )


_PROVIDER_RULES = {
    "strict_answerable": _strict_answerable,
    "sent_form_resolves": _sent_form_resolves,
    "no_recursion": _no_recursion,
}


def _ref_cycle(refs: _Refs) -> tuple[str, ...] | None:
    """Where a `$ref` closes a recursion (the schema reaches itself through references), or None.

    The graph: from the root and every referenced schema to the targets of the references
    inside it; a recursion is a cycle in it.
    """
    nodes = {(), *refs.targets.values()}
    edges = {n: [(at, refs.targets[ref]) for at, ref in refs.refs if at[: len(n)] == n] for n in nodes}
    state: dict[tuple[str, ...], bool] = {}  # False: on the current path; True: explored, no cycle

    def visit(node: tuple[str, ...]) -> tuple[str, ...] | None:
        state[node] = False
        for at, target in edges[node]:
            if state.get(target) is False:
                return at
            if target not in state:
                found = visit(target)
                if found is not None:
                    return found
        state[node] = True
        return None

    return visit(())


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
            self._broken = f"the job's schema cannot check answers ({exc.__class__.__name__}: {_clip(_one_line(exc))})"

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
            return OutputProblem(SCHEMA_ERROR, message + f"{_clip(_one_line(exc))})", False)
        if error is None:
            return None
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return OutputProblem(
            INVALID_OUTPUT, f"output does not match the schema at {where}: {_clip(error.message)}", True
        )


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _clip(text: str) -> str:
    """One short line; a NUL (which PostgreSQL text cannot hold) shown as \\0."""
    text = " ".join(text.replace("\x00", "\\0").split())
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"


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
