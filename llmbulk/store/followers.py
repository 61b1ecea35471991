"""Items that are not sent: followers of a row sending the same request, and items answered from
earlier jobs' answers — recorded while packing, and kept in step with their leaders.

A follower has `leader_row` set: it is in its leader's shard (so counts and shard-wide state
changes include it) but not in the shard file; whenever the leader settles or is requeued, the
follower takes its attempt (copied, marked `reused_from`, not billed), state and shard.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from llmbulk.models import ItemState
from llmbulk.store.answers import ReusedItem
from llmbulk.store.item_rows import ItemRows
from llmbulk.store.unit import recount

_INSERT_REUSED_ATTEMPT = (
    "INSERT INTO attempts (job_id, row_index, attempt, batch_id, outcome, output, finish_reason,"
    " input_tokens, output_tokens, cached_tokens, reasoning_tokens, recorded_at, reused_from)"
    " VALUES (?, ?, 1, ?, 'succeeded', ?, ?, ?, ?, ?, ?, ?, ?)"
)
# The pseudo-shard of items answered from earlier jobs (no shard file, no batch).
REUSED_SHARD = "reused"


class FollowerWrites(ItemRows):
    """Write operations on items that take another item's answer, in the unit of work."""

    def add_followers(self, job_id: str, items: Sequence[tuple[int, str, str, int]]) -> None:
        """Record items (row, key, request key, leader row) that take the answer of an earlier row
        sending the same request; `place_followers` puts them in their leaders' shards."""
        queued = ItemState.QUEUED.value
        self._insert_items(
            job_id,
            "INSERT INTO items (job_id, row_index, key, state, attempts, request_key, leader_row)"
            " VALUES (?, ?, ?, ?, 1, ?, ?)",
            [(job_id, row, key, queued, request_key, leader) for row, key, request_key, leader in items],
        )

    def add_reused(self, job_id: str, items: Sequence[ReusedItem]) -> None:
        """Record items answered from an earlier job's answer: succeeded at once, nothing sent or billed."""
        now = time.time()
        self._insert_items(
            job_id,
            "INSERT INTO items (job_id, row_index, key, state, attempts, shard_id, request_key)"
            " VALUES (?, ?, ?, 'succeeded', 1, ?, ?)",
            [(job_id, i.row, i.key, REUSED_SHARD, i.request_key) for i in items],
        )
        self._bulk(
            _INSERT_REUSED_ATTEMPT,
            [
                (
                    job_id, i.row, i.answer.batch_id, i.answer.output, i.answer.finish_reason, i.answer.input_tokens,
                    i.answer.output_tokens, i.answer.cached_tokens, i.answer.reasoning_tokens, now,
                    f"{i.answer.job_id}/{i.answer.key}",
                )
                for i in items
            ],
        )  # fmt: skip

    def place_followers(self, job_id: str) -> None:
        """Followers recorded while packing join their leaders' shards, then every count is brought up to date."""
        self._run(
            "UPDATE items AS f SET shard_id = l.shard_id FROM items AS l WHERE l.job_id = f.job_id"
            " AND l.row_index = f.leader_row AND f.job_id = :j AND f.shard_id IS NULL AND f.leader_row IS NOT NULL",
            {"j": job_id},
        )
        recount(self._conn, job_id)

    def _mirror_followers(self, job_id: str, where: str, params: dict[str, Any]) -> None:
        """Followers (chosen by `where` on `f`) take their leader's current attempt, state and shard.

        The leader's outcome is copied as the follower's attempt, marked `reused_from` (not billed).
        """
        self._run(
            "INSERT INTO attempts (job_id, row_index, attempt, batch_id, outcome, output, finish_reason,"
            " input_tokens, output_tokens, cached_tokens, reasoning_tokens, error_type, error_code, error_message,"
            " recorded_at, reused_from) SELECT f.job_id, f.row_index, l.attempts, a.batch_id, a.outcome, a.output,"
            " a.finish_reason, a.input_tokens, a.output_tokens, a.cached_tokens, a.reasoning_tokens, a.error_type,"
            " a.error_code, a.error_message, a.recorded_at, l.key FROM items f"
            " JOIN items l ON l.job_id = f.job_id AND l.row_index = f.leader_row"
            " JOIN attempts a ON a.job_id = l.job_id AND a.row_index = l.row_index AND a.attempt = l.attempts"
            f" WHERE f.job_id = :j AND f.leader_row IS NOT NULL AND {where}"
            " ON CONFLICT (job_id, row_index, attempt) DO NOTHING",
            params,
        )
        self._run(
            "UPDATE items AS f SET state = l.state, attempts = l.attempts, shard_id = l.shard_id FROM items AS l"
            " WHERE l.job_id = f.job_id AND l.row_index = f.leader_row"
            f" AND f.job_id = :j AND f.leader_row IS NOT NULL AND {where}",
            params,
        )
