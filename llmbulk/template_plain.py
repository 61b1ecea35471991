"""A plain template — literal text and bare `{{ column }}` only — rendered without Jinja's runtime.

Most prompts are of this kind, and for them Jinja's per-render context (built, then thrown away,
for every row) costs more than the rest of the row's packing. The renderer here joins the same
pieces Jinja would: the literal text as parsed (newlines already normalised) and `str(value)` of
each column. A row that lacks a column returns None, so the caller renders that row with Jinja
and gets Jinja's own answer (a global of that name, or its undefined-variable error).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Render = Callable[[Mapping[str, Any]], "str | None"]


def plain_renderer(parsed: Any) -> Render | None:
    """A renderer equal to Jinja's for `parsed` (a `jinja2.nodes.Template`), or None if not plain."""
    from jinja2 import nodes

    pieces: list[tuple[bool, str]] = []  # (is a column, literal text or column name)
    for statement in parsed.body:
        if not isinstance(statement, nodes.Output):
            return None
        for node in statement.nodes:
            if isinstance(node, nodes.TemplateData):
                pieces.append((False, node.data))
            elif isinstance(node, nodes.Name) and node.ctx == "load":
                pieces.append((True, node.name))
            else:
                return None
    if len(pieces) == 2 and not pieces[0][0] and pieces[1][0]:  # the usual shape: "text {{ column }}"
        return _text_then_column(pieces[0][1], pieces[1][1])
    return _joined(pieces)


def _text_then_column(text: str, column: str) -> Render:
    def render(row: Mapping[str, Any]) -> str | None:
        value = row.get(column, _MISSING)
        if value is _MISSING:
            return None
        return text + (value if type(value) is str else str(value))

    return render


def _joined(pieces: list[tuple[bool, str]]) -> Render:
    def render(row: Mapping[str, Any]) -> str | None:
        out = []
        for is_column, piece in pieces:
            if not is_column:
                out.append(piece)
                continue
            value = row.get(piece, _MISSING)
            if value is _MISSING:
                return None
            out.append(str(value))
        return "".join(out)

    return render


_MISSING: Any = object()
