"""The read queries of the light commands, as plain SQL shared by the store and the quick reader.

Portable SQL (SQLite and PostgreSQL) with `:name` parameters. Kept free of SQLAlchemy so that
`llmbulk status`, `jobs`, `items` and `cost` can run them through the database driver alone (see
`quick.py`).
"""

from __future__ import annotations

# The migrations a database must have applied, exactly, for these queries to apply as written.
SCHEMA = (
    "0001_initial", "0002_job_estimates", "0003_status_speed", "0004_item_counts", "0005_fencing", "0006_reuse",
    "0007_attachments", "0008_capacity", "0009_hygiene", "0010_lean_items", "0011_shard_index",
    "0012_answer_keys",
)  # fmt: skip

FAILED = ("failed_retryable", "failed_permanent", "dead")


def failed(column: str = "state") -> str:
    """The predicate of the partial index of failed items (`ix_items_job_failed`), on `column`.

    A query that wants that index names this predicate word for word: both SQLite and PostgreSQL
    then use it. An OR chain, not `IN (…)`: SQLite builds an IN list's lookup table anew for every
    row an executemany inserts (+2 s of CPU per million items packed).
    """
    return "(" + " OR ".join(f"{column} = '{state}'" for state in FAILED) + ")"


JOB = "SELECT * FROM jobs WHERE id = :j"
JOBS = "SELECT * FROM jobs ORDER BY created_at DESC, id DESC LIMIT :n"
BATCHES = "SELECT * FROM batches WHERE job_id = :j"
BATCHES_ORDER = " ORDER BY intent_at, id"
ITEM_COUNTS = "SELECT state, SUM(n) FROM item_counts WHERE job_id = :j GROUP BY state HAVING SUM(n) > 0"
USAGE = (
    "SELECT COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0),"
    " COALESCE(SUM(attempts_recorded), 0) FROM batches WHERE job_id = :j"
)
ERROR_COUNTS = (
    "SELECT state, error_code, SUM(n) FROM item_counts WHERE job_id = :j"
    " AND state IN ('failed_retryable', 'failed_permanent', 'dead') GROUP BY state, error_code"
    " HAVING SUM(n) > 0 ORDER BY 3 DESC, 1, 2"
)
_ITEMS_IN_STATE = (
    "SELECT i.row_index, i.key, i.state, i.attempts, a.error_type, a.error_code, a.error_message"
    " FROM items i LEFT JOIN attempts a ON a.job_id = i.job_id AND a.row_index = i.row_index"
    " AND a.attempt = i.attempts WHERE i.job_id = :j AND i.state = :s{failed} ORDER BY i.row_index"
)


def items_in_state(state: str) -> str:
    """A job's items in `state` (`:j`, `:s`), in row order; failed states read the partial index."""
    return _ITEMS_IN_STATE.format(failed=f" AND {failed('i.state')}" if state in FAILED else "")


UNSENT_SHARDS = (
    "SELECT s.* FROM shards s WHERE s.job_id = :j AND NOT EXISTS ("
    " SELECT 1 FROM batches b WHERE b.shard_id = s.id AND b.state NOT IN ('requeued', 'creating'))"
    " ORDER BY s.seq"
)
# Billed tokens: the sums each batch keeps when collected (answers taken from another item were
# not sent, not billed, and are not in them).
TOKEN_TOTALS = (
    "SELECT COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0),"
    " COALESCE(SUM(cached_tokens), 0), COALESCE(SUM(usage_attempts), 0) FROM batches WHERE job_id = :j"
)
# Tokens of the answers taken without sending (from earlier jobs or repeated rows; ix_attempts_reused).
REUSED_TOTALS = (
    "SELECT COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0),"
    " COALESCE(SUM(cached_tokens), 0), COUNT(input_tokens), COUNT(*) FROM attempts"
    " WHERE job_id = :j AND reused_from IS NOT NULL AND outcome = 'succeeded'"
)
MIGRATIONS_APPLIED = "SELECT name FROM schema_migrations"


def token_totals(row: tuple[int, ...]) -> dict[str, int]:
    """A `TOKEN_TOTALS` row as the store and the quick reader hand it out."""
    return {"input_tokens": int(row[0]), "output_tokens": int(row[1]), "cached_tokens": int(row[2]), "n": int(row[3])}


def reused_totals(row: tuple[int, ...]) -> dict[str, int]:
    """A `REUSED_TOTALS` row as the store and the quick reader hand it out."""
    return {**token_totals(row), "items": int(row[4])}
