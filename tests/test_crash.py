"""Crash safety with real processes: `llmbulk` subprocesses are SIGKILLed at each transition and at
random moments, then rerun to completion. The emulator's audit log proves no shard got two
batches; the output proves every item is there exactly once, in order.
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmbulk.emulator import EmulatorConfig, EmulatorServer, FaultPlan

ROWS = 60
POINTS = ["mid_pack", "after_intent", "after_upload", "after_create", "mid_download", "mid_record", "mid_merge"]
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"}
FAKE_KEY = "sk-crash-test-key"


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorServer]:
    config = EmulatorConfig(validating_seconds=0.05, running_seconds=0.2, finalizing_seconds=0.05, jitter=0.5,
                            faults=FaultPlan(item_errors={"server_error": 0.1}))  # fmt: skip
    with EmulatorServer(tmp_path / "emulator", config) as server:
        yield server


def _input(tmp_path: Path) -> Path:
    path = tmp_path / "in.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text"])
        # Every fifth row repeats the one before: the same request, sent once and answered to both.
        writer.writerows([f"r{i}", f"review number {i - 1 if i % 5 == 4 else i}"] for i in range(ROWS))
    return path


def _env(tmp_path: Path, server: EmulatorServer, crash_at: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "GOOGLE_", "LLMBULK_"))}
    env.update(
        LLMBULK_HOME=str(tmp_path / "state"),
        OPENAI_API_KEY=FAKE_KEY,
        OPENAI_BASE_URL=server.openai_base_url,
        ANTHROPIC_API_KEY=FAKE_KEY,
        ANTHROPIC_BASE_URL=server.anthropic_base_url,
        GOOGLE_API_KEY=FAKE_KEY,
        GOOGLE_GEMINI_BASE_URL=server.gemini_base_url,
        LLMBULK_POLL_INITIAL="0.05",
        LLMBULK_POLL_MAX="0.2",
    )
    if crash_at:
        env["LLMBULK_CRASH_AT"] = crash_at
    return env


def _llmbulk(tmp_path: Path, env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "llmbulk", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout
    )


def _run_args(input_path: Path, provider: str = "openai") -> list[str]:
    return ["run", str(input_path), "-p", provider, "-m", MODELS[provider], "--prompt", "Label: {{ text }}",
            "--id-column", "id", "--max-items-per-batch", "7", "--max-attempts", "6", "--out", "out.csv"]  # fmt: skip


def _job_ids(tmp_path: Path, env: dict[str, str]) -> list[str]:
    listed = _llmbulk(tmp_path, env, "jobs", "--json")
    return [j["job_id"] for j in json.loads(listed.stdout)] if listed.returncode == 0 and listed.stdout else []


def _finish(tmp_path: Path, env: dict[str, str], input_path: Path, provider: str = "openai") -> None:
    """Rerun until done: continue the job if it exists, else submit it again."""
    for _ in range(10):
        jobs = _job_ids(tmp_path, env)
        args = ["run", jobs[0], "--out", "out.csv"] if jobs else _run_args(input_path, provider)
        result = _llmbulk(tmp_path, env, *args, "--wait-lock", "30")
        if result.returncode == 0:
            return
        assert "Traceback" not in result.stderr, result.stderr
    raise AssertionError(f"job did not finish: {result.stderr}")


def _check(tmp_path: Path, server: EmulatorServer, provider: str = "openai") -> Counter:
    jobs = _job_ids(tmp_path, _env(tmp_path, server))
    assert len(jobs) == 1, jobs  # a rerun after a crash never submitted a second job
    _check_every_batch_owned_once(tmp_path, server, provider)
    if provider != "openai":
        return _check_output(tmp_path)
    created = [e for e in server.emulator.audit_events() if e["event"] == "batch.created"]
    per_shard = Counter((e.get("metadata") or {}).get("llmbulk_shard") for e in created)
    duplicates = {shard: n for shard, n in per_shard.items() if n > 1}
    assert not duplicates, f"shards created twice: {duplicates}"
    # An upload whose record was lost in a crash was found and reused, not repeated; and once collected,
    # every input and result file was deleted at the provider (none is left behind).
    audit = server.emulator.audit_events()
    uploads = Counter(e.get("name") for e in audit if e["event"] == "file.created" and e.get("purpose") == "batch")
    assert sorted(uploads) == sorted(f"{shard}.jsonl" for shard in per_shard), uploads
    assert set(uploads.values()) == {1}, uploads
    assert server.emulator.list_files("openai") == []
    _check_output(tmp_path)
    return per_shard


def _check_output(tmp_path: Path) -> Counter:
    with open(tmp_path / "out.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["id"] for r in rows] == [f"r{i}" for i in range(ROWS)]
    assert {r["status"] for r in rows} == {"succeeded"}
    return Counter(r["status"] for r in rows)


def _check_every_batch_owned_once(tmp_path: Path, server: EmulatorServer, provider: str) -> None:
    """Every batch the provider created is recorded for exactly one shard, and no shard has two that ran."""
    created = {e["id"] for e in server.emulator.audit_events() if e["event"] == "batch.created"}
    with sqlite3.connect(tmp_path / "state" / "llmbulk.db") as db:
        rows = db.execute("SELECT provider_batch_id, shard_id, state FROM batches WHERE provider_batch_id IS NOT NULL")
        recorded = rows.fetchall()
    assert created == {b for b, _, _ in recorded}, "a batch the provider created was forgotten"
    assert len(recorded) == len(created), "one provider batch is recorded for two shards"
    ran = Counter(shard for _, shard, state in recorded if state not in ("failed", "requeued"))
    assert set(ran.values()) <= {1}, f"shards created twice: {ran}"


@pytest.mark.parametrize("provider", list(MODELS))
@pytest.mark.parametrize("point", POINTS)
def test_sigkill_at_each_transition_then_rerun_loses_nothing_and_pays_once(
    point: str, provider: str, tmp_path: Path, emulator: EmulatorServer
) -> None:
    input_path = _input(tmp_path)
    crashed = _llmbulk(tmp_path, _env(tmp_path, emulator, crash_at=point), *_run_args(input_path, provider))
    assert crashed.returncode == -signal.SIGKILL, (crashed.returncode, crashed.stderr)
    _finish(tmp_path, _env(tmp_path, emulator), input_path, provider)
    _check(tmp_path, emulator, provider)


def _random_kills(tmp_path: Path, server: EmulatorServer, kills: int, seed: int, provider: str = "openai") -> int:
    rng = random.Random(seed)
    input_path = _input(tmp_path)
    env = _env(tmp_path, server)
    done_kills = 0
    for _ in range(kills):
        jobs = _job_ids(tmp_path, env)
        args = ["run", jobs[0], "--out", "out.csv"] if jobs else _run_args(input_path, provider)
        process = subprocess.Popen([sys.executable, "-m", "llmbulk", *args], cwd=tmp_path, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(rng.uniform(0.3, 1.5))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            done_kills += 1
        process.wait()
    _finish(tmp_path, env, input_path, provider)
    _check(tmp_path, server, provider)
    return done_kills


@pytest.mark.parametrize("provider", list(MODELS))
def test_random_sigkills_then_rerun(provider: str, tmp_path: Path, emulator: EmulatorServer) -> None:
    assert _random_kills(tmp_path, emulator, kills=4, seed=1, provider=provider) >= 1


@pytest.mark.slow
@pytest.mark.parametrize("provider", list(MODELS))
@pytest.mark.parametrize("seed", range(20))
def test_many_random_sigkills(seed: int, provider: str, tmp_path: Path, emulator: EmulatorServer) -> None:
    kills = _random_kills(tmp_path, emulator, kills=8, seed=seed, provider=provider)
    print(f"CRASH-HARNESS provider={provider} seed={seed} kills={kills}")


def test_gemini_upload_lost_in_a_crash_is_reused(tmp_path: Path, emulator: EmulatorServer) -> None:
    input_path = _input(tmp_path)
    env = _env(tmp_path, emulator)
    env.update(GOOGLE_API_KEY=FAKE_KEY, GOOGLE_GEMINI_BASE_URL=emulator.gemini_base_url)
    args = [*_run_args(input_path)]
    args[args.index("openai")], args[args.index("gpt-4o-mini")] = "gemini", "gemini-2.5-flash"
    crashed = _llmbulk(tmp_path, {**env, "LLMBULK_CRASH_AT": "after_upload"}, *args)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert len(emulator.emulator.list_files("gemini")) == 1  # uploaded, but the record of it was lost
    jobs = _job_ids(tmp_path, env)
    finished = _llmbulk(tmp_path, env, "run", jobs[0], "--out", "out.csv")
    assert finished.returncode == 0, finished.stderr
    audit = emulator.emulator.audit_events()
    uploads = Counter(e.get("name") for e in audit if e["event"] == "file.created" and e.get("purpose") == "input")
    assert emulator.emulator.list_files("gemini") == []  # uploads and result files deleted once collected
    requests = ROWS - ROWS // 5  # every fifth row repeats the one before: sent once
    assert len(uploads) >= -(-requests // 7) and set(uploads.values()) == {1}, uploads  # one per shard (retries too)
    created = [e for e in emulator.emulator.audit_events() if e["event"] == "batch.created"]
    assert len(created) == len(uploads)
    with open(tmp_path / "out.csv", newline="") as fh:
        assert [r["id"] for r in csv.DictReader(fh)] == [f"r{i}" for i in range(ROWS)]


def test_two_lost_uploads_of_one_shard_keep_one_and_delete_the_other(tmp_path: Path, emulator: EmulatorServer) -> None:
    import openai

    input_path = _input(tmp_path)
    env = _env(tmp_path, emulator)
    crashed = _llmbulk(tmp_path, {**env, "LLMBULK_CRASH_AT": "after_upload"}, *_run_args(input_path))
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    (first,) = emulator.emulator.list_files("openai")
    shard = next((tmp_path / "state" / "jobs").glob("*/shards/00001.jsonl"))
    client = openai.OpenAI(api_key=FAKE_KEY, base_url=emulator.openai_base_url)
    with open(shard, "rb") as fh:  # as if a second crashed run had uploaded it again
        second = client.files.create(file=(first["filename"], fh, "application/jsonl"), purpose="batch")
    finished = _llmbulk(tmp_path, env, "run", _job_ids(tmp_path, env)[0], "--out", "out.csv")
    assert finished.returncode == 0, finished.stderr
    batches = emulator.emulator.list_batches("openai")
    first_batch = next(b for b in batches if (b.get("metadata") or {}).get("llmbulk_shard", "").endswith("s0001"))
    # One upload was adopted (the oldest; both came within one second here) and the other deleted.
    adopted = first_batch["input_file_id"]
    assert adopted in (first["id"], second.id)
    other = second.id if adopted == first["id"] else first["id"]
    assert emulator.emulator.get_file(other) is None and emulator.emulator.get_file(adopted) is None
    # The other was deleted as a stray copy when the shard was sent; the adopted one only after collect.
    deleted = [e["id"] for e in emulator.emulator.audit_events() if e["event"] == "file.deleted"]
    assert deleted.index(other) < deleted.index(adopted)
