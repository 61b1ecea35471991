"""Input rows + each item's current outcome → output rows, in input order, every row once.

Streams the input table and the items (ordered by row) side by side, so memory stays flat;
the output file appears only when complete (tmp + rename). Also where outputs go: the output
path and format a command resolves, checked before anything is sent.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from llmbulk import costs, restore, schemas
from llmbulk.crashpoints import crashpoint
from llmbulk.errors import OutputError, StateError, UsageError
from llmbulk.store import Store
from llmbulk.store.schema import Job
from llmbulk.tables import FORMATS, TableWriter, check_format_matches, detect_format

RESULT_COLUMNS = (
    "output",
    "status",
    "error",
    "attempts",
    "finish_reason",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "reused_from",
)


@dataclass(frozen=True, slots=True)
class MergeSummary:
    """What one output write produced."""

    path: Path | None
    rows: int
    by_status: dict[str, int]


def result_names(input_columns: list[str]) -> dict[str, str]:
    """Our column names, prefixed with `llmbulk_` where the input already uses the name."""
    taken = set(input_columns)
    return {c: (f"llmbulk_{c}" if c in taken else c) for c in RESULT_COLUMNS}


SETTLED = frozenset({"succeeded", "failed_permanent", "dead"})


@dataclass(slots=True)
class _Merged:
    """The job's output columns and its merged rows, streamed in input order."""

    columns: list[str]
    status_column: str
    rows: Iterator[tuple[int, list[dict[str, Any]]]]


def _merged(store: Store, job: Job, explode: str | None) -> _Merged:
    table = restore.input_table(job)
    columns = [c for c in table.columns() if c != "content"] if table.format == "files" else table.columns()
    names = result_names(columns)
    schema = job.spec.output_schema
    fields = list((schema or {}).get("properties") or {})
    out_columns = [f"out.{f}" for f in fields]
    element_keys = _element_keys(schema, explode, fields, job)
    if explode and element_keys:
        out_columns += [f"out.{explode}.{key}" for key in element_keys]

    price = costs.pricer(job.provider, job.model)

    def rows() -> Iterator[tuple[int, list[dict[str, Any]]]]:
        items = store.merged_rows(job.id)
        for index, row in enumerate(table.rows()):
            record = next(items, None)
            if record is None or record[0] != index:
                raise _changed(job)
            merged = _merge_row(row, record, names, price)
            if table.format == "files":
                merged.pop("content", None)  # the file itself stays in the repository
            if fields:
                merged.update(schemas.flatten(merged[names["output"]], fields))
            yield index, list(_exploded(merged, names, explode, element_keys))
            if index == 10:
                crashpoint("mid_merge")
        if next(items, None) is not None or (job.input_sha256 and table.sha256 != job.input_sha256):
            raise _changed(job)

    return _Merged([*columns, *names.values(), *out_columns], names["status"], rows())


def write_output(store: Store, job: Job, out: Path | None, fmt: str, explode: str | None = None) -> MergeSummary:
    """Write the job's output table to `out` (None = stdout, JSONL only).

    With `explode`, a list field of the structured output gives one row per element (the input
    row repeated), its element's fields as `out.<field>.<key>` columns.
    """
    merged = _merged(store, job, explode)
    writer = TableWriter(out, fmt, merged.columns)
    by_status: dict[str, int] = {}
    try:
        for _index, rows in merged.rows:
            status = rows[0][merged.status_column]
            by_status[status] = by_status.get(status, 0) + 1
            for row in rows:
                writer.write(row)
        writer.close()
    except BaseException as exc:
        for _ in range(2):  # a full disk can fail the first close's flush; the second only unlinks
            with contextlib.suppress(OSError):
                writer.abort()
                break
        if isinstance(exc, OSError) and out is not None:
            raise OutputError(
                f"cannot write the output table {out}: {exc.strerror or exc}",
                hint="free some space or pass another --out, then run `llmbulk collect` again: "
                "every result is kept in the state database",
            ) from exc
        raise
    return MergeSummary(out, writer.rows_written, by_status)


