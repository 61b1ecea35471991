"""The two consoles and the primitives every renderer prints through: JSON, errors, warnings, grids.

Human output goes through rich on `out` (stdout) or `err` (stderr); `--json` output is plain JSON
on stdout. The consoles are built once, at first import, with the terminal width of that moment.
"""

from __future__ import annotations

import sys
from typing import Any

import orjson
from rich.console import Console
from rich.text import Text

from llmbulk.listing import Grid

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")


def error(message: str) -> None:
    # Messages carry user data (file names, column names), so they are never parsed as markup.
    err.print(Text.assemble(("error:", "bold red"), " ", message), highlight=False)


def warning(message: str) -> None:
    """A problem that does not stop the command (a hook that could not be reached), on one line."""
    err.print(Text.assemble(("warning:", "yellow"), " ", message), highlight=False)


def print_grid(grid: Grid, console: Console) -> None:
    """A compact table: one line per row, at most the console's width, the header in bold."""
    lines = grid.lines(console.width)
    console.print(Text(lines[0], style="bold"))
    for line in lines[1:]:
        console.print(line, markup=False, highlight=False)


def ago(now: float, when: float | None) -> str:
    """How long ago `when` was, in the largest whole unit that reads well (`45s`, `12m`, `3h`)."""
    if not when:
        return ""
    seconds = max(0, int(now - when))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"
