"""Whether a JSON Schema can be used at all, before anything is sent: valid against its meta-schema,
every `$ref` local and resolving, and some finite answer able to match it.

Provider-specific rules live in `schema_rules`; `schemas.check_schema` runs both. Errors are one-line
`UsageError`s naming the schema and a JSON pointer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

from llmbulk.errors import UsageError

# Keywords whose values are data, not subschemas: a {"$ref": …} inside them is not a reference.
_DATA_KEYWORDS = frozenset({"enum", "const", "examples", "default"})
# Keywords whose values map names to subschemas (a property may well be called "enum").
_MAP_KEYWORDS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
_STEP_LIMIT = 200_000  # the finite-answer search gives up (and accepts) past this many steps
_MESSAGE_LIMIT = 200


def check_meta(schema: dict[str, Any], label: str) -> None:
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
        raise UsageError(f"{label}: not a valid JSON Schema at {pointer(error.absolute_path)}: {clip(error.message)}")


def pointer(parts: Any) -> str:
    """A JSON pointer ('/properties/a~1b') from path parts; '(root)' for the root."""
    escaped = [str(p).replace("~", "~0").replace("/", "~1") for p in parts]
    return "/" + "/".join(escaped) if escaped else "(root)"


class Refs:
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
                    f"{self.label}: {keyword} at {pointer((*at, keyword))} is not supported",
                    hint="use $ref to #/$defs/Name",
                )
        if at and "$id" in node:
            raise UsageError(
                f"{self.label}: $id at {pointer((*at, '$id'))} is not supported inside the schema",
                hint="keep one schema document and refer into it with #/$defs/Name",
            )
        anchor = node.get("$anchor")
        if isinstance(anchor, str):
            self.anchors[anchor] = at
        ref = node.get("$ref")
        if isinstance(ref, str):
            self.refs.append((at, ref))

    def _resolve(self, at: tuple[str, ...], ref: str) -> tuple[str, ...]:
        where = pointer((*at, "$ref"))
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


class Finite:
    """Whether some finite answer can match a schema; else where it cannot.

    A minimal finite answer never passes through the same `$ref` twice on one path, so a `$ref`
    met again on the current path counts as "no answer this way". Conservative: anything not
    understood counts as satisfiable, so a schema is refused only when provably unanswerable.
    """

    def __init__(self, refs: Refs) -> None:
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
                f"$ref at {pointer((*at, '$ref'))} leads back to itself with no way to stop, so no finite answer "
                'matches — make that property optional, nullable (anyOf with {"type": "null"}) or a list'
            )
        return f"no answer can match the schema: it requires {pointer(at)}, which matches nothing"

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


def one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def clip(text: str) -> str:
    """One short line; a NUL (which PostgreSQL text cannot hold) shown as \\0."""
    text = " ".join(text.replace("\x00", "\\0").split())
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"
