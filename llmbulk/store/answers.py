"""The answers aggregate: per request key, the succeeded attempt whose answer later requests reuse.

An answer is stored once, in `attempts`; `answers` points at it by (job, row, attempt) and keeps
how often it answered an item without sending (hits) and what those items would have cost. The
cache holds what the provider answered and nothing else (no keys, no headers).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, text

from llmbulk.store.unit import Reading, Unit


@dataclass(frozen=True, slots=True)
class ReusedAnswer:
    """A succeeded answer found for a request key, with where it came from."""

    request_key: str
    job_id: str
    key: str  # the item key of the row that was sent
    batch_id: str
    output: str | None
    finish_reason: str | None
    input_tokens: int | None
    output_tokens: int | None
    cached_tokens: int | None
    reasoning_tokens: int | None
    created_at: float


@dataclass(frozen=True, slots=True)
class ReusedItem:
    """An item of a new job answered from a `ReusedAnswer`."""

    row: int
    key: str
    request_key: str
    answer: ReusedAnswer


# Temporary (per connection, never shared): SQLite and PostgreSQL both take this form.
_PACK_KEYS_TABLE = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS pack_keys"
    " (request_key VARCHAR NOT NULL PRIMARY KEY, row_index INTEGER NOT NULL)"
)

_RECORD = (
    "INSERT INTO answers (request_key, job_id, row_index, attempt, created_at, hits, saved_usd)"
    " {select} ON CONFLICT (request_key) DO UPDATE SET job_id = excluded.job_id,"
    " row_index = excluded.row_index, attempt = excluded.attempt, created_at = excluded.created_at"
)
_SUCCEEDED = (
    "FROM attempts a JOIN items i ON i.job_id = a.job_id AND i.row_index = a.row_index"
    " WHERE a.batch_id = :b AND a.outcome = 'succeeded' AND a.reused_from IS NULL AND i.request_key IS NOT NULL"
)


class AnswerWrites(Unit):
    """Write operations on the answers, in the unit of work, and the keys a job being packed sends."""

    def find_answers(self, keys: Sequence[str], oldest: float | None) -> dict[str, ReusedAnswer]:
        """`Store.find_answers`, inside this transaction."""
        return _find(self._conn, keys, oldest)

    def leaders_of(self, keys: Sequence[str]) -> dict[str, int]:
        """Of these request keys, those the job being packed already sends, with the row sending each."""
        self._run(_PACK_KEYS_TABLE, {})
        if not keys:
            return {}
        sql = text("SELECT request_key, row_index FROM pack_keys WHERE request_key IN :keys").bindparams(
            bindparam("keys", expanding=True)
        )
        return {key: int(row) for key, row in self._conn.execute(sql, {"keys": list(keys)})}

    def add_leaders(self, leaders: Sequence[tuple[str, int]]) -> None:
        """(request key, row) the job being packed sends (a scratch table of this transaction)."""
        self._run(_PACK_KEYS_TABLE, {})
        self._bulk("INSERT INTO pack_keys (request_key, row_index) VALUES (?, ?)", leaders)

    def drop_pack_keys(self) -> None:
        self._run("DROP TABLE IF EXISTS pack_keys", {})

    def record_answers(self, batch_id: str, repeats: bool) -> None:
        """Point each request key a batch answered at its answer (the newest answer of a key wins).

        `repeats`: the batch may send one request more than once (a --fresh job folds no repeated
        rows); one of them is recorded.
        """
        if repeats:
            select = (
                "SELECT request_key, job_id, row_index, attempt, recorded_at, 0, 0 FROM (SELECT i.request_key,"
                " a.job_id, a.row_index, a.attempt, a.recorded_at, ROW_NUMBER() OVER"
                f" (PARTITION BY i.request_key ORDER BY a.row_index) AS n {_SUCCEEDED}) t WHERE n = 1"
            )
        else:
            select = f"SELECT i.request_key, a.job_id, a.row_index, a.attempt, a.recorded_at, 0, 0 {_SUCCEEDED}"
        self._run(_RECORD.format(select=select), {"b": batch_id})

    def count_hits(self, hits: Sequence[tuple[str, int, float]]) -> None:
        """(request key, items answered, dollars not spent) for answers reused by a new job."""
        now = time.time()
        self._run(
            "UPDATE answers SET hits = hits + :n, saved_usd = saved_usd + :usd, last_hit_at = :t"
            " WHERE request_key = :k",
            [{"k": key, "n": n, "usd": usd, "t": now} for key, n, usd in hits],
        )

    def prune_answers(self, older_than: float | None = None, job_id: str | None = None) -> int:
        """Forget answers recorded before `older_than` (UNIX time) and/or sent by one job; returns how many.

        The jobs' own results stay: only their reuse by later jobs ends.
        """
        where: list[str] = []
        params: dict[str, Any] = {}
        if older_than is not None:
            where.append("created_at < :t")
            params["t"] = older_than
        if job_id is not None:
            where.append("job_id = :j")
            params["j"] = job_id
        sql = "DELETE FROM answers" + (" WHERE " + " AND ".join(where) if where else "")
        return self._run(sql, params).rowcount or 0


_FIND = (
    "SELECT an.request_key, a.job_id, i.key, a.batch_id, a.output, a.finish_reason, a.input_tokens,"
    " a.output_tokens, a.cached_tokens, a.reasoning_tokens, an.created_at FROM answers an"
    " JOIN attempts a ON a.job_id = an.job_id AND a.row_index = an.row_index AND a.attempt = an.attempt"
    " JOIN items i ON i.job_id = an.job_id AND i.row_index = an.row_index"
    " WHERE an.request_key IN :keys AND a.outcome = 'succeeded' AND an.created_at >= :oldest"
)


class AnswerReads(Reading):
    """Reads of the answers."""

    def find_answers(self, keys: Sequence[str], oldest: float | None) -> dict[str, ReusedAnswer]:
        """The succeeded answers recorded for these request keys (not before `oldest`)."""
        with self._read() as conn:
            return _find(conn, keys, oldest)

    def answer_stats(self) -> dict[str, Any]:
        """Entries, bytes of answer text, hits, dollars not spent, oldest and newest entry."""
        with self._read() as conn:
            row = conn.execute(
                text(
                    "SELECT COUNT(*), COALESCE(SUM(LENGTH(a.output)), 0), COALESCE(SUM(an.hits), 0),"
                    " COALESCE(SUM(an.saved_usd), 0), MIN(an.created_at), MAX(an.created_at) FROM answers an"
                    " LEFT JOIN attempts a ON a.job_id = an.job_id AND a.row_index = an.row_index"
                    " AND a.attempt = an.attempt"
                )
            ).one()
        return {
            "entries": int(row[0]),
            "bytes": int(row[1]),
            "hits": int(row[2]),
            "saved_usd": float(row[3]),
            "oldest": None if row[4] is None else float(row[4]),
            "newest": None if row[5] is None else float(row[5]),
        }


def _find(conn: Connection, keys: Sequence[str], oldest: float | None) -> dict[str, ReusedAnswer]:
    if not keys:
        return {}
    sql = text(_FIND).bindparams(bindparam("keys", expanding=True))
    rows = conn.execute(sql, {"keys": list(keys), "oldest": oldest if oldest is not None else 0.0})
    return {row[0]: ReusedAnswer(*row) for row in rows}
