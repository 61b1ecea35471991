"""`llmbulk gc`: real subprocesses, the official OpenAI SDK over real HTTP, the emulator, a SQLite file.

What llmbulk left at the provider is listed (and with --apply removed); what another tool made, and what
a live job still uses, never is.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from llmbulk.emulator import EmulatorConfig, EmulatorServer
from llmbulk.leases import JobLease
from llmbulk.store import Store

KEY = "sk-gc-test-key"
LINE = {"custom_id": "x", "method": "POST", "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}}  # fmt: skip


def _server(tmp_path: Path, running: float) -> Iterator[EmulatorServer]:
    config = EmulatorConfig(validating_seconds=0.05, running_seconds=running, finalizing_seconds=0.05, jitter=0.0)
    with EmulatorServer(tmp_path / "emulator", config) as server:
        yield server


@pytest.fixture
def fast(tmp_path: Path) -> Iterator[EmulatorServer]:
    yield from _server(tmp_path, 0.1)


@pytest.fixture
def slow(tmp_path: Path) -> Iterator[EmulatorServer]:
    yield from _server(tmp_path, 120.0)  # batches keep running for the whole test


def _env(tmp_path: Path, server: EmulatorServer, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "GOOGLE_", "LLMBULK_"))}
    env.update(LLMBULK_HOME=str(tmp_path / "state"), OPENAI_API_KEY=KEY, OPENAI_BASE_URL=server.openai_base_url,
               LLMBULK_POLL_INITIAL="0.05", LLMBULK_POLL_MAX="0.2", COLUMNS="250", **extra)  # fmt: skip
    return env


def _llmbulk(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "llmbulk", *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def _gc(tmp_path: Path, server: EmulatorServer, *args: str) -> dict[str, Any]:
    result = _llmbulk(tmp_path, _env(tmp_path, server), "gc", "--provider", "openai", "--json", *args)
    assert result.returncode == 0, result.stderr
    payload: dict[str, Any] = json.loads(result.stdout)
    return payload


def _leftovers(payload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (scan,) = payload["providers"]
    assert scan["provider"] == "openai" and scan["error"] is None
    return {left["id"]: left for left in scan["leftovers"]}


def _input(tmp_path: Path, rows: int = 4) -> Path:
    path = tmp_path / "in.csv"
    path.write_text("id,text\n" + "".join(f"r{i},review {i}\n" for i in range(rows)))
    return path


def _run_args(path: Path) -> list[str]:
    # --keep-files: what gc is for is a job whose files were left at the provider (by default collect deletes them)
    return ["run", str(path), "-p", "openai", "-m", "gpt-4o-mini", "--prompt", "Label: {{ text }}", "--id-column",
            "id", "--out", "out.csv", "--keep-files"]  # fmt: skip


def _client(server: EmulatorServer) -> openai.OpenAI:
    return openai.OpenAI(api_key=KEY, base_url=server.openai_base_url)


def _foreign(client: openai.OpenAI, tmp_path: Path, metadata: dict[str, str] | None, name: str) -> tuple[str, str]:
    """A batch and its input file made outside llmbulk (by another tool, or planted with llmbulk's labels)."""
    path = tmp_path / name
    path.write_text(json.dumps(LINE) + "\n")
    with open(path, "rb") as fh:
        file = client.files.create(file=(name, fh, "application/jsonl"), purpose="batch")
    batch = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h",
                                  metadata=metadata)  # fmt: skip
    return batch.id, file.id


def _ended(client: openai.OpenAI, batch_id: str) -> Any:
    for _ in range(200):
        batch = client.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed", "expired", "cancelled"):
            return batch
        time.sleep(0.05)
    raise AssertionError(f"{batch_id} did not end")


def _db_batches(tmp_path: Path) -> list[sqlite3.Row]:
    conn = sqlite3.connect(tmp_path / "state" / "llmbulk.db")
    conn.row_factory = sqlite3.Row
    try:
        return list(conn.execute("SELECT * FROM batches ORDER BY intent_at"))
    finally:
        conn.close()


