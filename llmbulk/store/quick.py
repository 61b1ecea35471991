"""`llmbulk status` without SQLAlchemy: the status queries through the database driver alone.

Importing SQLAlchemy and SQLModel takes ~0.3 s, more than the whole budget for `status` on a
million-item job, whose queries take ~0.08 s. This reader opens the database with its DB-API
driver (sqlite3, or psycopg for PostgreSQL), checks the schema is exactly the one this llmbulk
migrates to, and runs the same SQL as the store (`queries.py`). Anything unusual (no database
yet, an older or newer schema, another kind of URL, a driver error) returns None, and the caller
takes the full path, which migrates or explains the problem.
"""

from __future__ import annotations

import re
from contextlib import closing
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from llmbulk.store import queries
from llmbulk.views import JobStatus, batch_view

_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_DEAD_SHOWN = 20


def read_status(db_url: str, job_id: str) -> JobStatus | None:
    """The job's status read straight from the database, or None to take the full path."""
    try:
        connection = _connect(db_url)
    except Exception:  # missing driver, unreachable server, unusual URL: the full path explains
        return None
    if connection is None:
        return None
    connect, style = connection
    try:
        with closing(connect) as conn:
            return _read(conn, style, job_id)
    except Exception:
        return None


def _connect(db_url: str) -> tuple[Any, str] | None:
    if db_url.startswith("sqlite:///"):
        import sqlite3

        path = Path(db_url.removeprefix("sqlite:///").split("?", 1)[0])
        if not path.is_file():
            return None  # a new state directory: the full path creates and migrates it
        return sqlite3.connect(path, timeout=10), "named"
    if db_url.startswith(("postgresql+psycopg://", "postgresql://")):
        import psycopg

        return psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://", 1)), "pyformat"
    return None


def _read(conn: Any, style: str, job_id: str) -> JobStatus | None:
    def query(sql: str, **params: Any) -> tuple[list[str], list[tuple[Any, ...]]]:
        cursor = conn.cursor()
        cursor.execute(_NAMED.sub(r"%(\1)s", sql) if style == "pyformat" else sql, params)
        return [column[0] for column in cursor.description], cursor.fetchall()

    def records(sql: str, **params: Any) -> list[dict[str, Any]]:
        names, found = query(sql, **params)
        return [dict(zip(names, row, strict=True)) for row in found]

    if {name for (name,) in query(queries.MIGRATIONS_APPLIED)[1]} != set(queries.SCHEMA):
        return None  # not yet migrated, or written by another llmbulk version
    jobs = records(queries.JOB, j=job_id)
    if not jobs:
        return None  # the full path says "no job …"
    job = SimpleNamespace(**jobs[0])
    job.emulated = bool(job.emulated)
    # Providers that hide progress have `completed` recorded as NULL until the end, so counts are
    # known exactly where a count was recorded; no provider module needs importing to tell.
    batches = [
        batch_view(SimpleNamespace(**b), True) for b in records(queries.BATCHES + queries.BATCHES_ORDER, j=job_id)
    ]
    usage = query(queries.USAGE, j=job_id)[1][0]
    return JobStatus(
        job=job,
        counts={state: int(n) for state, n in query(queries.ITEM_COUNTS, j=job_id)[1]},
        batches=batches,
        errors=[(s, c, int(n)) for s, c, n in query(queries.ERROR_COUNTS, j=job_id)[1]],
        usage={"input_tokens": int(usage[0]), "output_tokens": int(usage[1]), "attempts": int(usage[2])},
        dead=records(queries.ITEMS_IN_STATE + f" LIMIT {_DEAD_SHOWN}", j=job_id, s="dead"),
        unsent_shards=len(query(queries.UNSENT_SHARDS, j=job_id)[1]),
    )
