"""Tables as plain text that fits a width, and as csv / json / jsonl rows (`--format`).

A compact table keeps one line per row: it drops its optional columns (last listed first) until
the rest fit, then shortens its one elastic column with `…`. Columns the user copies from (job
ids, batch ids, item keys) are never optional nor elastic, so they always appear whole.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

GAP = "  "


@dataclass
class Grid:
    """Columns by header; `optional` may be dropped (last first), `elastic` shortened, `right` right-aligned."""

    headers: Sequence[str]
    rows: list[Sequence[str]] = field(default_factory=list)
    optional: Sequence[str] = ()
    elastic: str | None = None
    right: Sequence[str] = ()

    def lines(self, width: int) -> list[str]:
        """The header and one line per row, each at most `width` characters where the kept columns allow."""
        keep = list(range(len(self.headers)))
        widths = [max([len(h)] + [len(r[i]) for r in self.rows]) for i, h in enumerate(self.headers)]
        for name in reversed(self.optional):
            if _total(widths, keep) <= width:
                break
            keep.remove(self.headers.index(name))
        if self.elastic is not None and _total(widths, keep) > width:
            i = self.headers.index(self.elastic)
            widths[i] = max(len(self.elastic), widths[i] - (_total(widths, keep) - width))
        return [self._line(cells, widths, keep) for cells in (self.headers, *self.rows)]

    def _line(self, cells: Sequence[str], widths: list[int], keep: list[int]) -> str:
        parts = []
        for i in keep:
            cell = cells[i] if len(cells[i]) <= widths[i] else cells[i][: widths[i] - 1] + "…"
            parts.append(cell.rjust(widths[i]) if self.headers[i] in self.right else cell.ljust(widths[i]))
        return GAP.join(parts).rstrip()


def _total(widths: list[int], keep: list[int]) -> int:
    return sum(widths[i] for i in keep) + len(GAP) * (len(keep) - 1)


def write_rows(
    kind: str, rows: list[dict[str, Any]], columns: Sequence[str] | None = None, stream: IO[str] | None = None
) -> None:
    """Rows as `csv` (a header line, then one line per row), `jsonl` (one object per line) or `json` (a list)."""
    out = stream or sys.stdout
    if kind == "json":
        out.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")
    elif kind == "jsonl":
        for row in rows:
            out.write(orjson.dumps(row, default=str).decode() + "\n")
    elif kind == "csv":
        writer = csv.DictWriter(
            out, list(columns or (rows[0] if rows else ())), extrasaction="ignore", lineterminator="\n"
        )
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else _cell(v) for k, v in row.items()})
    else:  # pragma: no cover - the options refuse other names first
        raise ValueError(kind)


def _cell(value: Any) -> Any:
    return orjson.dumps(value).decode() if isinstance(value, dict | list) else value