def test_interrupted_create_leaves_an_orphan_that_gc_cancels(tmp_path: Path, slow: EmulatorServer) -> None:
    client = _client(slow)
    other_batch, other_file = _foreign(client, tmp_path, None, "mine.jsonl")  # another tool's, still running
    crashed = _llmbulk(tmp_path, _env(tmp_path, slow, LLMBULK_CRASH_AT="after_create"), *_run_args(_input(tmp_path)))
    assert crashed.returncode == -9, crashed.stderr  # killed between the create and its record
    (intent,) = _db_batches(tmp_path)
    assert intent["provider_batch_id"] is None and intent["input_file_id"]
    (orphan,) = [b for b in client.batches.list() if b.id != other_batch]

    listed = _leftovers(_gc(tmp_path, slow))
    # The orphan only: its input file is still used (by the running orphan and the job's open intent),
    # and the other tool's batch and file are not llmbulk's.
    assert list(listed) == [orphan.id]
    assert listed[orphan.id]["action"] == "cancel" and listed[orphan.id]["job_id"] == intent["job_id"]
    assert "never recorded" in listed[orphan.id]["reason"]
    assert client.batches.retrieve(orphan.id).status == "in_progress"  # a dry run changes nothing

    # Fenced: while another process holds the job, its leftovers are skipped, not touched.
    store = Store.open(f"sqlite:///{tmp_path / 'state' / 'llmbulk.db'}")
    try:
        with JobLease(store, intent["job_id"]):
            held = _leftovers(_gc(tmp_path, slow, "--apply"))
    finally:
        store.close()
    assert held[orphan.id]["outcome"].startswith("skipped: another llmbulk process")
    assert client.batches.retrieve(orphan.id).status == "in_progress"

    applied = _gc(tmp_path, slow, "--apply")
    assert applied["applied"] is True
    outcomes = [(left["id"], left["outcome"]) for left in applied["providers"][0]["leftovers"]]
    assert outcomes == [(orphan.id, "cancelled")]
    assert client.batches.retrieve(orphan.id).status in ("cancelling", "cancelled")
    # Recorded as a batch of its shard that did no work: the next run never adopts it, and resends the shard.
    recorded = {b["provider_batch_id"]: b for b in _db_batches(tmp_path)}
    assert (recorded[orphan.id]["state"], recorded[orphan.id]["error_code"]) == ("requeued", "orphan")
    # What the cancel itself produced (the cancelled orphan's result files) is all a second gc finds;
    # the input file stays, as the job's open intent will send it again.
    cancelled = _ended(client, orphan.id)
    produced = {f for f in (cancelled.output_file_id, cancelled.error_file_id) if f}
    again = _leftovers(_gc(tmp_path, slow))
    assert set(again) == produced and {left["reason"] for left in again.values()} == {f"file of batch {orphan.id}"}
    _gc(tmp_path, slow, "--apply")
    assert _leftovers(_gc(tmp_path, slow)) == {}
    assert client.files.retrieve(intent["input_file_id"]).id == intent["input_file_id"]
    assert client.batches.retrieve(other_batch).status == "in_progress"
    assert client.files.retrieve(other_file).id == other_file

    # The job carries on: its next run sends the shard again (reusing its upload) and finishes.
    slow.emulator.config.running_seconds = 0.1  # batches created from now on end at once
    rerun = _llmbulk(tmp_path, _env(tmp_path, slow), "run", intent["job_id"], "--out", "out.csv")
    assert rerun.returncode == 0, rerun.stderr
    rows = (tmp_path / "out.csv").read_text().splitlines()
    assert len(rows) == 5 and all(",succeeded," in row for row in rows[1:]), rows
    sent = [b for b in _db_batches(tmp_path) if b["provider_batch_id"] not in (None, orphan.id)]
    assert len(sent) == 1 and sent[0]["input_file_id"] == intent["input_file_id"]


def test_collected_results_and_ended_inputs_are_deleted(tmp_path: Path, fast: EmulatorServer) -> None:
    client = _client(fast)
    other_batch, other_file = _foreign(client, tmp_path, None, "theirs.jsonl")
    # A batch with llmbulk's labels whose job this database does not hold (a deleted job's, say).
    gone_batch, gone_file = _foreign(client, tmp_path, {"llmbulk_job": "jgone1", "llmbulk_shard": "jgone1-s0001"},
                                     "jgone1-s0001.jsonl")  # fmt: skip
    done = _llmbulk(tmp_path, _env(tmp_path, fast), *_run_args(_input(tmp_path)))
    assert done.returncode == 0, done.stderr
    gone_output = _ended(client, gone_batch).output_file_id
    other_output = _ended(client, other_batch).output_file_id
    (row,) = _db_batches(tmp_path)
    output = json.loads(row["result_refs_json"])["output_file_id"]

    listed = _leftovers(_gc(tmp_path, fast))
    assert set(listed) == {row["input_file_id"], output, gone_file, gone_output}
    assert listed[row["input_file_id"]]["reason"].startswith("input of ended batch")
    assert listed[output]["reason"].startswith("results of batch")
    assert listed[gone_file]["reason"] == listed[gone_output]["reason"] == "file of deleted job jgone1"
    assert {left["action"] for left in listed.values()} == {"delete"}

    applied = _leftovers(_gc(tmp_path, fast, "--apply"))
    assert {left["outcome"] for left in applied.values()} == {"deleted"}
    remaining = {f.id for f in client.files.list()}
    assert not remaining & set(listed)
    assert {other_file, other_output} <= remaining  # another tool's files are never touched
    assert _leftovers(_gc(tmp_path, fast)) == {}


