"""Migrations build exactly the SQLModel schema, apply once, and refuse newer databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlmodel import SQLModel

from llmbulk.errors import StateError
from llmbulk.store import migrations
from llmbulk.store import schema as _schema  # noqa: F401 - registers the tables
from llmbulk.store.engine import open_engine


def _describe(engine) -> dict[str, object]:
    insp = inspect(engine)
    tables = {}
    for name in sorted(insp.get_table_names()):
        columns = {c["name"]: (bool(c["nullable"]), c["type"]._type_affinity.__name__) for c in insp.get_columns(name)}
        pk = tuple(insp.get_pk_constraint(name)["constrained_columns"])
        indexes = {(i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in insp.get_indexes(name)}
        tables[name] = (columns, pk, indexes)
    return tables


def test_blank_database_migrated_equals_sqlmodel_metadata(tmp_path: Path) -> None:
    migrated = open_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
    reference = create_engine(f"sqlite:///{tmp_path / 'reference.db'}")
    SQLModel.metadata.create_all(reference)
    assert _describe(migrated) == _describe(reference)


def test_migrations_apply_once_and_are_recorded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    engine = open_engine(url)
    with engine.connect() as conn:
        assert migrations.pending(conn) == []
        names = [r[0] for r in conn.execute(text("SELECT name FROM schema_migrations"))]
    assert names == [name for name, _ in migrations.MIGRATIONS]
    engine.dispose()
    again = open_engine(url)  # reopening applies nothing new and does not fail
    with again.connect() as conn:
        assert migrations.migrate(conn) == []


def test_database_from_a_newer_llmbulk_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    engine = open_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO schema_migrations (name, applied_at) VALUES ('9999_future', 0)"))
    engine.dispose()
    with pytest.raises(StateError, match="newer llmbulk"):
        open_engine(url)


def test_corrupt_database_file_gives_a_state_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not a sqlite database" * 100)
    with pytest.raises(StateError, match="cannot open state database"):
        open_engine(f"sqlite:///{path}")
    assert path.read_bytes().startswith(b"this is not")  # left as it was


def test_state_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    open_engine(f"sqlite:///{path}")
    assert path.stat().st_mode & 0o077 == 0
