"""The items aggregate: items and their attempts — add, requeue, settle, fail, mark dead, recount.

An item's state is the outcome of its current attempt. Items a batch carried but that came back
without an outcome become failed-retryable (`_fail_unanswered`), and dead once out of attempts
(`_settle_shard`): the one place each rule is written.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import bindparam, text

from llmbulk.models import ItemOutcome, ItemState, parse_custom_id
from llmbulk.store.followers import FollowerWrites
from llmbulk.store.queries import failed
from llmbulk.store.schema import Batch
from llmbulk.store.unit import CHUNK, Reading, mark_collected, recount

_INSERT_ATTEMPT = (
    "INSERT INTO attempts (job_id, row_index, attempt, batch_id, outcome, output, finish_reason,"
    " input_tokens, output_tokens, cached_tokens, reasoning_tokens, error_type, error_code,"
    " error_message, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (job_id, row_index, attempt) DO NOTHING"
)


class ItemWrites(FollowerWrites):
    """Write operations on items and attempts, in the unit of work."""

    def add_items(self, job_id: str, shard_id: str, items: Sequence[tuple[int, str, str | None]]) -> None:
        """Record new items (row, key, request key) of a shard, each at attempt 1."""
        queued = ItemState.QUEUED.value
        self._insert_items(
            job_id,
            "INSERT INTO items (job_id, row_index, key, state, attempts, shard_id, request_key)"
            " VALUES (?, ?, ?, ?, 1, ?, ?)",
            [(job_id, row, key, queued, shard_id, request_key) for row, key, request_key in items],
        )

    def requeue_items(self, job_id: str, shard_id: str, rows: Sequence[int]) -> None:
        """Move retried items into a new shard and count the attempt (the shard is added with add_shard)."""
        sql = (
            "UPDATE items SET state = :s, attempts = attempts + 1, shard_id = :sh WHERE job_id = :j AND row_index = :r"
        )
        params = [{"s": ItemState.QUEUED.value, "sh": shard_id, "j": job_id, "r": r} for r in rows]
        for start in range(0, len(params), CHUNK):
            self._run(sql, params[start : start + CHUNK])
        # Followers of the requeued leaders (failed with them, so failed-retryable too) go along.
        self._mirror_followers(job_id, f"{failed('f.state')} AND f.state = 'failed_retryable'", {"j": job_id})
        recount(self._conn, job_id)  # the rows leave whichever shards held them

    def add_outcomes(self, job_id: str, batch: Batch, outcomes: Iterable[ItemOutcome]) -> dict[str, int]:
        """Record every result line of a batch as an attempt; returns line counts.

        Lines for other jobs (or unreadable ids) are ignored and counted as `foreign`; lines for
        attempts already recorded are kept as first recorded. `settle_batch` then moves the items.
        """
        now = time.time()
        counts = {"lines": 0, "foreign": 0}
        chunk: list[tuple[Any, ...]] = []
        for outcome in outcomes:
            counts["lines"] += 1
            try:
                owner, row, attempt = parse_custom_id(outcome.custom_id)
            except ValueError:
                counts["foreign"] += 1
                continue
            if owner != job_id:
                counts["foreign"] += 1
                continue
            chunk.append(_attempt_params(job_id, row, attempt, batch.id, outcome, now))
            if len(chunk) >= CHUNK:
                self._bulk(_INSERT_ATTEMPT, chunk)
                chunk = []
        self._bulk(_INSERT_ATTEMPT, chunk)
        return counts

    def settle_batch(self, job_id: str, batch: Batch, max_attempts: int) -> None:
        """Settle the items of a collected batch from its recorded lines; stamp the batch collected.

        Items the batch carried with no line become failed-retryable (`missing_result`).
        """
        now = time.time()
        # Outcome of the item's current attempt, as carried by this batch (followers take their leaders').
        settled = self._run(
            "UPDATE items SET state = a.outcome FROM attempts a"
            " WHERE a.job_id = items.job_id AND a.row_index = items.row_index"
            " AND a.attempt = items.attempts AND a.batch_id = :b"
            " AND items.job_id = :j AND items.shard_id = :sh AND items.leader_row IS NULL",
            {"j": job_id, "b": batch.id, "sh": batch.shard_id},
        ).rowcount
        carried = self._run("SELECT n_items FROM shards WHERE id = :sh", {"sh": batch.shard_id}).scalar()
        # Only a shard with a request left unanswered has items to fail (and a reason to look for them).
        if carried is None or settled < carried:
            message = "the provider returned no result line for this item"
            self._fail_unanswered(job_id, batch, ("missing_result", "missing_result", message), now)
        self._settle_shard(job_id, batch, max_attempts)
        mark_collected(self._conn, batch.id, now)

    def fail_shard_items(
        self, job_id: str, batch: Batch, error_type: str, error_code: str, message: str, max_attempts: int
    ) -> None:
        """Every item of a batch that failed as a whole gets the batch's error on its attempt."""
        now = time.time()
        self._fail_unanswered(job_id, batch, (error_type, error_code, message), now)
        self._settle_shard(job_id, batch, max_attempts)
        mark_collected(self._conn, batch.id, now)

    def _fail_unanswered(self, job_id: str, batch: Batch, error: tuple[str, str, str], now: float) -> None:
        """Items of the batch's shard still queued or submitted get `error` and become failed-retryable."""
        params = {"j": job_id, "b": batch.id, "sh": batch.shard_id, "t": now}
        self._run(
            "INSERT INTO attempts (job_id, row_index, attempt, batch_id, outcome, error_type,"
            " error_code, error_message, recorded_at) SELECT job_id, row_index, attempts, :b,"
            " 'failed_retryable', :et, :ec, :em, :t FROM items WHERE job_id = :j AND shard_id = :sh"
            " AND state IN ('queued', 'submitted') AND leader_row IS NULL"
            " ON CONFLICT (job_id, row_index, attempt) DO NOTHING",
            {**params, "et": error[0], "ec": error[1], "em": error[2]},
        )
        self._run(
            "UPDATE items SET state = 'failed_retryable' WHERE job_id = :j AND shard_id = :sh"
            " AND state IN ('queued', 'submitted') AND leader_row IS NULL",
            params,
        )

    def _settle_shard(self, job_id: str, batch: Batch, max_attempts: int) -> None:
        """After a batch's items settled: followers take their leaders' outcomes, those out of attempts
        become dead, and the shard's counts are brought up to date."""
        self._mirror_followers(job_id, "f.shard_id = :sh", {"j": job_id, "sh": batch.shard_id})
        self._kill_exhausted(job_id, max_attempts, batch.shard_id)
        recount(self._conn, job_id, batch.shard_id)

    def mark_dead(self, job_id: str, max_attempts: int) -> int:
        """Failed-retryable items out of attempts become dead; returns how many."""
        changed = self._kill_exhausted(job_id, max_attempts)
        if changed:
            recount(self._conn, job_id)
        return changed

    def _kill_exhausted(self, job_id: str, max_attempts: int, shard_id: str | None = None) -> int:
        shard = " AND shard_id = :sh" if shard_id is not None else ""
        result = self._run(
            f"UPDATE items SET state = 'dead' WHERE job_id = :j{shard} AND {failed()}"
            " AND state = 'failed_retryable' AND attempts >= :m",
            {"j": job_id, "sh": shard_id, "m": max_attempts},
        )
        return result.rowcount or 0


