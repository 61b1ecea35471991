"""Inserting item rows in chunks, where a repeated item key becomes a one-line input error."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.exc import IntegrityError

from llmbulk.errors import InputError
from llmbulk.store.unit import CHUNK, Unit


class ItemRows(Unit):
    """The one insert path of items (new, followers, reused), in the unit of work."""

    def _insert_items(self, job_id: str, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert item rows (job, row, key, …) in chunks; a repeated key is a one-line input error."""
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            try:
                with self._conn.begin_nested():
                    self._bulk(sql, chunk)
            except (IntegrityError, *_driver_integrity_errors()) as exc:  # type: ignore[misc]  # a runtime tuple
                raise self._duplicate_error(job_id, [(row[1], row[2]) for row in chunk]) from exc

    def _duplicate_error(self, job_id: str, chunk: list[tuple[int, str]]) -> InputError:
        seen: dict[str, int] = {}
        for row, key in chunk:
            if key in seen:
                return _dup(key, seen[key], row)
            seen[key] = row
        sql = text("SELECT key, row_index FROM items WHERE job_id = :j AND key IN :keys").bindparams(
            bindparam("keys", expanding=True)
        )
        found = self._conn.execute(sql, {"j": job_id, "keys": list(seen)}).first()
        if found is None:
            return InputError("duplicate item ids in the input", hint="make the id column unique")
        return _dup(found[0], found[1], seen[found[0]])


def _dup(key: str, first_row: int, second_row: int) -> InputError:
    return InputError(
        f"duplicate id {key!r} at rows {first_row + 1} and {second_row + 1}",
        hint="ids must be unique; fix the id column or drop --id-column to use row numbers",
    )


def _driver_integrity_errors() -> tuple[type[Exception], ...]:
    """The DBAPI-level unique-violation errors (raw cursors bypass SQLAlchemy's wrapping)."""
    import sqlite3

    errors: list[type[Exception]] = [sqlite3.IntegrityError]
    try:
        import psycopg

        errors.append(psycopg.IntegrityError)
    except ImportError:
        pass
    return tuple(errors)
