"""Migrations build exactly the SQLModel schema, apply once, and refuse newer databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Connection, create_engine, inspect, text
from sqlmodel import SQLModel

from llmbulk.errors import StateError
from llmbulk.store import migrations, queries
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


def _apply_first(conn: Connection, n: int) -> None:
    """A database as an earlier llmbulk left it: only the first `n` migrations applied and recorded."""
    for name, migration in migrations.MIGRATIONS[:n]:
        migrations._ensure_record_table(conn)
        migration(conn)
        conn.execute(text("INSERT INTO schema_migrations VALUES (:n, 0)"), {"n": name})


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


def test_batch_usage_migration_backfills_collected_batches(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as conn:  # a database as llmbulk left it before 0003_status_speed
        _apply_first(conn, 2)
        for batch, collected in (("b1", 1.0), ("b2", None)):
            conn.execute(
                text("INSERT INTO batches (id, job_id, shard_id, state, intent_at, collected_at)"
                     " VALUES (:b, 'j', 's', 'ended', 0, :c)"),
                {"b": batch, "c": collected},
            )  # fmt: skip
        for row, (tokens_in, tokens_out) in enumerate([(10, 3), (7, None), (None, None)]):
            conn.execute(
                text("INSERT INTO attempts (job_id, row_index, attempt, batch_id, outcome, input_tokens,"
                     " output_tokens, recorded_at) VALUES ('j', :r, 1, 'b1', 'succeeded', :i, :o, 0)"),
                {"r": row, "i": tokens_in, "o": tokens_out},
            )  # fmt: skip
    engine.dispose()
    upgraded = open_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with upgraded.connect() as conn:
        rows = conn.execute(text("SELECT id, input_tokens, output_tokens, attempts_recorded FROM batches ORDER BY id"))
        assert [tuple(r) for r in rows] == [("b1", 17, 3, 3), ("b2", None, None, None)]


def test_lean_items_migration_keeps_billed_totals_and_uses_the_partial_indexes(tmp_path: Path) -> None:
    """0010 moves `cost`'s totals onto batch sums: a job collected before it reads the same totals after."""
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as conn:  # a database as llmbulk left it before 0010_lean_items (batch sums as collected)
        _apply_first(conn, 9)
        conn.execute(
            text("INSERT INTO batches (id, job_id, shard_id, state, intent_at, collected_at, input_tokens,"
                 " output_tokens, attempts_recorded) VALUES ('b1', 'j', 's', 'ended', 0, 1, 17, 5, 3)")
        )  # fmt: skip
        attempts = [(0, 10, 3, 4, None), (1, 7, 2, None, None), (2, None, None, None, None), (3, 5, 5, 5, "j/k0")]
        for row, tokens_in, tokens_out, cached, reused in attempts:
            conn.execute(
                text("INSERT INTO attempts (job_id, row_index, attempt, batch_id, outcome, input_tokens,"
                     " output_tokens, cached_tokens, reused_from, recorded_at)"
                     " VALUES ('j', :r, 1, 'b1', 'succeeded', :i, :o, :c, :u, 0)"),
                {"r": row, "i": tokens_in, "o": tokens_out, "c": cached, "u": reused},
            )  # fmt: skip
        old_totals = conn.execute(
            text("SELECT SUM(input_tokens), SUM(output_tokens), SUM(cached_tokens), COUNT(input_tokens) FROM attempts"
                 " WHERE job_id = 'j' AND reused_from IS NULL")
        ).one()  # fmt: skip
    engine.dispose()
    upgraded = open_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with upgraded.connect() as conn:
        assert tuple(conn.execute(text(queries.TOKEN_TOTALS), {"j": "j"}).one()) == tuple(old_totals) == (17, 5, 4, 2)
        plans = {
            sql: " ".join(str(r[-1]) for r in conn.execute(text("EXPLAIN QUERY PLAN " + sql), {"j": "j", "s": "dead"}))
            for sql in (queries.items_in_state("dead"), queries.REUSED_TOTALS)
        }
    assert "ix_items_job_failed" in plans[queries.items_in_state("dead")]
    assert "ix_attempts_reused" in plans[queries.REUSED_TOTALS]


def test_a_database_from_the_release_that_named_0003_batch_usage_is_upgraded_not_refused(tmp_path: Path) -> None:
    """An earlier release recorded 0003 as `0003_batch_usage` (usage columns only): an alias, not a newer schema."""
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as conn:
        _apply_first(conn, 2)
        for column in ("input_tokens BIGINT", "output_tokens BIGINT", "attempts_recorded INTEGER"):
            conn.execute(text(f"ALTER TABLE batches ADD COLUMN {column}"))
        conn.execute(text("INSERT INTO schema_migrations VALUES ('0003_batch_usage', 0)"))
    engine.dispose()
    upgraded = open_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with upgraded.connect() as conn:
        names = {row[0] for row in conn.execute(text("SELECT name FROM schema_migrations"))}
        indexes = {row[1] for row in conn.execute(text("PRAGMA index_list(items)"))}
    assert {"0003_batch_usage", "0003_status_speed", "0005_fencing"} <= names
    assert "ix_items_job_failed" in indexes
    reference = create_engine(f"sqlite:///{tmp_path / 'reference.db'}")
    SQLModel.metadata.create_all(reference)
    assert _describe(upgraded) == _describe(reference)


def test_answer_keys_migration_keeps_earlier_answers_reusable(tmp_path: Path) -> None:
    """0012 gives each answer the sent item's key: an answer recorded before it is found after it,
    naming the same item, and nothing else is."""
    from llmbulk.store.answers import _find

    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as conn:  # a database as llmbulk left it before 0012_answer_keys
        _apply_first(conn, 11)
        for row, state in ((0, "succeeded"), (1, "failed_permanent")):
            conn.execute(
                text("INSERT INTO items (job_id, row_index, key, state, attempts, shard_id, request_key)"
                     " VALUES ('j', :r, :k, :s, 1, 'j-s0001', :q)"),
                {"r": row, "k": f"r{row}", "s": state, "q": f"k{row}"},
            )  # fmt: skip
            conn.execute(
                text("INSERT INTO attempts (job_id, row_index, attempt, batch_id, outcome, output, recorded_at)"
                     " VALUES ('j', :r, 1, 'b1', :s, 'yes', 0)"),
                {"r": row, "s": state},
            )  # fmt: skip
        conn.execute(text("INSERT INTO answers VALUES ('k0', 'j', 0, 1, 5.0), ('k1', 'j', 1, 1, 5.0)"))
    engine.dispose()
    upgraded = open_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with upgraded.begin() as conn:
        found = _find(conn, ["k0", "k1", "k2"], None)
        indexes = {row[1] for row in conn.execute(text("PRAGMA index_list(answers)"))}
    assert list(found) == ["k0"]  # k1's attempt failed: never reused; k2 was never answered
    assert (found["k0"].job_id, found["k0"].key, found["k0"].output, found["k0"].created_at) == ("j", "r0", "yes", 5.0)
    assert "ix_answers_job" in indexes
    reference = create_engine(f"sqlite:///{tmp_path / 'reference.db'}")
    SQLModel.metadata.create_all(reference)
    assert _describe(upgraded) == _describe(reference)
