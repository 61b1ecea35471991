"""The only code that issues SQL: named, set-based operations on jobs, items, shards and batches.

Writes are short transactions (`BEGIN IMMEDIATE` on SQLite); bulk writes use executemany in
chunks and `UPDATE … FROM` / `INSERT … ON CONFLICT`, which SQLite and PostgreSQL both speak.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, text
from sqlalchemy.exc import IntegrityError

from llmbulk.crashpoints import crashpoint
from llmbulk.errors import InputError, NotFoundError
from llmbulk.models import Fence, ItemOutcome, ItemState, parse_custom_id
from llmbulk.store import queries
from llmbulk.store.engine import READ_OPTION, open_engine
from llmbulk.store.migrations import BATCH_USAGE_SET, item_counts_select
from llmbulk.store.schema import Batch, Job, Shard

CHUNK = 20_000

# A batch that exists at the provider and answers (or will answer) for its shard's items.
PRODUCTIVE = (
    "provider_batch_id IS NOT NULL AND state NOT IN ('creating', 'requeued', 'failed')"
    " AND COALESCE(error_code, '') <> 'duplicate'"
)

_JOB_COLUMNS = list(Job.model_fields)
_BATCH_COLUMNS = list(Batch.model_fields)
_SHARD_COLUMNS = list(Shard.model_fields)


def _bulk(conn: Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
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


def _insert_sql(table: str, columns: Sequence[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})"


class Store:
    """Named operations on the state database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> Store:
        return cls(open_engine(url))

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        """A write transaction."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (does not take SQLite's write lock)."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(**{READ_OPTION: True})
            with conn.begin():
                yield conn

    # ---- jobs -------------------------------------------------------------------------------

    def add_job(self, conn: Connection, job: Job) -> None:
        """Insert a job row in the caller's transaction."""
        conn.execute(text(_insert_sql("jobs", _JOB_COLUMNS)), job.model_dump())

    def update_job_in(self, conn: Connection, job_id: str, **values: Any) -> None:
        sets = ", ".join(f"{k} = :{k}" for k in values)
        conn.execute(text(f"UPDATE jobs SET {sets} WHERE id = :_id"), {**values, "_id": job_id})

    def get_job(self, job_id: str) -> Job:
        with self.read() as conn:
            row = conn.execute(text(queries.JOB), {"j": job_id}).mappings().first()
        if row is None:
            raise NotFoundError(f"no job {job_id!r} in this state database", hint="see `llmbulk jobs`")
        return Job.model_validate(dict(row))

    def list_jobs(self, limit: int = 50) -> list[Job]:
        with self.read() as conn:
            rows = conn.execute(
                text("SELECT * FROM jobs ORDER BY created_at DESC, id DESC LIMIT :n"), {"n": limit}
            ).mappings()
            return [Job.model_validate(dict(r)) for r in rows]

    def update_job(self, job_id: str, **values: Any) -> None:
        sets = ", ".join(f"{k} = :{k}" for k in values)
        with self.tx() as conn:
            conn.execute(text(f"UPDATE jobs SET {sets} WHERE id = :_id"), {**values, "_id": job_id})

    def claim_lease(self, job_id: str, owner: str, ttl: float) -> int | None:
        """Take or renew the job's lease if it is free, expired or already ours; returns its generation.

        Taking it from anyone else (an expired holder included) increments the generation, the
        fencing token every side effect is checked against; renewing our own keeps it.
        """
        now = time.time()
        with self.tx() as conn:
            result = conn.execute(
                text(
                    "UPDATE jobs SET lease_gen = CASE WHEN lease_owner = :o THEN lease_gen ELSE lease_gen + 1 END,"
                    " lease_owner = :o, lease_until = :u WHERE id = :j"
                    " AND (lease_owner IS NULL OR lease_until < :now OR lease_owner = :o)"
                ),
                {"o": owner, "u": now + ttl, "j": job_id, "now": now},
            )
            if (result.rowcount or 0) != 1:
                return None
            return int(conn.execute(text("SELECT lease_gen FROM jobs WHERE id = :j"), {"j": job_id}).scalar_one())

    def take_over_lease(self, job_id: str, dead_owner: str, owner: str, ttl: float) -> int | None:
        """Take a lease from a holder known to be dead (atomic: only if it is still theirs)."""
        with self.tx() as conn:
            result = conn.execute(
                text(
                    "UPDATE jobs SET lease_owner = :o, lease_until = :u, lease_gen = lease_gen + 1"
                    " WHERE id = :j AND lease_owner = :d"
                ),
                {"o": owner, "u": time.time() + ttl, "j": job_id, "d": dead_owner},
            )
            if (result.rowcount or 0) != 1:
                return None
            return int(conn.execute(text("SELECT lease_gen FROM jobs WHERE id = :j"), {"j": job_id}).scalar_one())

    def renew_lease(self, conn: Connection, fence: Fence, ttl: float) -> bool:
        """Extend the lease if this holder (owner and generation) still has it: the fence check.

        Run in the transaction that records a side effect's intent, so the intent is written only
        while the lease is ours; a takeover in between waits for this transaction or wins before it.
        """
        result = conn.execute(
            text("UPDATE jobs SET lease_until = :u WHERE id = :j AND lease_owner = :o AND lease_gen = :g"),
            {"u": time.time() + ttl, "j": fence.job_id, "o": fence.owner, "g": fence.gen},
        )
        return (result.rowcount or 0) == 1

    def release_lease(self, job_id: str, owner: str) -> None:
        """Give the job up; this holder's calls have all returned, so none of its intents is in flight."""
        with self.tx() as conn:
            conn.execute(
                text("UPDATE batches SET owner = NULL WHERE job_id = :j AND owner = :o AND state = 'creating'"),
                {"j": job_id, "o": owner},
            )
            conn.execute(
                text("UPDATE jobs SET lease_owner = NULL, lease_until = NULL WHERE id = :j AND lease_owner = :o"),
                {"j": job_id, "o": owner},
            )

    def request_cancel(self, job_id: str) -> None:
        """Ask whichever process holds the job to cancel it at its next step."""
        with self.tx() as conn:
            conn.execute(text("UPDATE jobs SET cancel_requested = :t WHERE id = :j"), {"t": time.time(), "j": job_id})

    def jobs_with_fingerprint(self, fingerprint: str) -> list[Job]:
        """Jobs made by the same command (same options fingerprint), newest first."""
        with self.read() as conn:
            rows = conn.execute(
                text("SELECT * FROM jobs WHERE fingerprint = :f ORDER BY created_at DESC, id DESC"), {"f": fingerprint}
            ).mappings()
            return [Job.model_validate(dict(r)) for r in rows]

    def delete_job(self, job_id: str) -> None:
        """Remove a job that never got past packing (nothing was sent)."""
        with self.tx() as conn:
            for table in ("attempts", "batches", "shards", "items"):
                conn.execute(text(f"DELETE FROM {table} WHERE job_id = :j"), {"j": job_id})
            conn.execute(text("DELETE FROM jobs WHERE id = :j"), {"j": job_id})

    # ---- items and shards -------------------------------------------------------------------

    def add_shard(self, conn: Connection, shard: Shard) -> None:
        """Record a packed shard in the caller's transaction (its items are added as it is packed)."""
        conn.execute(text(_insert_sql("shards", _SHARD_COLUMNS)), shard.model_dump())
        _recount(conn, shard.job_id, shard.id)

    def add_items(self, conn: Connection, job_id: str, shard_id: str, items: Sequence[tuple[int, str]]) -> None:
        """Record new items (row, key) of a shard, each at attempt 1, in the caller's transaction."""
        queued = ItemState.QUEUED.value
        rows = [(job_id, row, key, queued, shard_id) for row, key in items]
        sql = "INSERT INTO items (job_id, row_index, key, state, attempts, shard_id) VALUES (?, ?, ?, ?, 1, ?)"
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            try:
                with conn.begin_nested():
                    _bulk(conn, sql, chunk)
            except (IntegrityError, *_driver_integrity_errors()) as exc:  # type: ignore[misc]  # a runtime tuple
                keyed = [{"k": key, "r": row} for (_job, row, key, _s, _sh) in chunk]
                raise self._duplicate_error(conn, job_id, keyed) from exc

    def _duplicate_error(self, conn: Connection, job_id: str, chunk: list[dict[str, Any]]) -> InputError:
        seen: dict[str, int] = {}
        for row in chunk:
            if row["k"] in seen:
                return _dup(row["k"], seen[row["k"]], row["r"])
            seen[row["k"]] = row["r"]
        found = conn.execute(
            text("SELECT key, row_index FROM items WHERE job_id = :j AND key IN :keys").bindparams(
                bindparam("keys", expanding=True)
            ),
            {"j": job_id, "keys": list(seen)},
        ).first()
        if found is None:
            return InputError("duplicate item ids in the input", hint="make the id column unique")
        return _dup(found[0], found[1], seen[found[0]])

    def requeue_items(self, conn: Connection, job_id: str, shard_id: str, rows: Sequence[int]) -> None:
        """Move retried items into a new shard and count the attempt (the shard is added with add_shard)."""
        sql = text(
            "UPDATE items SET state = :s, attempts = attempts + 1, shard_id = :sh WHERE job_id = :j AND row_index = :r"
        )
        params = [{"s": ItemState.QUEUED.value, "sh": shard_id, "j": job_id, "r": r} for r in rows]
        for start in range(0, len(params), CHUNK):
            conn.execute(sql, params[start : start + CHUNK])
        _recount(conn, job_id)  # the rows leave whichever shards held them

    def shard_attempts(self, job_id: str, shard_id: str) -> dict[int, int]:
        """Row → attempt of every item a shard carries (what its lines' custom ids hold)."""
        with self.read() as conn:
            rows = conn.execute(
                text("SELECT row_index, attempts FROM items WHERE job_id = :j AND shard_id = :s ORDER BY row_index"),
                {"j": job_id, "s": shard_id},
            )
            return {int(row): int(attempt) for row, attempt in rows}

    def retryable_rows(self, job_id: str) -> Iterator[int]:
        """Rows of failed-retryable items with attempts left, in input order."""
        with self.read() as conn:
            yield from conn.execute(
                text("SELECT row_index FROM items WHERE job_id = :j AND state = :s ORDER BY row_index"),
                {"j": job_id, "s": ItemState.FAILED_RETRYABLE.value},
            ).scalars()

    def item_attempts(self, job_id: str, rows: Sequence[int]) -> dict[int, int]:
        """Current attempt number of each of these rows."""
        out: dict[int, int] = {}
        sql = text("SELECT row_index, attempts FROM items WHERE job_id = :j AND row_index IN :rows").bindparams(
            bindparam("rows", expanding=True)
        )
        with self.read() as conn:
            for start in range(0, len(rows), 900):
                result = conn.execute(sql, {"j": job_id, "rows": list(rows[start : start + 900])})
                out.update((int(row), int(attempts)) for row, attempts in result)
        return out

    def shards(self, job_id: str) -> list[Shard]:
        with self.read() as conn:
            rows = conn.execute(text("SELECT * FROM shards WHERE job_id = :j ORDER BY seq"), {"j": job_id})
            return [Shard.model_validate(dict(r)) for r in rows.mappings()]

    def unsent_shards(self, job_id: str) -> list[Shard]:
        """Shards with no confirmed batch: never created, requeued, or created with an unknown outcome."""
        with self.read() as conn:
            rows = conn.execute(
                text(queries.UNSENT_SHARDS),
                {"j": job_id},
            )
            return [Shard.model_validate(dict(r)) for r in rows.mappings()]

    def next_shard_seq(self, conn: Connection, job_id: str) -> int:
        value = conn.execute(text("SELECT MAX(seq) FROM shards WHERE job_id = :j"), {"j": job_id}).scalar()
        return (value or 0) + 1

    # ---- batches ----------------------------------------------------------------------------

    def add_batch(self, batch: Batch) -> None:
        with self.tx() as conn:
            self.add_batch_in(conn, batch)

    def add_batch_in(self, conn: Connection, batch: Batch) -> None:
        """Record a batch row (a create intent) in the caller's (fenced) transaction."""
        conn.execute(text(_insert_sql("batches", _BATCH_COLUMNS)), batch.model_dump())

    def intent_with_batch(self, conn: Connection, batch_ids: Sequence[str]) -> str | None:
        """Which of these intents has a provider batch recorded now (rows locked until the caller commits)."""
        if not batch_ids:
            return None
        lock = " FOR UPDATE" if conn.dialect.name == "postgresql" else ""  # SQLite: BEGIN IMMEDIATE already
        sql = text(f"SELECT id FROM batches WHERE id IN :ids AND provider_batch_id IS NOT NULL{lock}").bindparams(
            bindparam("ids", expanding=True)
        )
        found = conn.execute(sql, {"ids": list(batch_ids)}).scalar()
        return None if found is None else str(found)

    def supersede_intents(self, conn: Connection, batch_ids: Sequence[str], reason: str) -> None:
        """Earlier create intents of a shard whose batch was never found: the shard is sent anew."""
        for batch_id in batch_ids:
            conn.execute(
                text("UPDATE batches SET state = 'requeued', error = :e WHERE id = :b AND state = 'creating'"),
                {"e": reason, "b": batch_id},
            )

    def touch_intent(self, conn: Connection, batch_id: str) -> None:
        """Restart an intent's in-flight window: its provider call is about to be made."""
        conn.execute(text("UPDATE batches SET intent_at = :t WHERE id = :b"), {"t": time.time(), "b": batch_id})

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
        with self.read() as conn:
            return {str(v) for v in conn.execute(sql, {"v": list(values)}).scalars()}

    def mark_duplicate(self, batch_id: str, kept: str) -> None:
        """A second provider batch for one shard: cancelled, never collected (the kept one answers)."""
        with self.tx() as conn:
            conn.execute(
                text(
                    "UPDATE batches SET state = 'cancelled', error_code = 'duplicate', error = :e,"
                    " collected_at = :t WHERE id = :b"
                ),
                {"e": f"a second batch for its shard; {kept} answers for it", "t": time.time(), "b": batch_id},
            )

    def update_batch(self, batch_id: str, **values: Any) -> None:
        sets = ", ".join(f"{k} = :{k}" for k in values)
        with self.tx() as conn:
            conn.execute(text(f"UPDATE batches SET {sets} WHERE id = :_id"), {**values, "_id": batch_id})

    def record_poll(self, batch_id: str, **values: Any) -> None:
        """A poll's view of a batch, unless its results are collected already (then it says no more)."""
        sets = ", ".join(f"{k} = :{k}" for k in values)
        with self.tx() as conn:
            conn.execute(
                text(f"UPDATE batches SET {sets} WHERE id = :_id AND collected_at IS NULL"), {**values, "_id": batch_id}
            )

    def mark_submitted(self, batch_id: str, shard_id: str, job_id: str, **values: Any) -> str | None:
        """Record a confirmed create and move the shard's queued items to submitted, atomically.

        A create's outcome is recorded whoever holds the lease now (it is a fact, not a side
        effect). Returns the provider id of another live or answered batch of the same shard, if
        one is recorded: then this batch is a duplicate.
        """
        sets = ", ".join(f"{k} = :{k}" for k in values)
        with self.tx() as conn:
            # Only an intent without a batch yet: a paused holder resuming after another holder
            # adopted (and perhaps collected) this very batch must not set it back to `validating`.
            conn.execute(
                text(f"UPDATE batches SET {sets} WHERE id = :_id AND provider_batch_id IS NULL"),
                {**values, "_id": batch_id},
            )
            conn.execute(
                text("UPDATE items SET state = :s WHERE job_id = :j AND shard_id = :sh AND state = :q"),
                {"s": ItemState.SUBMITTED.value, "j": job_id, "sh": shard_id, "q": ItemState.QUEUED.value},
            )
            _recount(conn, job_id, shard_id)
            other = conn.execute(
                text(
                    f"SELECT provider_batch_id FROM batches WHERE shard_id = :sh AND id <> :b AND {PRODUCTIVE}"
                    " ORDER BY created_at LIMIT 1"
                ),
                {"sh": shard_id, "b": batch_id},
            ).scalar()
        return None if other is None else str(other)

    def requeue_batch(self, batch_id: str, job_id: str, shard_id: str) -> None:
        """The batch produced no work (quota): its shard's items wait in the queue again."""
        with self.tx() as conn:
            conn.execute(
                text("UPDATE batches SET state = 'requeued', collected_at = :t WHERE id = :b"),
                {"t": time.time(), "b": batch_id},
            )
            conn.execute(
                text("UPDATE items SET state = 'queued' WHERE job_id = :j AND shard_id = :sh AND state = 'submitted'"),
                {"j": job_id, "sh": shard_id},
            )
            _recount(conn, job_id, shard_id)

    def batches(self, job_id: str, states: Iterable[str] | None = None) -> list[Batch]:
        sql = queries.BATCHES
        params: dict[str, Any] = {"j": job_id}
        if states is not None:
            wanted = list(states)
            sql += " AND state IN (" + ", ".join(f":s{i}" for i in range(len(wanted))) + ")"
            params.update({f"s{i}": s for i, s in enumerate(wanted)})
        with self.read() as conn:
            rows = conn.execute(text(sql + queries.BATCHES_ORDER), params).mappings()
            return [Batch.model_validate(dict(r)) for r in rows]

    def enqueued_bytes(self, provider: str, model: str, states: Sequence[str]) -> int:
        """Bytes of the shards of every job's batches in `states` for this provider and model."""
        marks = ", ".join(f":s{i}" for i in range(len(states)))
        with self.read() as conn:
            total = conn.execute(
                text(
                    "SELECT COALESCE(SUM(s.n_bytes), 0) FROM batches b JOIN jobs j ON j.id = b.job_id"
                    " JOIN shards s ON s.id = b.shard_id WHERE j.provider = :p AND j.model = :m"
                    f" AND b.state IN ({marks})"
                ),
                {"p": provider, "m": model, **{f"s{i}": state for i, state in enumerate(states)}},
            ).scalar()
        return int(total or 0)

    def batch_attempt_count(self, shard_id: str) -> int:
        with self.read() as conn:
            return int(
                conn.execute(text("SELECT COUNT(*) FROM batches WHERE shard_id = :s"), {"s": shard_id}).scalar() or 0
            )

    # ---- outcomes -----------------------------------------------------------------------------

    def record_outcomes(
        self, job_id: str, batch: Batch, outcomes: Iterable[ItemOutcome], max_attempts: int
    ) -> dict[str, int]:
        """Record every result line of a batch and settle its items, in one transaction.

        Lines for other jobs or for attempts this batch did not carry are ignored (counted as
        `foreign`); items of the shard with no line become failed-retryable (`missing_result`).
        """
        now = time.time()
        insert = (
            "INSERT INTO attempts (job_id, row_index, attempt, batch_id, outcome, output, finish_reason,"
            " input_tokens, output_tokens, cached_tokens, reasoning_tokens, error_type, error_code,"
            " error_message, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (job_id, row_index, attempt) DO NOTHING"
        )
        counts = {"lines": 0, "foreign": 0}
        with self.tx() as conn:
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
                    _bulk(conn, insert, chunk)
                    chunk = []
            _bulk(conn, insert, chunk)
            crashpoint("mid_record")
            self._settle_items(conn, job_id, batch, max_attempts, now)
            _mark_collected(conn, batch.id, now)
        return counts

    def _settle_items(self, conn: Connection, job_id: str, batch: Batch, max_attempts: int, now: float) -> None:
        params = {"j": job_id, "b": batch.id, "sh": batch.shard_id, "t": now}
        # Outcome of the item's current attempt, as carried by this batch.
        conn.execute(
            text(
                "UPDATE items SET state = a.outcome FROM attempts a"
                " WHERE a.job_id = items.job_id AND a.row_index = items.row_index"
                " AND a.attempt = items.attempts AND a.batch_id = :b"
                " AND items.job_id = :j AND items.shard_id = :sh"
            ),
            params,
        )
        # Items the batch carried but that came back without a line.
        conn.execute(
            text(
                "INSERT INTO attempts (job_id, row_index, attempt, batch_id, outcome, error_type, error_code,"
                " error_message, recorded_at) SELECT job_id, row_index, attempts, :b, 'failed_retryable',"
                " 'missing_result', 'missing_result', 'the provider returned no result line for this item',"
                " :t FROM items WHERE job_id = :j AND shard_id = :sh AND state IN ('queued', 'submitted')"
                " ON CONFLICT (job_id, row_index, attempt) DO NOTHING"
            ),
            params,
        )
        conn.execute(
            text(
                "UPDATE items SET state = 'failed_retryable' WHERE job_id = :j AND shard_id = :sh"
                " AND state IN ('queued', 'submitted')"
            ),
            params,
        )
        conn.execute(
            text(
                "UPDATE items SET state = 'dead' WHERE job_id = :j AND shard_id = :sh"
                " AND state = 'failed_retryable' AND attempts >= :m"
            ),
            {**params, "m": max_attempts},
        )
        _recount(conn, job_id, batch.shard_id)

    def fail_shard_items(
        self, job_id: str, batch: Batch, error_type: str, error_code: str, message: str, max_attempts: int
    ) -> None:
        """Every item of a batch that failed as a whole gets the batch's error on its attempt."""
        now = time.time()
        params = {"j": job_id, "b": batch.id, "sh": batch.shard_id, "t": now}
        with self.tx() as conn:
            conn.execute(
                text(
                    "INSERT INTO attempts (job_id, row_index, attempt, batch_id, outcome, error_type,"
                    " error_code, error_message, recorded_at) SELECT job_id, row_index, attempts, :b,"
                    " 'failed_retryable', :et, :ec, :em, :t FROM items WHERE job_id = :j AND shard_id = :sh"
                    " AND state IN ('queued', 'submitted') ON CONFLICT (job_id, row_index, attempt) DO NOTHING"
                ),
                {**params, "et": error_type, "ec": error_code, "em": message},
            )
            conn.execute(
                text(
                    "UPDATE items SET state = 'failed_retryable' WHERE job_id = :j AND shard_id = :sh"
                    " AND state IN ('queued', 'submitted')"
                ),
                params,
            )
            conn.execute(
                text(
                    "UPDATE items SET state = 'dead' WHERE job_id = :j AND shard_id = :sh"
                    " AND state = 'failed_retryable' AND attempts >= :m"
                ),
                {**params, "m": max_attempts},
            )
            _recount(conn, job_id, batch.shard_id)
            _mark_collected(conn, batch.id, now)

    def mark_dead(self, job_id: str, max_attempts: int) -> int:
        """Failed-retryable items out of attempts become dead; returns how many."""
        with self.tx() as conn:
            result = conn.execute(
                text(
                    "UPDATE items SET state = 'dead' WHERE job_id = :j AND state = 'failed_retryable'"
                    " AND attempts >= :m"
                ),
                {"j": job_id, "m": max_attempts},
            )
            changed = result.rowcount or 0
            if changed:
                _recount(conn, job_id)
            return changed

    def calibration(self, provider: str, model: str, emulated: bool) -> tuple[float | None, float | None]:
        """(chars per input token, mean output tokens per success) from this database's past jobs.

        Only jobs of the same kind count: the emulator's token counts are not a real tokenizer's.
        Characters are per item and tokens per successful attempt, so retries and failures do not
        skew the ratio.
        """
        with self.read() as conn:
            row = conn.execute(
                text(
                    "SELECT SUM(j.prompt_chars), SUM(j.n_items), SUM(t.input_tokens), SUM(t.n_ok), SUM(t.output_tokens)"
                    " FROM jobs j JOIN (SELECT job_id, SUM(input_tokens) AS input_tokens,"
                    " SUM(output_tokens) AS output_tokens, COUNT(*) AS n_ok FROM attempts"
                    " WHERE outcome = 'succeeded' AND input_tokens IS NOT NULL GROUP BY job_id) t ON t.job_id = j.id"
                    " WHERE j.provider = :p AND j.model = :m AND j.emulated = :e AND j.prompt_chars IS NOT NULL"
                    " AND j.n_items > 0"
                ),
                {"p": provider, "m": model, "e": emulated},
            ).one()
        # PostgreSQL's SUM of integers is NUMERIC (decimal.Decimal): every figure becomes a float first.
        chars, n_items, tokens, n_ok, out_tokens = (None if v is None else float(v) for v in row)
        per_token = (chars / n_items) / (tokens / n_ok) if chars and n_items and tokens and n_ok else None
        per_item = out_tokens / n_ok if out_tokens is not None and n_ok else None
        return per_token, per_item

    def token_totals(self, job_id: str) -> dict[str, int]:
        """Billed tokens over every attempt of a job (all attempts are billed, not only the last)."""
        with self.read() as conn:
            row = conn.execute(
                text(
                    "SELECT COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0),"
                    " COALESCE(SUM(cached_tokens), 0), COUNT(input_tokens) FROM attempts WHERE job_id = :j"
                ),
                {"j": job_id},
            ).one()
        return {
            "input_tokens": int(row[0]),
            "output_tokens": int(row[1]),
            "cached_tokens": int(row[2]),
            "n": int(row[3]),
        }

    def stats_rows(self, job_ids: Sequence[str]) -> dict[str, Any]:
        """Raw figures for `stats`: batch latencies, attempt outcomes by error code, item states."""
        if not job_ids:
            return {"latencies": [], "outcomes": [], "states": {}, "span": (None, None)}
        ids = {"ids": list(job_ids)}
        with self.read() as conn:
            latencies = [
                float(r[0])
                for r in conn.execute(
                    text(
                        "SELECT ended_at - created_at FROM batches WHERE job_id IN :ids"
                        " AND ended_at IS NOT NULL AND created_at IS NOT NULL"
                    ).bindparams(bindparam("ids", expanding=True)),
                    ids,
                )
            ]
            outcomes = [
                (o, c, int(n))
                for o, c, n in conn.execute(
                    text(
                        "SELECT outcome, COALESCE(error_code, ''), COUNT(*) FROM attempts WHERE job_id IN :ids"
                        " GROUP BY outcome, COALESCE(error_code, '') ORDER BY 3 DESC"
                    ).bindparams(bindparam("ids", expanding=True)),
                    ids,
                )
            ]
            states = {
                s: int(n)
                for s, n in conn.execute(
                    text("SELECT state, COUNT(*) FROM items WHERE job_id IN :ids GROUP BY state").bindparams(
                        bindparam("ids", expanding=True)
                    ),
                    ids,
                )
            }
            span = conn.execute(
                text("SELECT MIN(created_at), MAX(ended_at) FROM batches WHERE job_id IN :ids").bindparams(
                    bindparam("ids", expanding=True)
                ),
                ids,
            ).one()
        return {"latencies": latencies, "outcomes": outcomes, "states": states, "span": tuple(span)}

    # ---- reads for status and merge -----------------------------------------------------------

    def item_counts(self, job_id: str) -> dict[str, int]:
        with self.read() as conn:
            rows = conn.execute(text(queries.ITEM_COUNTS), {"j": job_id})
            return {state: int(n) for state, n in rows}

    def usage_totals(self, job_id: str) -> dict[str, int]:
        """Tokens and attempts of the job's collected batches (sums kept per batch at collect)."""
        with self.read() as conn:
            row = conn.execute(text(queries.USAGE), {"j": job_id}).one()
        return {"input_tokens": int(row[0]), "output_tokens": int(row[1]), "attempts": int(row[2])}

    def error_counts(self, job_id: str) -> list[tuple[str, str, int]]:
        """(state, error code, count) for items that are not succeeded, largest first."""
        with self.read() as conn:
            rows = conn.execute(text(queries.ERROR_COUNTS), {"j": job_id})
            return [(s, c, int(n)) for s, c, n in rows]

    def items_in_state(self, job_id: str, state: str, limit: int | None = None) -> list[dict[str, Any]]:
        sql = queries.ITEMS_IN_STATE
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self.read() as conn:
            return [dict(r) for r in conn.execute(text(sql), {"j": job_id, "s": state}).mappings()]

    def shard_rows(self, shard_id: str) -> list[int]:
        with self.read() as conn:
            return list(
                conn.execute(
                    text("SELECT row_index FROM items WHERE shard_id = :s ORDER BY row_index"),
                    {"s": shard_id},
                ).scalars()
            )

    def merged_rows(self, job_id: str) -> Iterator[tuple[Any, ...]]:
        """Per item in input order: row, key, state, attempts and the current attempt's outcome."""
        sql = text(
            "SELECT i.row_index, i.key, i.state, i.attempts, a.output, a.finish_reason, a.input_tokens,"
            " a.output_tokens, a.error_type, a.error_code, a.error_message, a.cached_tokens FROM items i"
            " LEFT JOIN attempts a ON a.job_id = i.job_id AND a.row_index = i.row_index"
            " AND a.attempt = i.attempts WHERE i.job_id = :j ORDER BY i.row_index"
        )
        with self.engine.connect() as conn:
            conn = conn.execution_options(**{READ_OPTION: True}, stream_results=True, yield_per=5000)
            with conn.begin():
                for chunk in conn.execute(sql, {"j": job_id}).partitions():
                    yield from chunk


