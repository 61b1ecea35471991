"""Opening the state database: engine options per dialect, migration on open, clear errors.

This is the one small dialect seam: SQLite gets WAL, a busy timeout and `BEGIN IMMEDIATE` for
write transactions (so two processes queue for the write lock instead of failing with
`database is locked`); PostgreSQL needs nothing special.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DatabaseError, OperationalError

from llmbulk.config import mkdir_problem
from llmbulk.errors import ConfigError, StateError
from llmbulk.store import migrations

BUSY_TIMEOUT_MS = 60_000
READ_OPTION = "llmbulk_read"
CORRUPT_HINT = "if the file is corrupt, move it aside and resubmit, or point --db elsewhere"


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


# A process stopped in the middle of a transaction (a paused VM, SIGSTOP) would hold its row
# locks for as long as it stays stopped, and every other runner's lease claim would wait behind
# it. PostgreSQL ends such a session after this long (our transactions last milliseconds; the
# longest, recording a results download as it streams, never waits that long between statements).
IDLE_IN_TRANSACTION_MS = 120_000


def _configure_postgresql(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"SET idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_MS}")
        cursor.close()
        dbapi_connection.commit()


def open_engine(url: str) -> Engine:
    """An engine on a migrated database; raises StateError with a fix for every failure."""
    path = _sqlite_file(url)
    if path is not None:
        if path.is_dir():
            raise StateError(f"state database {path} is a directory", hint="pass --db with a file path")
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not path.exists():
                path.touch(mode=0o600)
        except OSError as exc:
            raise ConfigError(
                f"cannot create state database {path}: {mkdir_problem(path.parent, exc)}",
                hint="point --db / LLMBULK_DB at a file in a directory you can write",
            ) from exc
        _check_ours(path)
    try:
        engine = create_engine(url, future=True, pool_pre_ping=path is None)
    except Exception as exc:  # bad URL, missing driver
        raise StateError(f"cannot use database URL {_redact(url)}: {exc}", hint="check --db / LLMBULK_DB") from exc
    if path is not None:
        _configure_sqlite(engine)
    elif engine.dialect.name == "postgresql":
        _configure_postgresql(engine)
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
            hint=CORRUPT_HINT,
        ) from exc
    if path is not None:
        os.chmod(path, 0o600)
    return engine


def _check_ours(path: Path) -> None:
    """Refuse another program's SQLite file before a connection's PRAGMAs (WAL) can rewrite it."""
    if path.stat().st_size == 0:
        return
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            record = {row[1] for row in conn.execute("PRAGMA table_info(schema_migrations)")}
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise StateError(f"cannot open state database {path}: {exc}", hint=CORRUPT_HINT) from exc
    if tables and not {"name", "applied_at"} <= record:
        shown = ", ".join(sorted(tables)[:5]) + (", …" if len(tables) > 5 else "")
        raise StateError(
            f"{path} is not an llmbulk state database (it holds tables {shown})",
            hint="point --db at a new file or an existing llmbulk database",
        )


def _redact(url: str) -> str:
    """A database URL fit to show: no password, in the userinfo or the query (`?password=…`)."""
    from llmbulk.events import redact_url

    return redact_url(url, keep_user=True, keep_path=True)
