"""Input tables → tasks → shards: formats, rendering, limits, atomic files."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmbulk.errors import InputError
from llmbulk.models import Limits, Task, parse_custom_id
from llmbulk.shards import verify_shard, write_shards
from llmbulk.tables import InputTable
from llmbulk.tasks import TaskSpec, iter_tasks

ROWS = [{"id": f"r{i}", "text": f"text number {i}", "n": i} for i in range(5)]


def _write_all_formats(tmp_path: Path) -> list[Path]:
    csv_path = tmp_path / "in.csv"
    csv_path.write_text("id,text,n\n" + "".join(f"{r['id']},{r['text']},{r['n']}\n" for r in ROWS))
    jsonl_path = tmp_path / "in.jsonl"
    jsonl_path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in ROWS))
    parquet_path = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), parquet_path)
    return [csv_path, jsonl_path, parquet_path]


def test_every_format_renders_the_same_tasks(tmp_path: Path) -> None:
    spec = TaskSpec(prompt="Say {{ text }} ({{ n }})", system="Be brief about {{ id }}", id_column="id")
    rendered = []
    for path in _write_all_formats(tmp_path):
        tasks = list(iter_tasks(InputTable(path), spec))
        rendered.append([(t.row_index, t.key, t.messages[0]["content"], t.system) for t in tasks])
    assert rendered[0] == rendered[1] == rendered[2]
    assert rendered[0][3] == (3, "r3", "Say text number 3 (3)", "Be brief about r3")


def test_only_rows_filters_and_keeps_row_numbers(tmp_path: Path) -> None:
    path = _write_all_formats(tmp_path)[0]
    tasks = list(iter_tasks(InputTable(path), TaskSpec(prompt="{{ text }}"), only_rows={1, 4}))
    assert [(t.row_index, t.key) for t in tasks] == [(1, "1"), (4, "4")]


def test_missing_template_variable_names_the_column(tmp_path: Path) -> None:
    path = _write_all_formats(tmp_path)[0]
    with pytest.raises(InputError, match=r"no column 'body'.*columns are: id, text, n"):
        list(iter_tasks(InputTable(path), TaskSpec(prompt="{{ body }}")))


def test_jsonl_row_missing_a_key_names_the_row(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"text": "a"}\n{"other": 1}\n')
    with pytest.raises(InputError, match="row 2"):
        list(iter_tasks(InputTable(path), TaskSpec(prompt="{{ text }}")))


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        (b'a,b\n1,"unterminated\n', "malformed CSV|fields"),
        (b"a,b\n1,2,3\n", r"row 1 \(line 2\) has 3 fields"),
        (b"a,b\n\xff\xfe,1\n", "not valid UTF-8"),
    ],
)
def test_broken_csv_is_reported_with_its_line(tmp_path: Path, content: bytes, pattern: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(InputError, match=pattern):
        list(InputTable(path).rows())


def test_bad_jsonl_line_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(InputError, match="line 2 is not valid JSON"):
        list(InputTable(path).rows())


def test_not_parquet_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "fake.parquet"
    path.write_text("id,text\n1,a\n")
    with pytest.raises(InputError, match="not a readable Parquet file"):
        InputTable(path).columns()


def test_tasks_jsonl_lifts_system_messages(tmp_path: Path) -> None:
    path = tmp_path / "tasks.jsonl"
    lines = [
        {"id": "a", "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}]},
        {"id": "b", "messages": [{"role": "user", "content": "yo"}], "max_tokens": 7},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines))
    tasks = list(iter_tasks(InputTable(path), TaskSpec()))
    assert tasks[0].system == "S" and tasks[0].messages == [{"role": "user", "content": "hi"}]
    assert tasks[1].key == "b" and tasks[1].params == {"max_tokens": 7}


def _encode(task: Task, custom_id: str) -> bytes:
    return orjson.dumps({"custom_id": custom_id, "text": task.messages[0]["content"]})


def _tasks(sizes: list[int]) -> list[Task]:
    return [Task(i, str(i), [{"role": "user", "content": "x" * n}]) for i, n in enumerate(sizes)]


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=300), min_size=1, max_size=80),
    max_items=st.integers(min_value=1, max_value=20),
    max_bytes=st.integers(min_value=400, max_value=3000),
)
def test_packing_never_exceeds_limits_and_keeps_every_item_once(
    tmp_path_factory: pytest.TempPathFactory, sizes: list[int], max_items: int, max_bytes: int
) -> None:
    directory = tmp_path_factory.mktemp("shards")
    limits = Limits(max_items=max_items, max_bytes=max_bytes)
    sunk: dict[int, list[tuple[int, str, str | None]]] = {}
    shards = list(write_shards(iter(_tasks(sizes)), _encode, "jtest1", limits, directory, _sink(sunk)))
    seen = []
    for shard in shards:
        data = shard.path.read_bytes()
        assert len(data) == shard.n_bytes <= max_bytes
        assert 1 <= shard.n_items <= max_items and shard.n_items == len(sunk[shard.seq])
        assert verify_shard(shard.path, shard.sha256)
        ids = [parse_custom_id(orjson.loads(line)["custom_id"]) for line in data.splitlines()]
        assert [row for _, row, _ in ids] == [row for row, _, _ in sunk[shard.seq]]
        seen.extend(row for row, _, _ in sunk[shard.seq])
    assert seen == list(range(len(sizes)))
    assert not list(directory.glob(".*.tmp"))


def test_request_over_the_per_request_limit_names_the_item(tmp_path: Path) -> None:
    limits = Limits(max_items=10, max_bytes=500)
    with pytest.raises(InputError, match=r"item '2' \(row 3\) is .* over the 500-byte limit"):
        list(write_shards(iter(_tasks([10, 10, 900])), _encode, "jtest1", limits, tmp_path, _sink({})))
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_verify_shard_detects_changes(tmp_path: Path) -> None:
    limits = Limits(max_items=5, max_bytes=999)
    (shard,) = write_shards(iter(_tasks([5])), _encode, "jtest1", limits, tmp_path, _sink({}))
    assert verify_shard(shard.path, shard.sha256)
    shard.path.write_bytes(shard.path.read_bytes() + b"x")
    assert not verify_shard(shard.path, shard.sha256)


def _sink(
    into: dict[int, list[tuple[int, str, str | None]]],
) -> Callable[[int, list[tuple[int, str, str | None]]], None]:
    return lambda seq, items: into.setdefault(seq, []).extend(items)


def test_item_keys_reach_the_sink_in_chunks_before_their_shard(tmp_path: Path) -> None:
    calls: list[tuple[int, int, bool]] = []

    def sink(seq: int, items: list[tuple[int, str]]) -> None:  # is the shard file in place yet?
        calls.append((seq, len(items), (tmp_path / f"{seq:05d}.jsonl").exists()))

    limits = Limits(max_items=25_000, max_bytes=10**9)
    shards = list(write_shards(iter(_tasks([1] * 30_000)), _encode, "jtest1", limits, tmp_path, sink))
    assert [(s.seq, s.n_items) for s in shards] == [(1, 25_000), (2, 5_000)]
    assert calls == [(1, 10_000, False), (1, 10_000, False), (1, 5_000, False), (2, 5_000, False)]


def test_a_shard_this_process_wrote_is_checked_by_identity_and_any_change_is_still_caught(tmp_path: Path) -> None:
    limits = Limits(max_items=10, max_bytes=10**6)
    (shard,) = write_shards(iter(_tasks([5])), _encode, "jtest1", limits, tmp_path, _sink({}))
    assert verify_shard(shard.path, shard.sha256)
    assert not verify_shard(shard.path, "0" * 64)  # a different recorded hash is never trusted
    data = bytearray(shard.path.read_bytes())
    data[0] ^= 1  # same size, one bit changed in place
    time.sleep(0.01)
    shard.path.write_bytes(bytes(data))
    assert not verify_shard(shard.path, shard.sha256)
    other = tmp_path / "other.jsonl"
    data[0] ^= 1  # the original bytes, in another file put in its place (a new inode)
    other.write_bytes(bytes(data))
    os.replace(other, shard.path)
    assert verify_shard(shard.path, shard.sha256)  # unchanged content: the hash confirms it
