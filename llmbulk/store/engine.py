"""Opening the state database: engine options per dialect, migration on open, clear errors.

This is the one small dialect seam: SQLite gets WAL, a busy timeout and `BEGIN IMMEDIATE` for
write transactions (so two processes queue for the write lock instead of failing with
`database is locked`); PostgreSQL needs nothing special.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DatabaseError, OperationalError

from llmbulk.errors import StateError
from llmbulk.store import migrations

BUSY_TIMEOUT_MS = 60_000
READ_OPTION = "llmbulk_read"


def _sqlite_file(url: str) -> Path | None:
    prefix = "sqlite:///"
    if url.startswith(prefix) and ":memory:" not in url:
        return Path(url[len(prefix) :])
    return None


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        read_only = conn.get_execution_options().get(READ_OPTION, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def open_engine(url: str) -> Engine:
    """An engine on a migrated database; raises StateError with a fix for every failure."""
    path = _sqlite_file(url)
    if path is not None:
        if path.is_dir():
            raise StateError(f"state database {path} is a directory", hint="pass --db with a file path")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            path.touch(mode=0o600)
    try:
        engine = create_engine(url, future=True, pool_pre_ping=path is None)
    except Exception as exc:  # bad URL, missing driver
        raise StateError(f"cannot use database URL {_redact(url)}: {exc}", hint="check --db / LLMBULK_DB") from exc
    if path is not None:
        _configure_sqlite(engine)
    where = str(path) if path is not None else _redact(url)
    try:
        with engine.connect() as conn:
            with conn.begin():
                migrations.check_not_newer(conn, where)
            migrations.migrate(conn)
    except StateError:
        raise
    except (DatabaseError, OperationalError) as exc:
        reason = str(exc.orig) if getattr(exc, "orig", None) else str(exc)
        raise StateError(
            f"cannot open state database {where}: {reason.splitlines()[0]}",
            hint="if the file is corrupt, move it aside and resubmit, or point --db elsewhere",
        ) from exc
    if path is not None:
        os.chmod(path, 0o600)
    return engine


def _redact(url: str) -> str:
    """A database URL without its password."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