def test_a_live_jobs_batch_and_input_are_never_listed(tmp_path: Path, slow: EmulatorServer) -> None:
    submitted = _llmbulk(tmp_path, _env(tmp_path, slow), "submit", str(_input(tmp_path)), "-p", "openai", "-m",
                         "gpt-4o-mini", "--prompt", "Label: {{ text }}")  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    (row,) = _db_batches(tmp_path)
    assert row["provider_batch_id"] and row["input_file_id"]
    payload = _gc(tmp_path, slow)
    assert payload == {"applied": False, "emulated": False,
                       "providers": [{"provider": "openai", "error": None, "leftovers": []}]}  # fmt: skip
    applied = _gc(tmp_path, slow, "--apply")
    assert applied["providers"][0]["leftovers"] == []
    assert _client(slow).batches.retrieve(row["provider_batch_id"]).status == "in_progress"


def test_human_table_and_unknown_provider(tmp_path: Path, fast: EmulatorServer) -> None:
    env = _env(tmp_path, fast)
    assert _llmbulk(tmp_path, env, *_run_args(_input(tmp_path))).returncode == 0
    table = _llmbulk(tmp_path, env, "gc", "-p", "openai")
    assert table.returncode == 0, table.stderr
    assert "openai: 2 left behind" in table.stdout and "dry run: nothing was changed" in table.stdout
    bad = _llmbulk(tmp_path, env, "gc", "-p", "nope")
    assert bad.returncode != 0 and "unknown provider 'nope'" in bad.stderr


def test_gemini_and_anthropic_on_the_in_process_emulator(llmbulk: Any, home: Path, tmp_path: Path) -> None:
    path = _input(tmp_path)
    for provider, model in (("gemini", "gemini-2.5-flash"), ("anthropic", "claude-haiku-4-5")):
        done = llmbulk("run", str(path), "-p", provider, "-m", model, "--prompt", "x {{ text }}", "--emulate",
                       "--out", f"{provider}.csv", "--keep-files")  # fmt: skip
        assert done.exit_code == 0, done.stderr
    scans = {scan["provider"]: scan for scan in llmbulk("gc", "--emulate", "--json").json()["providers"]}
    assert set(scans) == {"anthropic", "gemini"}  # the providers of the emulated jobs
    assert scans["anthropic"]["leftovers"] == []  # its batches use no files, and none is running
    reasons = sorted(left["reason"].split(" batch")[0] for left in scans["gemini"]["leftovers"])
    assert reasons == ["input of ended", "results of"]
    applied = llmbulk("gc", "--emulate", "-p", "gemini", "--apply", "--json").json()
    assert [left["outcome"] for left in applied["providers"][0]["leftovers"]] == ["deleted", "deleted"]
    assert llmbulk("gc", "--emulate", "--json").json()["providers"][1]["leftovers"] == []


def test_a_create_another_process_may_still_record_is_not_an_orphan(tmp_path: Path, slow: EmulatorServer) -> None:
    env = _env(tmp_path, slow, LLMBULK_PAUSE_AT="after_create")  # frozen between the create and its record
    paused = subprocess.Popen([sys.executable, "-m", "llmbulk", *_run_args(_input(tmp_path))], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        for _ in range(600):
            if Path(f"/proc/{paused.pid}/stat").read_text().split(") ")[1].startswith("T"):
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the run never reached its pause point")
        assert _leftovers(_gc(tmp_path, slow)) == {}  # its maker is alive: the batch is its to record
    finally:
        paused.kill()
        paused.wait()
    (orphan,) = _leftovers(_gc(tmp_path, slow)).values()  # its maker is gone: now an orphan
    assert orphan["kind"] == "batch" and orphan["action"] == "cancel"


def test_an_ended_unrecorded_batch_of_a_live_job_is_left_for_its_run(tmp_path: Path, fast: EmulatorServer) -> None:
    env = _env(tmp_path, fast)
    crashed = _llmbulk(tmp_path, {**env, "LLMBULK_CRASH_AT": "after_create"}, *_run_args(_input(tmp_path)))
    assert crashed.returncode == -9, crashed.stderr
    client = _client(fast)
    (batch,) = client.batches.list()
    ended = _ended(client, batch.id)
    assert ended.output_file_id
    # The job's next run adopts this batch and collects its results: neither it nor its files are listed.
    assert _leftovers(_gc(tmp_path, fast, "--apply")) == {}
    (intent,) = _db_batches(tmp_path)
    rerun = _llmbulk(tmp_path, env, "run", intent["job_id"], "--out", "out.csv")
    assert rerun.returncode == 0, rerun.stderr
    (adopted,) = _db_batches(tmp_path)
    assert adopted["provider_batch_id"] == batch.id and adopted["collected_at"]
    assert set(_leftovers(_gc(tmp_path, fast))) == {ended.input_file_id, ended.output_file_id}


def test_a_provider_without_its_key_is_reported_not_scanned(llmbulk: Any, home: Path) -> None:
    result = llmbulk("gc", "-p", "anthropic", "--json")
    assert result.exit_code == 1
    (scan,) = result.json()["providers"]
    assert scan["leftovers"] == [] and scan["error"].startswith("ANTHROPIC_API_KEY is not set")
    assert "--emulate" in scan["error"]  # the hint comes along
