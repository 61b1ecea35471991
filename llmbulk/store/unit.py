"""The pieces every aggregate shares: the unit of work's connection, reads, and common statements.

`Unit` wraps the connection of one write transaction (the aggregates' write operations are its
methods); `Reading` opens read-only transactions for the store's read methods. Bulk writes use
executemany in chunks on the driver's cursor.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, CursorResult, Engine, text

from llmbulk.store.engine import READ_OPTION
from llmbulk.store.migrations import item_counts_select

CHUNK = 20_000


class Unit:
    """One write transaction; the aggregates add their named operations to it."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def _run(self, sql: str, params: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> CursorResult[Any]:
        return self._conn.execute(text(sql), params)  # type: ignore[arg-type]  # one mapping or a list of them

    def _bulk(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        bulk(self._conn, sql, rows)


class Reading:
    """Read-only transactions on the engine (they do not take SQLite's write lock)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            conn = conn.execution_options(**{READ_OPTION: True})
            with conn.begin():
                yield conn


def bulk(conn: Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """executemany on the driver's cursor with plain tuples: the hot path for millions of rows.

    `sql` uses `?` placeholders, rewritten for drivers of the `%s` style (psycopg). It runs inside
    the caller's SQLAlchemy transaction (the same DBAPI connection).
    """
    if not rows:
        return
    if conn.dialect.paramstyle in ("format", "pyformat"):
        sql = sql.replace("?", "%s")
    cursor = conn.connection.cursor()
    try:
        cursor.executemany(sql, rows)
    finally:
        cursor.close()


def fetch(conn: Connection, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """One query on the driver's cursor (`?` placeholders): no statement compiling per call, for the
    lookups packing makes per chunk of thousands of keys."""
    if conn.dialect.paramstyle in ("format", "pyformat"):
        sql = sql.replace("?", "%s")
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql, tuple(params))
        return [tuple(row) for row in cursor.fetchall()]
    finally:
        cursor.close()


def marks(n: int) -> str:
    """`?, ?, …` for an IN list of n values."""
    return ", ".join("?" * n)


def insert_sql(table: str, columns: Sequence[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})"


def recount(conn: Connection, job_id: str, shard_id: str | None = None) -> None:
    """Bring `item_counts` up to date for one shard of a job (or the whole job) after its items changed."""
    where = " WHERE job_id = :j" + (" AND shard_id = :sh" if shard_id is not None else "")
    params = {"j": job_id, "sh": shard_id}
    conn.execute(text(f"DELETE FROM item_counts{where}"), params)
    counted = item_counts_select(where)
    conn.execute(text(f"INSERT INTO item_counts (job_id, shard_id, state, error_code, n) {counted}"), params)


def shift_counts(conn: Connection, job_id: str, shard_id: str, source: str, target: str, n: int) -> None:
    """`n` items of a shard went from `source` to `target` (neither a failed state, whose counts are
    kept per error code): its counts move with them, without counting the shard's items again."""
    key = {"j": job_id, "sh": shard_id, "n": n}
    row = " WHERE job_id = :j AND shard_id = :sh AND state = :s AND error_code = ''"
    conn.execute(text(f"UPDATE item_counts SET n = n - :n{row}"), {**key, "s": source})
    conn.execute(
        text(
            "INSERT INTO item_counts (job_id, shard_id, state, error_code, n) VALUES (:j, :sh, :s, '', :n)"
            " ON CONFLICT (job_id, shard_id, state, error_code) DO UPDATE SET n = item_counts.n + excluded.n"
        ),
        {**key, "s": target},
    )
    conn.execute(text("DELETE FROM item_counts WHERE job_id = :j AND shard_id = :sh AND n <= 0"), key)


# A batch's usage from the attempts it billed (ix_attempts_batch), in one pass over them; copies of
# its answers that other items of the job took (`reused_from`) carry its id but were not sent, so
# they are not counted.
BATCH_USAGE = (
    "(input_tokens, output_tokens, attempts_recorded, cached_tokens, usage_attempts) = (SELECT"
    " COALESCE(SUM(a.input_tokens), 0), COALESCE(SUM(a.output_tokens), 0), COUNT(*),"
    " COALESCE(SUM(a.cached_tokens), 0), COUNT(a.input_tokens)"
    " FROM attempts a WHERE a.batch_id = batches.id AND a.reused_from IS NULL)"
)


def mark_collected(conn: Connection, batch_id: str, now: float) -> None:
    """The batch's results are recorded: stamp it and keep its usage sums."""
    conn.execute(text(f"UPDATE batches SET collected_at = :t, {BATCH_USAGE} WHERE id = :b"), {"t": now, "b": batch_id})
