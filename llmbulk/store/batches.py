"""The batches aggregate: shards, batches with their create intents, and what polls report.

A batch row is written as an intent (`creating`) before its create call, in the transaction that
checks the lease; the create's outcome is recorded whoever holds the lease now (it is a fact).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from sqlalchemy import bindparam, text

from llmbulk.models import BatchState, BatchStatus, ItemState
from llmbulk.store import queries
from llmbulk.store.schema import Batch, Shard
from llmbulk.store.unit import Reading, Unit, insert_sql, recount, shift_counts

# A batch that exists at the provider and answers (or will answer) for its shard's items.
PRODUCTIVE = (
    "provider_batch_id IS NOT NULL AND state NOT IN ('creating', 'requeued', 'failed')"
    " AND COALESCE(error_code, '') <> 'duplicate'"
)

_BATCH_COLUMNS = list(Batch.model_fields)
_SHARD_COLUMNS = list(Shard.model_fields)


class BatchWrites(Unit):
    """Write operations on shards and batches, in the unit of work."""

    def add_shard(self, shard: Shard) -> None:
        """Record a packed shard (its items are added as it is packed)."""
        self._run(insert_sql("shards", _SHARD_COLUMNS), shard.model_dump())
        recount(self._conn, shard.job_id, shard.id)

    def next_shard_seq(self, job_id: str) -> int:
        value = self._run("SELECT MAX(seq) FROM shards WHERE job_id = :j", {"j": job_id}).scalar()
        return (value or 0) + 1

    def add_batch(self, batch: Batch) -> None:
        """Record a batch row (a create intent, in a fenced transaction, or a batch found at the provider)."""
        self._run(insert_sql("batches", _BATCH_COLUMNS), batch.model_dump())

    def intent_with_batch(self, batch_ids: Sequence[str]) -> str | None:
        """Which of these intents has a provider batch recorded now (rows locked until the unit commits)."""
        if not batch_ids:
            return None
        lock = " FOR UPDATE" if self._conn.dialect.name == "postgresql" else ""  # SQLite: BEGIN IMMEDIATE already
        sql = text(f"SELECT id FROM batches WHERE id IN :ids AND provider_batch_id IS NOT NULL{lock}").bindparams(
            bindparam("ids", expanding=True)
        )
        found = self._conn.execute(sql, {"ids": list(batch_ids)}).scalar()
        return None if found is None else str(found)

    def supersede_intents(self, batch_ids: Sequence[str], reason: str) -> None:
        """Earlier create intents of a shard whose batch was never found: the shard is sent anew."""
        for batch_id in batch_ids:
            self._run(
                "UPDATE batches SET state = 'requeued', error = :e WHERE id = :b AND state = 'creating'",
                {"e": reason, "b": batch_id},
            )

    def touch_intent(self, batch_id: str) -> None:
        """Restart an intent's in-flight window: its provider call is about to be made."""
        self._set_batch(batch_id, intent_at=time.time())

    def refuse_intent(self, batch_id: str, error: str, error_code: str | None = None) -> None:
        """The provider refused the create (nothing was created): the shard is sent anew later."""
        codes = {} if error_code is None else {"error_code": error_code}
        self._set_batch(batch_id, state=BatchState.REQUEUED.value, error=error, **codes)

    def set_input_file(self, batch_id: str, file_id: str) -> None:
        """The intent's uploaded input file (a fact: recorded whoever holds the lease)."""
        self._set_batch(batch_id, input_file_id=file_id)

    def mark_files_deleted(self, batch_ids: Sequence[str]) -> None:
        """These batches' files at the provider are deleted (or gone): no later collect asks again."""
        now = time.time()
        for batch_id in batch_ids:
            self._set_batch(batch_id, files_deleted_at=now)

    def mark_cancelling(self, batch_id: str) -> None:
        self._set_batch(batch_id, state=BatchState.CANCELLING.value)

    def _set_batch(self, batch_id: str, **values: object) -> None:
        sets = ", ".join(f"{k} = :{k}" for k in values)
        self._run(f"UPDATE batches SET {sets} WHERE id = :_id", {**values, "_id": batch_id})

    def mark_duplicate(self, batch_id: str, kept: str) -> None:
        """A second provider batch for one shard: cancelled, never collected (the kept one answers)."""
        self._run(
            "UPDATE batches SET state = 'cancelled', error_code = 'duplicate', error = :e,"
            " collected_at = :t WHERE id = :b",
            {"e": f"a second batch for its shard; {kept} answers for it", "t": time.time(), "b": batch_id},
        )

    def record_poll(self, batch_id: str, status: BatchStatus, now: float) -> None:
        """A poll's view of a batch, unless its results are collected already (then it says no more)."""
        values = _status_values(status, now)
        sets = ", ".join(f"{k} = :{k}" for k in values)
        self._run(f"UPDATE batches SET {sets} WHERE id = :_id AND collected_at IS NULL", {**values, "_id": batch_id})

    def mark_submitted(
        self, batch_id: str, shard_id: str, job_id: str, provider_batch_id: str, created_at: float
    ) -> str | None:
        """Record a confirmed create and move the shard's queued items to submitted.

        Returns the provider id of another live or answered batch of the same shard, if one is
        recorded: then this batch is a duplicate.
        """
        values = {"provider_batch_id": provider_batch_id, "created_at": created_at}
        return self._submitted(batch_id, shard_id, job_id, values)

    def mark_found(
        self,
        batch_id: str,
        shard_id: str,
        job_id: str,
        provider_batch_id: str,
        created_at: float,
        input_file_id: str | None,
    ) -> str | None:
        """Record the batch an intent's create made, found at the provider; as `mark_submitted`."""
        values = {"provider_batch_id": provider_batch_id, "input_file_id": input_file_id, "created_at": created_at}
        return self._submitted(batch_id, shard_id, job_id, values)

    def _submitted(self, batch_id: str, shard_id: str, job_id: str, values: dict[str, Any]) -> str | None:
        values = {**values, "state": BatchState.VALIDATING.value}
        sets = ", ".join(f"{k} = :{k}" for k in values)
        # Only an intent without a batch yet: a paused holder resuming after another holder
        # adopted (and perhaps collected) this very batch must not set it back to `validating`.
        self._run(
            f"UPDATE batches SET {sets} WHERE id = :_id AND provider_batch_id IS NULL", {**values, "_id": batch_id}
        )
        moved = self._run(
            "UPDATE items SET state = :s WHERE job_id = :j AND shard_id = :sh AND state = :q",
            {"s": ItemState.SUBMITTED.value, "j": job_id, "sh": shard_id, "q": ItemState.QUEUED.value},
        ).rowcount
        if moved:
            shift_counts(self._conn, job_id, shard_id, ItemState.QUEUED.value, ItemState.SUBMITTED.value, moved)
        other = self._run(
            f"SELECT provider_batch_id FROM batches WHERE shard_id = :sh AND id <> :b AND {PRODUCTIVE}"
            " ORDER BY created_at LIMIT 1",
            {"sh": shard_id, "b": batch_id},
        ).scalar()
        return None if other is None else str(other)

    def requeue_batch(self, batch_id: str, job_id: str, shard_id: str) -> None:
        """The batch produced no work (quota): its shard's items wait in the queue again."""
        self._run(
            "UPDATE batches SET state = 'requeued', collected_at = :t WHERE id = :b", {"t": time.time(), "b": batch_id}
        )
        self._run(
            "UPDATE items SET state = 'queued' WHERE job_id = :j AND shard_id = :sh AND state = 'submitted'",
            {"j": job_id, "sh": shard_id},
        )
        recount(self._conn, job_id, shard_id)


