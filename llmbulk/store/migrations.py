"""Append-only named migrations, each applied in one transaction together with its record.

Never edit a migration that has shipped: add a new one. The DDL is plain SQL that SQLite and
PostgreSQL both accept, so there is no per-dialect migration code. A database that records a
migration this llmbulk does not know was written by a newer version and is refused, unless the
name is a known earlier name of a migration (`ALIASES`): those databases are upgraded in place.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Connection, inspect, text

from llmbulk.errors import StateError

Migration = Callable[[Connection], None]

_INITIAL = [
    """CREATE TABLE jobs (
        id VARCHAR NOT NULL PRIMARY KEY,
        created_at FLOAT NOT NULL,
        provider VARCHAR NOT NULL,
        model VARCHAR NOT NULL,
        endpoint VARCHAR,
        input_path VARCHAR NOT NULL,
        input_format VARCHAR NOT NULL,
        input_sha256 VARCHAR,
        id_column VARCHAR,
        spec_json VARCHAR NOT NULL,
        emulated BOOLEAN NOT NULL,
        max_attempts INTEGER NOT NULL,
        max_items INTEGER NOT NULL,
        max_bytes BIGINT NOT NULL,
        n_items INTEGER NOT NULL,
        state VARCHAR NOT NULL,
        out_path VARCHAR,
        lease_owner VARCHAR,
        lease_until FLOAT
    )""",
    """CREATE TABLE items (
        job_id VARCHAR NOT NULL,
        row_index INTEGER NOT NULL,
        key VARCHAR NOT NULL,
        state VARCHAR NOT NULL,
        attempts INTEGER NOT NULL,
        shard_id VARCHAR,
        PRIMARY KEY (job_id, row_index)
    )""",
    "CREATE INDEX ix_items_job_state ON items (job_id, state)",
    "CREATE UNIQUE INDEX ux_items_job_key ON items (job_id, key)",
    "CREATE INDEX ix_items_job_shard ON items (job_id, shard_id)",
    """CREATE TABLE shards (
        id VARCHAR NOT NULL PRIMARY KEY,
        job_id VARCHAR NOT NULL,
        seq INTEGER NOT NULL,
        round INTEGER NOT NULL,
        path VARCHAR NOT NULL,
        sha256 VARCHAR NOT NULL,
        n_items INTEGER NOT NULL,
        n_bytes BIGINT NOT NULL,
        created_at FLOAT NOT NULL
    )""",
    "CREATE INDEX ix_shards_job ON shards (job_id, seq)",
    """CREATE TABLE batches (
        id VARCHAR NOT NULL PRIMARY KEY,
        job_id VARCHAR NOT NULL,
        shard_id VARCHAR NOT NULL,
        provider_batch_id VARCHAR,
        input_file_id VARCHAR,
        state VARCHAR NOT NULL,
        raw_status VARCHAR,
        total INTEGER,
        completed INTEGER,
        failed INTEGER,
        error VARCHAR,
        error_code VARCHAR,
        result_refs_json VARCHAR,
        intent_at FLOAT NOT NULL,
        created_at FLOAT,
        ended_at FLOAT,
        polled_at FLOAT,
        collected_at FLOAT,
        raw_json VARCHAR
    )""",
    "CREATE INDEX ix_batches_job_state ON batches (job_id, state)",
    "CREATE INDEX ix_batches_shard ON batches (shard_id)",
    """CREATE TABLE attempts (
        job_id VARCHAR NOT NULL,
        row_index INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        batch_id VARCHAR NOT NULL,
        outcome VARCHAR NOT NULL,
        output VARCHAR,
        finish_reason VARCHAR,
        input_tokens INTEGER,
        output_tokens INTEGER,
        cached_tokens INTEGER,
        reasoning_tokens INTEGER,
        error_type VARCHAR,
        error_code VARCHAR,
        error_message VARCHAR,
        recorded_at FLOAT NOT NULL,
        PRIMARY KEY (job_id, row_index, attempt)
    )""",
    "CREATE INDEX ix_attempts_batch ON attempts (batch_id)",
]


def _initial(conn: Connection) -> None:
    for statement in _INITIAL:
        conn.execute(text(statement))


def _job_estimates(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE jobs ADD COLUMN prompt_chars BIGINT"))
    conn.execute(text("ALTER TABLE jobs ADD COLUMN estimate_json VARCHAR"))


def _status_speed(conn: Connection) -> None:
    """What `status` reads stays small on a million-item job.

    Token sums per batch, so a job's usage is a sum over its batches, not over every attempt; and
    the items-by-state index carries row_index, so "the first dead items" is an index range read
    instead of a walk through the whole job in row order. A database from the release that named
    this migration `0003_batch_usage` already has the usage columns: only the index is rebuilt.
    """
    if "0003_batch_usage" not in applied(conn):
        for column in ("input_tokens BIGINT", "output_tokens BIGINT", "attempts_recorded INTEGER"):
            conn.execute(text(f"ALTER TABLE batches ADD COLUMN {column}"))
        conn.execute(text(f"UPDATE batches SET {BATCH_USAGE_SET} WHERE collected_at IS NOT NULL"))
    conn.execute(text("DROP INDEX ix_items_job_state"))
    conn.execute(text("CREATE INDEX ix_items_job_state ON items (job_id, state, row_index)"))


def _item_counts(conn: Connection) -> None:
    """Item counts per shard, state and last error code, kept up to date by the store's writes.

    `status` on a million-item job then sums a few rows per shard instead of counting every item
    and joining every failed one to its last attempt; the store recounts a shard (an index range
    on job, shard, state) whenever it changes that shard's items.
    """
    conn.execute(
        text(
            "CREATE TABLE item_counts (job_id VARCHAR NOT NULL, shard_id VARCHAR NOT NULL, state VARCHAR NOT NULL,"
            " error_code VARCHAR NOT NULL, n BIGINT NOT NULL, PRIMARY KEY (job_id, shard_id, state, error_code))"
        )
    )
    conn.execute(text("DROP INDEX ix_items_job_shard"))
    conn.execute(text("CREATE INDEX ix_items_job_shard ON items (job_id, shard_id, state)"))
    counted = item_counts_select(" WHERE job_id IS NOT NULL")
    conn.execute(text(f"INSERT INTO item_counts (job_id, shard_id, state, error_code, n) {counted}"))


def _fencing(conn: Connection) -> None:
    """Fenced leases, job fingerprints and cancel requests (never pay twice in everyday use).

    `lease_gen` is the fencing token: every takeover of a job's lease increments it, and every side
    effect is preceded by a check of (owner, generation) in the transaction that records its intent.
    Each create intent records the lease holder that wrote it, so another holder can tell whose
    in-flight call it may be. `fingerprint` finds the job a rerun of the same command continues.
    """
    conn.execute(text("ALTER TABLE jobs ADD COLUMN lease_gen BIGINT NOT NULL DEFAULT 0"))
    conn.execute(text("ALTER TABLE jobs ADD COLUMN fingerprint VARCHAR"))
    conn.execute(text("ALTER TABLE jobs ADD COLUMN cancel_requested FLOAT"))
    conn.execute(text("CREATE INDEX ix_jobs_fingerprint ON jobs (fingerprint)"))
    conn.execute(text("ALTER TABLE batches ADD COLUMN owner VARCHAR"))
    conn.execute(text("CREATE INDEX ix_batches_provider_id ON batches (provider_batch_id)"))
    conn.execute(text("CREATE INDEX ix_batches_input_file ON batches (input_file_id)"))


def _reuse(conn: Connection) -> None:
    """Never pay twice across jobs: request keys, in-job followers and the answers table.

    An item's `request_key` is the hash of what it sends; an item whose request an earlier row of
    the same job sends too records that row as `leader_row` and takes its answer. `answers` points,
    per request key, at the succeeded attempt holding its answer (stored once, in `attempts`);
    attempts copied from another item carry `reused_from` and are not billed.
    """
    conn.execute(text("ALTER TABLE items ADD COLUMN request_key VARCHAR"))
    conn.execute(text("ALTER TABLE items ADD COLUMN leader_row INTEGER"))
    conn.execute(text("ALTER TABLE attempts ADD COLUMN reused_from VARCHAR"))
    conn.execute(
        text(
            """CREATE TABLE answers (
        request_key VARCHAR NOT NULL PRIMARY KEY,
        job_id VARCHAR NOT NULL,
        row_index INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        created_at FLOAT NOT NULL
    )"""
        )
    )
    conn.execute(text("CREATE INDEX ix_answers_job ON answers (job_id)"))


def _attachments(conn: Connection) -> None:
    """Attachments uploaded once per provider account and content hash (#22), intent first.

    A row without `file_id` is an upload intent by `owner`: a crash after it leaves the row, and the
    next run finds the file at the provider by its name (the hash) and size before uploading again.
    """
    conn.execute(
        text(
            """CREATE TABLE attachment_files (
        account VARCHAR NOT NULL,
        sha256 VARCHAR NOT NULL,
        media_type VARCHAR NOT NULL,
        size BIGINT NOT NULL,
        file_id VARCHAR,
        file_uri VARCHAR,
        expires_at FLOAT,
        intent_at FLOAT NOT NULL,
        owner VARCHAR NOT NULL,
        uploaded_at FLOAT,
        used_at FLOAT,
        PRIMARY KEY (account, sha256)
    )"""
        )
    )


def _capacity(conn: Connection) -> None:
    """Capacity scopes shared by every runner of the database (issue #21).

    `capacity_scopes`: one row per provider account and model, holding the limits set with
    `llmbulk limits set` (NULL: the provider's default) and the observed limits a quota refusal
    lowered; the row is also what a reservation locks. `capacity_grants`: the reservation each
    create intent made, released when its batch leaves the live states. `capacity_waits`: a job's
    next shard waiting for room, in the durable queue the scopes are served from.
    """
    conn.execute(
        text(
            """CREATE TABLE capacity_scopes (
        scope VARCHAR NOT NULL PRIMARY KEY,
        provider VARCHAR NOT NULL,
        account VARCHAR NOT NULL,
        model VARCHAR NOT NULL,
        enqueued_tokens BIGINT,
        active_batches INTEGER,
        creations_per_hour INTEGER,
        files INTEGER,
        observed_tokens BIGINT,
        observed_batches INTEGER,
        observed_at FLOAT,
        blocked_until FLOAT,
        updated_at FLOAT NOT NULL
    )"""
        )
    )
    conn.execute(
        text(
            """CREATE TABLE capacity_grants (
        batch_id VARCHAR NOT NULL PRIMARY KEY,
        scope VARCHAR NOT NULL,
        job_id VARCHAR NOT NULL,
        shard_id VARCHAR NOT NULL,
        tokens BIGINT NOT NULL,
        granted_at FLOAT NOT NULL
    )"""
        )
    )
    conn.execute(text("CREATE INDEX ix_capacity_grants_scope ON capacity_grants (scope, job_id)"))
    conn.execute(
        text(
            """CREATE TABLE capacity_waits (
        scope VARCHAR NOT NULL,
        job_id VARCHAR NOT NULL,
        shard_id VARCHAR NOT NULL,
        tokens BIGINT NOT NULL,
        priority INTEGER NOT NULL,
        submitted_at FLOAT NOT NULL,
        since FLOAT NOT NULL,
        seen_at FLOAT NOT NULL,
        PRIMARY KEY (scope, job_id)
    )"""
        )
    )


FAILED_STATES = "('failed_retryable', 'failed_permanent', 'dead')"


def item_counts_select(where: str) -> str:
    """Items counted per (job, shard, state, last error code); `where` filters on job_id / shard_id.

    Two parts, so that only failed items are joined to their last attempt: the rest are counted
    from the rows the (job, shard) index finds.
    """
    joined = where.replace("job_id", "i.job_id").replace("shard_id", "i.shard_id")
    return (
        f"SELECT job_id, shard_id, state, '', COUNT(*) FROM items{where} AND state NOT IN {FAILED_STATES}"
        " GROUP BY job_id, shard_id, state UNION ALL"
        " SELECT i.job_id, i.shard_id, i.state, COALESCE(a.error_code, a.error_type, ''), COUNT(*) FROM items i"
        " LEFT JOIN attempts a ON a.job_id = i.job_id AND a.row_index = i.row_index AND a.attempt = i.attempts"
        f"{joined} AND i.state IN {FAILED_STATES}"
        " GROUP BY i.job_id, i.shard_id, i.state, COALESCE(a.error_code, a.error_type, '')"
    )


# Recomputes a batch's usage columns from its attempts (ix_attempts_batch); `batches.id` is the batch.
BATCH_USAGE_SET = (
    "input_tokens = (SELECT COALESCE(SUM(a.input_tokens), 0) FROM attempts a WHERE a.batch_id = batches.id),"
    " output_tokens = (SELECT COALESCE(SUM(a.output_tokens), 0) FROM attempts a WHERE a.batch_id = batches.id),"
    " attempts_recorded = (SELECT COUNT(*) FROM attempts a WHERE a.batch_id = batches.id)"
)


def _hygiene(conn: Connection) -> None:
    """Provider hygiene: when a batch's files at the provider were deleted after use (`jobs/cleanup.py`).

    A batch whose input and result files are dealt with is not asked about again by a later collect.
    """
    conn.execute(text("ALTER TABLE batches ADD COLUMN files_deleted_at FLOAT"))


# A batch's billed usage kept when it is collected (`unit.BATCH_USAGE` keeps it current).
_LEAN_USAGE_SET = (
    "cached_tokens = (SELECT COALESCE(SUM(a.cached_tokens), 0) FROM attempts a"
    " WHERE a.batch_id = batches.id AND a.reused_from IS NULL),"
    " usage_attempts = (SELECT COUNT(a.input_tokens) FROM attempts a"
    " WHERE a.batch_id = batches.id AND a.reused_from IS NULL)"
)


def _lean_items(conn: Connection) -> None:
    """Fewer index writes per item (issue #23), and `cost` read from batch sums.

    Only the shard index holds every item's `state` (it makes a shard's counts an index-only
    read): moving a shard's items to submitted or settled rewrote two index entries per item.
    Failed items (what retry, mark-dead and `items --state dead` look for) keep a partial index;
    queries name its predicate (`queries.failed()`) so SQLite and PostgreSQL both use it. A batch
    keeps its cached tokens and how many of its attempts carried usage, so a job's billed totals
    are a sum over its batches; copied answers (`reused_from`) get a partial index of their own.
    """
    conn.execute(text("DROP INDEX ix_items_job_state"))
    conn.execute(
        text(
            "CREATE INDEX ix_items_job_failed ON items (job_id, state, row_index)"
            " WHERE (state = 'failed_retryable' OR state = 'failed_permanent' OR state = 'dead')"
        )
    )
    conn.execute(text("CREATE INDEX ix_attempts_reused ON attempts (job_id) WHERE reused_from IS NOT NULL"))
    conn.execute(text("ALTER TABLE batches ADD COLUMN cached_tokens BIGINT"))
    conn.execute(text("ALTER TABLE batches ADD COLUMN usage_attempts BIGINT"))
    conn.execute(text(f"UPDATE batches SET {_LEAN_USAGE_SET} WHERE collected_at IS NOT NULL"))


def _shard_index(conn: Connection) -> None:
    """The shard index no longer holds `state` (issue #23).

    Moving a shard's items to submitted, then to their outcomes, rewrote an index entry per item
    each time; now only the rows change. A shard's counts read its rows through the index instead
    of the index alone, and submitting a shard shifts its counts instead of recounting them.
    """
    conn.execute(text("DROP INDEX ix_items_job_shard"))
    conn.execute(text("CREATE INDEX ix_items_job_shard ON items (job_id, shard_id)"))


def _answer_keys(conn: Connection) -> None:
    """An answer keeps the item key of the row that was sent (issues #19 and #23).

    Finding an earlier answer read three tables per hit: answers, the attempt holding it, and the
    sent item for its key (what the reused rows' `reused_from` names). The key now comes with the
    answer. (A WITHOUT ROWID answers table was measured too: lookups 1 us a key faster, recording
    2 s per million answers slower, so the table stays as it is.)
    """
    conn.execute(text("ALTER TABLE answers ADD COLUMN item_key VARCHAR"))
    conn.execute(
        text(
            "UPDATE answers SET item_key = (SELECT i.key FROM items i"
            " WHERE i.job_id = answers.job_id AND i.row_index = answers.row_index)"
        )
    )


MIGRATIONS: list[tuple[str, Migration]] = [
    ("0001_initial", _initial),
    ("0002_job_estimates", _job_estimates),
    ("0003_status_speed", _status_speed),
    ("0004_item_counts", _item_counts),
    ("0005_fencing", _fencing),
    ("0006_reuse", _reuse),
    ("0007_attachments", _attachments),
    ("0008_capacity", _capacity),
    ("0009_hygiene", _hygiene),
    ("0010_lean_items", _lean_items),
    ("0011_shard_index", _shard_index),
    ("0012_answer_keys", _answer_keys),
]

# Names an earlier release of llmbulk recorded for a migration that was later renamed: such a
# database is not "from a newer llmbulk", and the renamed migration completes what is missing.
ALIASES = {"0003_batch_usage": "0003_status_speed"}


def _ensure_record_table(conn: Connection) -> None:
    if not inspect(conn).has_table("schema_migrations"):
        conn.execute(
            text("CREATE TABLE schema_migrations (name VARCHAR NOT NULL PRIMARY KEY, applied_at FLOAT NOT NULL)")
        )


def applied(conn: Connection) -> set[str]:
    """Names of migrations recorded in this database."""
    if not inspect(conn).has_table("schema_migrations"):
        return set()
    return {row[0] for row in conn.execute(text("SELECT name FROM schema_migrations"))}


def pending(conn: Connection) -> list[str]:
    """Names of known migrations not yet applied."""
    done = applied(conn)
    return [name for name, _ in MIGRATIONS if name not in done]


def check_not_newer(conn: Connection, where: str) -> None:
    """Refuse a database written by a newer llmbulk."""
    known = {name for name, _ in MIGRATIONS} | set(ALIASES)
    unknown = sorted(applied(conn) - known)
    if unknown:
        raise StateError(
            f"state database {where} has schema {unknown[-1]} from a newer llmbulk",
            hint="upgrade llmbulk (pip install -U llmbulk) or point --db at another database",
        )


def migrate(conn: Connection) -> list[str]:
    """Apply pending migrations in order, each in its own transaction; returns their names."""
    names: list[str] = []
    for name, migration in MIGRATIONS:
        with conn.begin():
            _ensure_record_table(conn)
            if name in applied(conn):
                continue
            migration(conn)
            conn.execute(
                text("INSERT INTO schema_migrations (name, applied_at) VALUES (:n, :t)"),
                {"n": name, "t": time.time()},
            )
        names.append(name)
    return names
