"""Attachments in a rendered prompt: the template's `attach()` and the `--attach` columns → a parts list.

`attach(value)` resolves the value (sources.py), remembers the part and leaves a marker in the rendered
text; `content` cuts the text at the markers, so each attachment sits where the template placed it, and
appends the `--attach` columns' files after the text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmbulk.attachments.sources import resolve

_MARK = "\0llmbulk-attachment:{}\0"
_MARKS = re.compile("\0llmbulk-attachment:(\\d+)\0")
ATTACH_FUNCTION = "attach"
ROW_VARIABLE = "row"  # `{{ attach(row.photo) }}`: the row as one value, where no column has that name


def uses_attachments(prompt: str | None, columns: Sequence[str]) -> bool:
    """Whether a job attaches files (so a folder input is read as images and PDFs, not text)."""
    return bool(columns) or (prompt is not None and f"{ATTACH_FUNCTION}(" in prompt)


def base_folder(path: Path, folder_input: bool) -> Path:
    """Where relative attachment paths start: the input folder itself, or the input file's folder."""
    return path.resolve() if folder_input else path.resolve().parent


class Attacher:
    """The `attach()` of one table's renders; `start` before each row's render, `content` after it."""

    def __init__(self, base: Path, table: str, columns: Sequence[str]) -> None:
        self.base, self.table, self.columns = base, table, tuple(columns)
        self.parts: list[dict[str, Any]] = []
        self.row: dict[str, Any] = {}
        self.index = 0

    def start(self, index: int, row: dict[str, Any]) -> None:
        self.index, self.row, self.parts = index, row, []

    def __call__(self, value: Any) -> str:
        self.parts.append(resolve(value, self.base, self._where()))
        return _MARK.format(len(self.parts) - 1)

    def content(self, text: str) -> str | list[dict[str, Any]]:
        """The user message's content: the text as is when nothing is attached, else its parts in order."""
        for column in self.columns:
            self.parts.append(resolve(self.row.get(column), self.base, self._where(column)))
        if not self.parts:
            return text
        out: list[dict[str, Any]] = []
        placed: set[int] = set()
        pieces = _MARKS.split(text)
        for n, piece in enumerate(pieces):
            if n % 2:
                placed.add(int(piece))
                out.append(self.parts[int(piece)])
            elif piece.strip():  # providers refuse whitespace-only text blocks
                out.append({"type": "text", "text": piece})
        out.extend(p for n, p in enumerate(self.parts) if n not in placed)
        return out

    def _where(self, column: str | None = None) -> str:
        where = f"{self.table}: row {self.index + 1}"
        return where if column is None else f"{where}: column {column!r}"
