"""The light commands without SQLAlchemy: `status`, `jobs`, `items` and `cost` through the database
driver alone.

Importing SQLAlchemy and SQLModel (and running the migration check) takes longer than the whole
budget of these commands, whose queries take milliseconds even on a million-item job. This reader
opens the database with its DB-API driver (sqlite3, or psycopg for PostgreSQL), checks the schema is
exactly the one this llmbulk migrates to, and runs the same SQL as the store (`queries.py`).
Anything unusual (no database yet, an older or newer schema, another kind of URL, a driver error,
a job that is not there) returns None, and the caller takes the full path, which migrates or
explains the problem.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

from llmbulk import capacity
from llmbulk.store import queries
from llmbulk.views import JobStatus, batch_view

_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_DEAD_SHOWN = 20
T = TypeVar("T")


def read_status(db_url: str, job_id: str) -> JobStatus | None:
    """The job's status read straight from the database, or None to take the full path."""
    return _quick(db_url, lambda reader: reader.status(job_id))


def read_jobs(db_url: str, limit: int) -> list[SimpleNamespace] | None:
    """The newest `limit` jobs (the fields `llmbulk jobs` shows), or None to take the full path."""
    return _quick(db_url, lambda reader: [_job(record) for record in reader.records(queries.JOBS, n=limit)])


def read_items(db_url: str, job_id: str, state: str, limit: int | None) -> list[dict[str, Any]] | None:
    """A job's items in one state with their last attempt's error, or None to take the full path."""
    sql = queries.items_in_state(state) + ("" if limit is None else f" LIMIT {int(limit)}")
    return _quick(db_url, lambda reader: reader.records(sql, j=job_id, s=state) if reader.job(job_id) else None)


def read_tokens(db_url: str, job_id: str) -> tuple[SimpleNamespace, dict[str, int], dict[str, int]] | None:
    """(job, billed token totals, reused token totals) for `cost`, or None to take the full path."""

    def read(reader: _Reader) -> tuple[SimpleNamespace, dict[str, int], dict[str, int]] | None:
        job = reader.job(job_id)
        if job is None:
            return None
        billed = queries.token_totals(reader.rows(queries.TOKEN_TOTALS, j=job_id)[1][0])
        return job, billed, queries.reused_totals(reader.rows(queries.REUSED_TOTALS, j=job_id)[1][0])

    return _quick(db_url, read)


def _quick(db_url: str, read: Callable[[_Reader], T | None]) -> T | None:
    try:
        connection = _connect(db_url)
    except Exception:  # missing driver, unreachable server, unusual URL: the full path explains
        return None
    if connection is None:
        return None
    conn, style = connection
    try:
        with closing(conn):
            reader = _Reader(conn, style)
            if {name for (name,) in reader.rows(queries.MIGRATIONS_APPLIED)[1]} != set(queries.SCHEMA):
                return None  # not yet migrated, or written by another llmbulk version
            return read(reader)
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


def _job(record: dict[str, Any]) -> SimpleNamespace:
    job = SimpleNamespace(**record)
    job.emulated = bool(job.emulated)
    return job


class _Reader:
    """The store's SQL (`:name` parameters) through a DB-API connection."""

    def __init__(self, conn: Any, style: str) -> None:
        self.conn, self.style = conn, style

    def rows(self, sql: str, **params: Any) -> tuple[list[str], list[tuple[Any, ...]]]:
        cursor = self.conn.cursor()
        cursor.execute(_NAMED.sub(r"%(\1)s", sql) if self.style == "pyformat" else sql, params)
        return [column[0] for column in cursor.description], cursor.fetchall()

    def records(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        names, found = self.rows(sql, **params)
        return [dict(zip(names, row, strict=True)) for row in found]

    def job(self, job_id: str) -> SimpleNamespace | None:
        found = self.records(queries.JOB, j=job_id)
        return _job(found[0]) if found else None  # None: the full path says "no job …"

    def status(self, job_id: str) -> JobStatus | None:
        job = self.job(job_id)
        if job is None:
            return None
        # Providers that hide progress have `completed` recorded as NULL until the end, so counts are
        # known exactly where a count was recorded; no provider module needs importing to tell.
        batches = [
            batch_view(SimpleNamespace(**b), True)
            for b in self.records(queries.BATCHES + queries.BATCHES_ORDER, j=job_id)
        ]
        usage = self.rows(queries.USAGE, j=job_id)[1][0]
        return JobStatus(
            job=job,
            counts={state: int(n) for state, n in self.rows(queries.ITEM_COUNTS, j=job_id)[1]},
            batches=batches,
            errors=[(s, c, int(n)) for s, c, n in self.rows(queries.ERROR_COUNTS, j=job_id)[1]],
            usage={"input_tokens": int(usage[0]), "output_tokens": int(usage[1]), "attempts": int(usage[2])},
            dead=self.records(queries.items_in_state("dead") + f" LIMIT {_DEAD_SHOWN}", j=job_id, s="dead"),
            unsent_shards=len(self.rows(queries.UNSENT_SHARDS, j=job_id)[1]),
            quota=capacity.quota_wait(self.records, job_id),
        )