class SettledRowStream:
    """JSONL rows on stdout as their items settle, each input row once (for `--follow --out -`).

    Rows still waiting or retrying are held back; `emit(final=True)` writes every row not yet
    written, so a finished job has written each row exactly once, in the order rows settled.
    """

    def __init__(self, n_rows: int) -> None:
        self._written = bytearray((n_rows + 7) // 8)
        self.by_status: dict[str, int] = {}
        self.rows_written = 0

    def emit(self, store: Store, job: Job, explode: str | None = None, final: bool = False) -> MergeSummary:
        merged = _merged(store, job, explode)
        writer = TableWriter(None, "jsonl", merged.columns)
        for index, rows in merged.rows:
            byte, bit = divmod(index, 8)
            status = rows[0][merged.status_column]
            if self._written[byte] & (1 << bit) or not (final or status in SETTLED):
                continue
            self._written[byte] |= 1 << bit
            self.by_status[status] = self.by_status.get(status, 0) + 1
            for row in rows:
                writer.write(row)
        writer.flush()
        self.rows_written += writer.rows_written
        return MergeSummary(None, self.rows_written, dict(self.by_status))


def _element_keys(schema: dict[str, Any] | None, explode: str | None, fields: list[str], job: Job) -> list[str]:
    if explode is None:
        return []
    properties = (schema or {}).get("properties") or {}
    lists = [f for f in fields if properties[f].get("type") == "array"]
    if explode not in lists:
        hint = f"list fields: {', '.join(lists) or 'none'}" if schema else "the job was submitted without --schema"
        raise UsageError(f"--explode {explode!r} is not a list field of job {job.id}'s schema", hint=hint)
    items = properties[explode].get("items") or {}
    return list(items.get("properties") or {})


# What an item was billed: on the first of its exploded rows only, so a column sums to the job's total.
PER_ITEM_COLUMNS = ("input_tokens", "output_tokens", "cost_usd")


def _exploded(
    merged: dict[str, Any], names: dict[str, str], explode: str | None, element_keys: list[str]
) -> Iterator[dict[str, Any]]:
    if explode is None:
        yield merged
        return
    try:
        elements = orjson.loads(merged[names["output"]] or "null").get(explode)
    except (orjson.JSONDecodeError, AttributeError):
        elements = None
    if not isinstance(elements, list) or not elements:
        yield merged
        return
    for position, element in enumerate(elements):
        row = dict(merged)
        if position:
            row.update((names[column], None) for column in PER_ITEM_COLUMNS)
        row[f"out.{explode}"] = orjson.dumps(element).decode() if isinstance(element, dict | list) else element
        if isinstance(element, dict):
            for key in element_keys:
                row[f"out.{explode}.{key}"] = element.get(key)
        yield row


def _merge_row(
    row: dict[str, Any],
    record: tuple[Any, ...],
    names: dict[str, str],
    price: Callable[[int | None, int | None, int | None], float | None],
) -> dict[str, Any]:
    (_row, _key, state, attempts, output, finish, in_tok, out_tok, err_type, err_code, err_msg, cached, reused) = record
    error = None
    if state != "succeeded" and (err_code or err_msg):
        error = f"{err_code or err_type}: {err_msg}" if err_msg else str(err_code or err_type)
    merged = dict(row)
    merged[names["output"]] = output if state == "succeeded" else None
    merged[names["status"]] = state
    merged[names["error"]] = error
    merged[names["attempts"]] = attempts
    merged[names["finish_reason"]] = finish
    merged[names["input_tokens"]] = in_tok
    merged[names["output_tokens"]] = out_tok
    # An answer taken from another item (this job's, or an earlier job's) was not sent: it cost nothing.
    cost = price(in_tok, out_tok, cached) if reused is None else 0.0
    # Rounded to a millionth of a cent: `3.225e-06`, not the float sum's `3.2249999999999996e-06`.
    merged[names["cost_usd"]] = None if cost is None else round(cost, 12)
    merged[names["reused_from"]] = reused
    return merged


def _changed(job: Job) -> StateError:
    return StateError(
        f"input {job.input_path} changed since job {job.id} was submitted",
        hint="restore the original file; outputs are joined to it row by row",
    )


def default_output(job: Job, fmt: str | None) -> tuple[Path, str]:
    if job.out_path:
        path = Path(job.out_path)
        return path, fmt or detect_format(path)
    fmt = fmt or "csv"
    return Path(f"llmbulk-{job.id}.{fmt}"), fmt


def resolve_output(job: Job, out: Path | None, fmt: str | None) -> tuple[Path | None, str]:
    """Where and in what format to write the output table (`-` = stdout, JSONL)."""
    check_output(out, fmt)
    if out is None:
        return default_output(job, fmt)
    if str(out) == "-":
        return None, "jsonl"
    return out, fmt or detect_format(out)


def check_output(out: Path | None, fmt: str | None, input_path: Path | None = None) -> None:
    """Refuse a bad --format or --out before anything is sent; needs no job, so it can run first.

    The output must be in a known format that agrees with its extension, must not be the input,
    and its folder must exist and be writable.
    """
    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
    if out is None:
        return
    if str(out) == "-":
        if fmt not in (None, "jsonl"):
            raise UsageError("only --format jsonl can be written to stdout")
        return
    if fmt is None:
        detect_format(out)
    check_format_matches(out, fmt)
    if input_path is not None and out.resolve() == input_path.resolve():
        raise UsageError(f"--out {out} is the input file", hint="write the output to another file")
    folder = out.resolve().parent
    if out.is_dir():
        raise UsageError(f"--out {out} is a directory", hint="name a file, e.g. results.csv")
    if not folder.is_dir():
        raise UsageError(f"cannot write --out {out}: folder {folder} does not exist", hint="create it first")
    if not os.access(folder, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise UsageError(f"cannot write --out {out}: permission denied", hint="choose a writable location")