def _dup(key: str, first_row: int, second_row: int) -> InputError:
    return InputError(
        f"duplicate id {key!r} at rows {first_row + 1} and {second_row + 1}",
        hint="ids must be unique; fix the id column or drop --id-column to use row numbers",
    )


def _attempt_params(job_id: str, row: int, attempt: int, batch_id: str, o: ItemOutcome, now: float) -> tuple[Any, ...]:
    return (
        job_id, row, attempt, batch_id, o.outcome.value, o.output, o.finish_reason, o.input_tokens,
        o.output_tokens, o.cached_tokens, o.reasoning_tokens, o.error_type, o.error_code, o.error_message, now,
    )  # fmt: skip


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


def _mark_collected(conn: Connection, batch_id: str, now: float) -> None:
    """The batch's results are recorded: stamp it and keep its usage sums."""
    conn.execute(
        text(f"UPDATE batches SET collected_at = :t, {BATCH_USAGE_SET} WHERE id = :b"), {"t": now, "b": batch_id}
    )


def _recount(conn: Connection, job_id: str, shard_id: str | None = None) -> None:
    """Bring `item_counts` up to date for one shard of a job (or the whole job) after its items changed."""
    where = " WHERE job_id = :j" + (" AND shard_id = :sh" if shard_id is not None else "")
    params = {"j": job_id, "sh": shard_id}
    conn.execute(text(f"DELETE FROM item_counts{where}"), params)
    counted = item_counts_select(where)
    conn.execute(text(f"INSERT INTO item_counts (job_id, shard_id, state, error_code, n) {counted}"), params)
