"""The answers aggregate: per request key, the succeeded attempt whose answer later requests reuse.

An answer is stored once, in `attempts`; `answers` points at it by (job, row, attempt) and names the
item that was sent (its key, for the reused rows' `reused_from`). The cache
holds what the provider answered and nothing else (no keys, no headers). How often answers were
reused, and what that saved, each job records with its estimate (`reuse`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, text

from llmbulk.store.unit import Reading, Unit, fetch, marks


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


_RECORD = (
    "INSERT INTO answers (request_key, job_id, row_index, attempt, created_at, item_key)"
    " {select} ON CONFLICT (request_key) DO UPDATE SET job_id = excluded.job_id,"
    " row_index = excluded.row_index, attempt = excluded.attempt, created_at = excluded.created_at,"
    " item_key = excluded.item_key"
)
# A collected shard's items that succeeded (their current attempt is the answer its batch brought);
# followers and rows answered from earlier jobs are not the ones that were sent.
_SUCCEEDED = (
    "FROM items i WHERE i.job_id = :j AND i.shard_id = :sh AND i.state = 'succeeded'"
    " AND i.leader_row IS NULL AND i.request_key IS NOT NULL"
)


class AnswerWrites(Unit):
    """Write operations on the answers, in the unit of work, and the keys a job being packed sends."""

    def has_answers(self) -> bool:
        """Whether any answer is recorded at all (a new database has none: no lookup can find one)."""
        return bool(fetch(self._conn, "SELECT 1 FROM answers LIMIT 1", []))

    def find_answers(self, keys: Sequence[str], oldest: float | None) -> dict[str, ReusedAnswer]:
        """The succeeded answers recorded for these request keys (not before `oldest`)."""
        return _find(self._conn, keys, oldest)

    def start_pack_keys(self) -> None:
        """The scratch table of the requests the job being packed sends (this connection's, emptied).

        Keyed by the first 64 bits of the request key (a rowid on SQLite: the cheapest B-tree);
        `mismatched_followers` checks the full keys once packing is done.
        """
        integer = "INTEGER" if self._conn.dialect.name == "sqlite" else "BIGINT"
        columns = f"request_key {integer} PRIMARY KEY, row_index INTEGER NOT NULL"
        self._run(f"CREATE TEMPORARY TABLE IF NOT EXISTS pack_keys ({columns})", {})
        self._run("DELETE FROM pack_keys", {})

    def leaders_of(self, keys: Sequence[int]) -> dict[int, int]:
        """Of these request keys (their 64-bit prefixes), those the job being packed already sends,
        with the row sending each."""
        if not keys:
            return {}
        sql = f"SELECT request_key, row_index FROM pack_keys WHERE request_key IN ({marks(len(keys))})"
        return {int(key): int(row) for key, row in fetch(self._conn, sql, keys)}

    def add_leaders(self, leaders: Sequence[tuple[int, int]]) -> None:
        """(request key prefix, row) the job being packed sends."""
        self._bulk("INSERT INTO pack_keys (request_key, row_index) VALUES (?, ?)", leaders)

    def mismatched_followers(self, job_id: str) -> list[int]:
        """Followers whose full request key differs from their leader's (a 64-bit prefix collision)."""
        return [
            int(row)
            for (row,) in fetch(
                self._conn,
                "SELECT f.row_index FROM items f JOIN items l ON l.job_id = f.job_id AND l.row_index = f.leader_row"
                " WHERE f.job_id = ? AND f.leader_row IS NOT NULL AND f.request_key <> l.request_key",
                [job_id],
            )
        ]

    def drop_pack_keys(self) -> None:
        self._run("DROP TABLE IF EXISTS pack_keys", {})

    def record_answers(self, job_id: str, shard_id: str, repeats: bool) -> None:
        """Point each request key a collected shard's batch answered at its answer (the newest answer
        of a key wins). Runs once the batch's items are settled: read from the items alone, through
        the shard index, not from the attempts joined to them.

        `repeats`: the batch may send one request more than once (a --fresh job folds no repeated
        rows); one of them is recorded.
        """
        if repeats:
            select = (
                "SELECT request_key, job_id, row_index, attempts, :t, key FROM (SELECT i.request_key, i.job_id,"
                " i.row_index, i.attempts, i.key, ROW_NUMBER() OVER (PARTITION BY i.request_key ORDER BY i.row_index)"
                f" AS n {_SUCCEEDED}) t WHERE n = 1 ORDER BY request_key"
            )
        else:
            select = f"SELECT i.request_key, i.job_id, i.row_index, i.attempts, :t, i.key {_SUCCEEDED} ORDER BY 1"
        # In key order: the answers B-tree is written in one sweep, not at random places per row.
        self._run(_RECORD.format(select=select), {"j": job_id, "sh": shard_id, "t": time.time()})

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


# One search of the answers by request key, then the attempt holding the answer (an answer whose
# sent row is unknown is not reused: the reused rows could not name it).
_FIND = (
    "SELECT an.request_key, an.job_id, an.item_key, a.batch_id, a.output, a.finish_reason, a.input_tokens,"
    " a.output_tokens, a.cached_tokens, a.reasoning_tokens, an.created_at FROM answers an"
    " JOIN attempts a ON a.job_id = an.job_id AND a.row_index = an.row_index AND a.attempt = an.attempt"
    " WHERE an.created_at >= ? AND a.outcome = 'succeeded' AND an.item_key IS NOT NULL"
    " AND an.request_key IN ({keys})"
)


class AnswerReads(Reading):
    """Reads of the answers."""

    def reuse_totals(self) -> tuple[int, float]:
        """Items every job answered from earlier jobs' answers, and the dollars that did not spend."""
        reused, saved = 0, 0.0
        with self._read() as conn:
            rows = conn.execute(text("SELECT estimate_json FROM jobs WHERE estimate_json LIKE '%\"reused\"%'"))
            for (stored,) in rows:
                reuse = orjson.loads(stored).get("reuse") or {}
                reused += int(reuse.get("reused") or 0)
                saved += float(reuse.get("saved_usd") or 0.0)
        return reused, saved

    def answer_stats(self) -> dict[str, Any]:
        """Entries, bytes of answer text, oldest and newest entry."""
        with self._read() as conn:
            row = conn.execute(
                text(
                    "SELECT COUNT(*), COALESCE(SUM(LENGTH(a.output)), 0), MIN(an.created_at), MAX(an.created_at)"
                    " FROM answers an LEFT JOIN attempts a ON a.job_id = an.job_id AND a.row_index = an.row_index"
                    " AND a.attempt = an.attempt"
                )
            ).one()
        return {
            "entries": int(row[0]),
            "bytes": int(row[1]),
            "oldest": None if row[2] is None else float(row[2]),
            "newest": None if row[3] is None else float(row[3]),
        }


def _find(conn: Connection, keys: Sequence[str], oldest: float | None) -> dict[str, ReusedAnswer]:
    if not keys:
        return {}
    rows = fetch(conn, _FIND.format(keys=marks(len(keys))), [0.0 if oldest is None else oldest, *keys])
    return {row[0]: ReusedAnswer(*row) for row in rows}
