"""Generate the binary and bulky members of the bad-input corpus (the small text ones are committed).

`python tests/bad_inputs/make_corpus.py DIR` writes them into DIR; `tests/test_bad_inputs.py` calls
`make_corpus(dir)` once per session, so no binaries live in the repository.
"""

from __future__ import annotations

import io
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHUNK_ROWS = 25_000  # more than the store's 20k-row insert chunk, so the two copies land in different chunks


def _csv(rows: list[tuple[str, str]], header: str = "id,text") -> bytes:
    return (header + "\n" + "".join(f"{key},{text}\n" for key, text in rows)).encode()


def _numbered(n: int, dup_at: int | None = None, dup_of: int | None = None) -> bytes:
    """n rows r1..rn; row `dup_at` (1-based) reuses the id of row `dup_of`."""
    rows = [(f"r{i}", f"review number {i}") for i in range(1, n + 1)]
    if dup_at is not None and dup_of is not None:
        rows[dup_at - 1] = (f"r{dup_of}", "a second row with the same id")
    return _csv(rows)


def _late_invalid_utf8() -> bytes:
    """5,000 valid rows, then a latin-1 byte in row 4,000: far past the reader's first 64 KiB buffer."""
    rows = [f"r{i},review number {i}\n".encode() for i in range(1, 5001)]
    rows[3999] = b"r4000,caf\xe9 au lait\n"
    return b"id,text\n" + b"".join(rows)


def _parquet(columns: dict[str, list[object]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(pa.table(columns), sink)
    return sink.getvalue()


def _zero_row_parquet() -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(pa.schema([("id", pa.string()), ("text", pa.string())]).empty_table(), sink)
    return sink.getvalue()


def _truncated_parquet() -> bytes:
    whole = _parquet({"id": [f"r{i}" for i in range(200)], "text": [f"review {i}" for i in range(200)]})
    return whole[: len(whole) // 2]


def _duplicate_column_parquet() -> bytes:
    """Two columns both named `text`: read as dicts, the second would silently replace the first."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_arrays(
        [pa.array(["r1", "r2"]), pa.array(["first", "second"]), pa.array(["other", "another"])],
        names=["id", "text", "text"],
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _deep_schema() -> bytes:
    """An object schema nested 400 levels deep: valid JSON, far too deep to check (or send) safely."""
    depth = 400
    return (b'{"type": "object", "properties": {"x": ' * depth) + b'{"type": "string"}' + (b"}}" * depth)


def _other_app_db(path: Path) -> None:
    """A valid SQLite file from some other program, with its own `jobs` table."""
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE jobs (name TEXT PRIMARY KEY, cron TEXT)")
        conn.execute("INSERT INTO jobs VALUES ('backup', '0 3 * * *')")
    conn.close()


def _truncated_db(path: Path) -> None:
    """A SQLite file cut short: the header is intact, later pages are missing."""
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        conn.executemany("INSERT INTO notes (body) VALUES (?)", [("x" * 200,) for _ in range(500)])
    conn.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


BYTES: dict[str, Callable[[], bytes]] = {
    "csv_invalid_utf8.csv": lambda: b"id,text\nr1,fine\nr2,caf\xe9 au lait (latin-1)\n",
    "csv_invalid_utf8_late.csv": _late_invalid_utf8,
    "csv_bom_only.csv": lambda: b"\xef\xbb\xbf",
    "csv_dup_ids_far.csv": lambda: _numbered(600, dup_at=600, dup_of=5),
    "csv_dup_ids_chunks.csv": lambda: _numbered(CHUNK_ROWS, dup_at=24_993, dup_of=7),
    "csv_oversized_row.csv": lambda: _csv([("r1", "short"), ("r2", "x" * 3000), ("r3", "short")]),
    "jsonl_invalid_utf8.jsonl": lambda: b'{"id": "r1", "text": "ok"}\n{"id": "r2", "text": "caf\xff"}\n',
    "jsonl_bom_only.jsonl": lambda: b"\xef\xbb\xbf",
    "prompt_invalid_utf8.j2": lambda: b"Summarise \xff\xfe this: {{ text }}\n",
    "parquet_is_csv.parquet": lambda: (HERE / "valid.csv").read_bytes(),
    "parquet_truncated.parquet": _truncated_parquet,
    "parquet_zero_rows.parquet": _zero_row_parquet,
    "parquet_empty.parquet": lambda: b"",
    "parquet_null_id.parquet": lambda: _parquet({"id": ["r1", None, "r3"], "text": ["a", "b", "c"]}),
    "parquet_dup_ids.parquet": lambda: _parquet({"id": ["r1", "r2", "r1"], "text": ["a", "b", "c"]}),
    "parquet_no_text_column.parquet": lambda: _parquet({"id": ["r1"], "body": ["a"]}),
    "garbage.db": lambda: b"this is not a SQLite database, just text\n" * 100,
    "parquet_duplicate_columns.parquet": _duplicate_column_parquet,
    "schema_invalid_utf8.json": lambda: b'{"type": "object", "description": "caf\xe9 (latin-1)"}\n',
    "schema_too_deep.json": _deep_schema,
}
DATABASES: dict[str, Callable[[Path], None]] = {
    "other_app.db": _other_app_db,
    "truncated.db": _truncated_db,
}


def make_corpus(directory: Path) -> Path:
    """Write the generated members into `directory` (created if needed); returns it."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, build in BYTES.items():
        (directory / name).write_bytes(build())
    for name, create in DATABASES.items():
        target = directory / name
        target.unlink(missing_ok=True)
        create(target)
    return directory


if __name__ == "__main__":
    make_corpus(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("bad_inputs_generated"))