def _status_values(status: BatchStatus, now: float) -> dict[str, object]:
    values: dict[str, object] = {
        "state": status.state.value,
        "raw_status": status.raw_status,
        "completed": status.completed if status.counts_known else None,
        "failed": status.failed if status.counts_known else None,
        "error": status.error,
        "error_code": status.error_code,
        "result_refs_json": orjson.dumps(status.result_refs).decode(),
        "ended_at": status.ended_at or (now if status.state.terminal else None),
        "polled_at": now,
        "raw_json": orjson.dumps(status.raw).decode(),
    }
    if status.total is not None:  # providers that hide counts must not erase the shard's size
        values["total"] = status.total
    return values


class BatchReads(Reading):
    """Reads of shards and batches."""

    def shards(self, job_id: str) -> list[Shard]:
        return self._shards("SELECT * FROM shards WHERE job_id = :j ORDER BY seq", job_id)

    def unsent_shards(self, job_id: str) -> list[Shard]:
        """Shards with no confirmed batch: never created, requeued, or created with an unknown outcome."""
        return self._shards(queries.UNSENT_SHARDS, job_id)

    def _shards(self, sql: str, job_id: str) -> list[Shard]:
        with self._read() as conn:
            return [Shard.model_validate(dict(r)) for r in conn.execute(text(sql), {"j": job_id}).mappings()]

    def batches(self, job_id: str, states: Iterable[str] | None = None) -> list[Batch]:
        sql = queries.BATCHES
        params: dict[str, Any] = {"j": job_id}
        if states is not None:
            wanted = list(states)
            sql += " AND state IN (" + ", ".join(f":s{i}" for i in range(len(wanted))) + ")"
            params.update({f"s{i}": s for i, s in enumerate(wanted)})
        with self._read() as conn:
            rows = conn.execute(text(sql + queries.BATCHES_ORDER), params).mappings()
            return [Batch.model_validate(dict(r)) for r in rows]

    def enqueued_bytes(self, provider: str, model: str, states: Sequence[str]) -> int:
        """Bytes of the shards of every job's batches in `states` for this provider and model."""
        marks = ", ".join(f":s{i}" for i in range(len(states)))
        with self._read() as conn:
            total = conn.execute(
                text(
                    "SELECT COALESCE(SUM(s.n_bytes), 0) FROM batches b JOIN jobs j ON j.id = b.job_id"
                    " JOIN shards s ON s.id = b.shard_id WHERE j.provider = :p AND j.model = :m"
                    f" AND b.state IN ({marks})"
                ),
                {"p": provider, "m": model, **{f"s{i}": state for i, state in enumerate(states)}},
            ).scalar()
        return int(total or 0)

    def provider_batches(self, provider: str, emulated: bool) -> list[Batch]:
        """Every batch row and create intent of the jobs on this provider (emulated or real), for `gc`."""
        sql = (
            "SELECT b.* FROM batches b JOIN jobs j ON j.id = b.job_id"
            " WHERE j.provider = :p AND j.emulated = :e ORDER BY b.intent_at"
        )
        with self._read() as conn:
            rows = conn.execute(text(sql), {"p": provider, "e": emulated}).mappings()
            return [Batch.model_validate(dict(r)) for r in rows]

    def batch_attempt_count(self, shard_id: str) -> int:
        with self._read() as conn:
            sql = text("SELECT COUNT(*) FROM batches WHERE shard_id = :s")
            return int(conn.execute(sql, {"s": shard_id}).scalar() or 0)

    def recorded_provider_batches(self, provider_ids: Sequence[str]) -> set[str]:
        """Which of these provider batch ids any job of this database has recorded."""
        return self._recorded("provider_batch_id", provider_ids)

    def referenced_files(self, file_ids: Sequence[str]) -> set[str]:
        """Which of these uploaded file ids a recorded batch or intent of any job refers to."""
        return self._recorded("input_file_id", file_ids)

    def _recorded(self, column: str, values: Sequence[str]) -> set[str]:
        if not values:
            return set()
        sql = text(f"SELECT DISTINCT {column} FROM batches WHERE {column} IN :v").bindparams(
            bindparam("v", expanding=True)
        )
        with self._read() as conn:
            return {str(v) for v in conn.execute(sql, {"v": list(values)}).scalars()}