class ItemReads(Reading):
    """Reads of items: rows and attempt numbers."""

    def shard_attempts(self, job_id: str, shard_id: str) -> dict[int, int]:
        """Row → attempt of every item a shard carries (what its lines' custom ids hold)."""
        with self._read() as conn:
            rows = conn.execute(
                text(
                    "SELECT row_index, attempts FROM items WHERE job_id = :j AND shard_id = :s"
                    " AND leader_row IS NULL ORDER BY row_index"
                ),
                {"j": job_id, "s": shard_id},
            )
            return {int(row): int(attempt) for row, attempt in rows}

    def retryable_rows(self, job_id: str) -> Iterator[int]:
        """Rows of failed-retryable items with attempts left, in input order (leaders: followers go along)."""
        with self._read() as conn:
            yield from conn.execute(
                text(
                    f"SELECT row_index FROM items WHERE job_id = :j AND {failed()}"
                    " AND state = 'failed_retryable' AND leader_row IS NULL ORDER BY row_index"
                ),
                {"j": job_id},
            ).scalars()

    def item_attempts(self, job_id: str, rows: Sequence[int]) -> dict[int, int]:
        """Current attempt number of each of these rows."""
        out: dict[int, int] = {}
        sql = text("SELECT row_index, attempts FROM items WHERE job_id = :j AND row_index IN :rows").bindparams(
            bindparam("rows", expanding=True)
        )
        with self._read() as conn:
            for start in range(0, len(rows), 900):
                result = conn.execute(sql, {"j": job_id, "rows": list(rows[start : start + 900])})
                out.update((int(row), int(attempts)) for row, attempts in result)
        return out

    def shard_rows(self, shard_id: str) -> list[int]:
        with self._read() as conn:
            sql = text("SELECT row_index FROM items WHERE shard_id = :s AND leader_row IS NULL ORDER BY row_index")
            return list(conn.execute(sql, {"s": shard_id}).scalars())


def _attempt_params(job_id: str, row: int, attempt: int, batch_id: str, o: ItemOutcome, now: float) -> tuple[Any, ...]:
    return (
        job_id, row, attempt, batch_id, o.outcome.value, o.output, o.finish_reason, o.input_tokens,
        o.output_tokens, o.cached_tokens, o.reasoning_tokens, o.error_type, o.error_code, o.error_message, now,
    )  # fmt: skip
