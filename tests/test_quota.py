"""Capacity scopes shared by every runner (#21): jobs queue for quota instead of failing, in turn.

Real runners (subprocesses) on one state database (SQLite, and PostgreSQL when configured) against
the emulator enforcing the account's limits over real HTTP.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from llmbulk.emulator import EmulatorConfig, EmulatorServer, FaultPlan
from llmbulk.emulator.quotas import QuotaPlan
from llmbulk.store import Store

MODEL = "gpt-4o-mini"


@pytest.fixture
def db_url(store_url: str) -> str:
    return store_url


def _env(home: Path, server: EmulatorServer, db: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "GEMINI_", "GOOGLE_", "LLMBULK_"))}
    env.update(LLMBULK_HOME=str(home), LLMBULK_DB=db, OPENAI_API_KEY="sk-quota-test", GEMINI_API_KEY="quota-test",
               OPENAI_BASE_URL=server.openai_base_url, GOOGLE_GEMINI_BASE_URL=server.gemini_base_url,
               LLMBULK_POLL_INITIAL="0.1", LLMBULK_POLL_MAX="0.3")  # fmt: skip
    return env


def _llmbulk(env: dict[str, str], cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "llmbulk", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def _input(path: Path, rows: int, prefix: str) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text"])
        writer.writerows([f"{prefix}{i}", f"say something short about the number {i} " * 3] for i in range(rows))
    return path


def _submit(env: dict[str, str], cwd: Path, path: Path, *extra: str) -> str:
    done = _llmbulk(env, cwd, "submit", str(path), "-p", "openai", "-m", MODEL, "--prompt", "{{ text }}",
                    "--id-column", "id", "--max-items-per-batch", "5", "--json", "--new-job", *extra)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["job_id"])


def _wait_until(condition: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def _created(server: EmulatorServer) -> list[tuple[str, float]]:
    """(job id, time) of every batch the emulator created, in order."""
    events = [e for e in server.emulator.audit_events() if e["event"] == "batch.created"]
    return [((e.get("metadata") or {}).get("llmbulk_job", "?"), e["ts"]) for e in events]


def test_two_jobs_two_runners_share_a_small_enqueued_token_scope(tmp_path: Path, db_url: str) -> None:
    limit = 1000  # tokens: three shards of ~330 tokens fit, a fourth does not
    # Batches long enough that the second runner is waiting in the queue before the first one's end.
    config = EmulatorConfig(validating_seconds=0.2, running_seconds=2.5, finalizing_seconds=0.2, jitter=0.2,
                            faults=FaultPlan(quotas=QuotaPlan(enqueued_tokens={MODEL: limit})))  # fmt: skip
    with EmulatorServer(tmp_path / "emulator", config) as server:
        env = _env(tmp_path / "submitter", server, db_url)
        limited = _llmbulk(env, tmp_path, "limits", "set", "openai", MODEL, "--enqueued-tokens", str(limit))
        assert limited.returncode == 0, limited.stderr
        long_job = _submit(env, tmp_path, _input(tmp_path / "long.csv", 40, "a"))  # 8 shards
        short_job = _submit(env, tmp_path, _input(tmp_path / "short.csv", 10, "b"))  # 2 shards

        def runner(name: str, job: str) -> subprocess.Popen[str]:
            return subprocess.Popen([sys.executable, "-m", "llmbulk", "run", job, "--out", f"{name}.csv"], cwd=tmp_path,
                                    env=_env(tmp_path / name, server, db_url), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)  # fmt: skip

        store = Store.open(db_url)
        try:
            first = runner("runner-a", long_job)
            _wait_until(lambda: store.quota_wait(long_job) is not None)  # the scope is full
            second = runner("runner-b", short_job)
            _wait_until(lambda: store.quota_wait(short_job) is not None)
            short_queued = time.time()  # both wait now; the short job has not been served yet
            for proc in (first, second):
                _out, err = proc.communicate(timeout=180)
                assert proc.returncode == 0, err
            grants = store.capacity_grants()
        finally:
            store.close()
        order = [job for job, _ in _created(server)]

        seen = server.emulator.max_enqueued_tokens()
        limits = json.loads(_llmbulk(env, tmp_path, "limits", "--json").stdout)
    assert seen[MODEL] <= limit, (seen, limit)
    assert order.count(long_job) == 8 and order.count(short_job) == 2  # none refused, none sent twice
    # Once the short job waits, it is served next: the long one (served already) takes no turn before it,
    # and its eight shards do not keep the short job's two waiting to the end.
    # (The reservations' order: a create reaches the provider after its upload.)
    short_first = next(t for job, t in grants if job == short_job)
    assert not [t for job, t in grants if job == long_job and short_queued < t < short_first], grants
    assert order[-1] == long_job and order[-2] == long_job, order
    for name in ("runner-a", "runner-b"):
        with open(tmp_path / f"{name}.csv", newline="") as fh:
            assert {r["status"] for r in csv.DictReader(fh)} == {"succeeded"}
    (scope,) = limits
    assert scope["limit"]["enqueued_tokens"] == limit and scope["observed"]["enqueued_tokens"] is None
    assert scope["in_use"]["enqueued_tokens"] == 0 and scope["queued"]["jobs"] == 0
    print(f"emulator max concurrently enqueued tokens for {MODEL}: {seen[MODEL]} (scope limit {limit}); order {order}")


def test_quota_refusal_at_create_requeues_and_lowers_the_observed_limit(tmp_path: Path, store_url: str) -> None:
    # Gemini refuses a second concurrent batch with 429 RESOURCE_EXHAUSTED; the scope knows no such limit.
    config = EmulatorConfig(validating_seconds=0.1, running_seconds=1.0, finalizing_seconds=0.1, jitter=0.0,
                            faults=FaultPlan(quotas=QuotaPlan(concurrent_batches=1)))  # fmt: skip
    with EmulatorServer(tmp_path / "emulator", config) as server:
        env = _env(tmp_path / "home", server, store_url)
        path = _input(tmp_path / "in.csv", 15, "g")
        done = _llmbulk(env, tmp_path, "run", str(path), "-p", "gemini", "-m", "gemini-2.5-flash", "--prompt",
                        "{{ text }}", "--id-column", "id", "--max-items-per-batch", "5", "--out", "out.csv",
                        "--json")  # fmt: skip
        assert done.returncode == 0, done.stderr
        limits = json.loads(_llmbulk(env, tmp_path, "limits", "--json").stdout)
        job = json.loads(done.stdout)["job_id"]
        batches = json.loads(_llmbulk(env, tmp_path, "status", job, "--json").stdout)["batches"]
        refused = [e for e in server.emulator.audit_events() if e["event"] == "batch.created"]
    with open(tmp_path / "out.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["status"] for r in rows} == {"succeeded"} and {r["attempts"] for r in rows} == {"1"}
    assert len(refused) == 3  # three shards, each created once
    (scope,) = limits
    assert scope["provider"] == "gemini" and scope["observed"]["active_batches"] == 1  # lowered to what was in use
    requeued = [b for b in batches if b["state"] == "requeued"]
    assert requeued and all(b["provider_batch_id"] is None for b in requeued)  # refused: nothing was created
    assert "RESOURCE_EXHAUSTED" in requeued[0]["error"] or "quota" in requeued[0]["error"].lower()


def test_status_of_a_job_waiting_for_quota(tmp_path: Path) -> None:
    config = EmulatorConfig(validating_seconds=0.1, running_seconds=60.0, finalizing_seconds=0.1)
    with EmulatorServer(tmp_path / "emulator", config) as server:
        env = _env(tmp_path / "home", server, f"sqlite:///{tmp_path / 'state.db'}")
        assert _llmbulk(env, tmp_path, "limits", "set", "openai", MODEL, "--active-batches", "1").returncode == 0
        job = _submit(env, tmp_path, _input(tmp_path / "in.csv", 15, "s"))
        waited = _llmbulk(env, tmp_path, "run", job, "--timeout", "2")
        assert waited.returncode != 0  # still running
        text = _llmbulk(env, tmp_path, "status", job)
        as_json = json.loads(_llmbulk(env, tmp_path, "status", job, "--json").stdout)
    print(text.stdout)
    assert "queued for quota: 2 shard(s)" in text.stdout and "next slot when a batch in flight ends" in text.stdout
    queued = as_json["queued_for_quota"]
    assert queued["shards"] == 2 and queued["tokens"] > 0 and "1 of 1 batches in flight" in queued["reason"]


def test_token_limit_exceeded_batch_requeues_and_lowers_the_observed_limit(tmp_path: Path) -> None:
    # The account's real limit (700 tokens: two ~330-token shards) is below what the scope knows (none):
    # OpenAI creates the third batch and fails it in validation with token_limit_exceeded.
    config = EmulatorConfig(validating_seconds=0.2, running_seconds=1.0, finalizing_seconds=0.1, jitter=0.0,
                            faults=FaultPlan(quotas=QuotaPlan(enqueued_tokens={MODEL: 700})))  # fmt: skip
    with EmulatorServer(tmp_path / "emulator", config) as server:
        env = _env(tmp_path / "home", server, f"sqlite:///{tmp_path / 'state.db'}")
        job = _submit(env, tmp_path, _input(tmp_path / "in.csv", 30, "t"))  # 6 shards
        done = _llmbulk(env, tmp_path, "run", job, "--out", "out.csv")
        assert done.returncode == 0, done.stderr
        (scope,) = json.loads(_llmbulk(env, tmp_path, "limits", "--json").stdout)
        batches = json.loads(_llmbulk(env, tmp_path, "status", job, "--json").stdout)["batches"]
        seen = server.emulator.max_enqueued_tokens()
    with open(tmp_path / "out.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 30 and {r["status"] for r in rows} == {"succeeded"}  # no item failed
    assert {r["attempts"] for r in rows} == {"1"}  # and no attempt was counted
    refused = [b for b in batches if b["state"] == "requeued" and b["provider_batch_id"]]
    assert refused  # created, failed on the token limit, requeued
    assert 0 < scope["observed"]["enqueued_tokens"] <= 700  # lowered to what was in flight
    assert seen[MODEL] <= 700


def _azure_env(home: Path, server: EmulatorServer, db: str) -> dict[str, str]:
    env = _env(home, server, db)
    env.update(AZURE_OPENAI_API_KEY="azure-quota-test", AZURE_OPENAI_ENDPOINT=f"{server.url}/azure")
    return env


def _most_files_at_once(server: EmulatorServer) -> int:
    """The most batch input files the emulated Azure resource held at once, from its audit."""
    held, most, inputs = 0, 0, set()
    for event in server.emulator.audit_events():
        if event["event"] == "file.created" and event["provider"] == "azure" and event.get("purpose") == "batch":
            inputs.add(event["id"])
            held += 1
        elif event["event"] == "file.deleted" and event["id"] in inputs:
            held -= 1
        most = max(most, held)
    return most


@pytest.mark.parametrize("known", [True, False], ids=["limit-set", "limit-found-by-a-refusal"])
def test_azure_file_quota_queues_shards_instead_of_failing_them(tmp_path: Path, known: bool) -> None:
    # The resource keeps 2 input files (10,000 on a real one): with the limit set, no upload is ever
    # refused; without it, the refused upload requeues its shard until collected batches' files are deleted.
    config = EmulatorConfig(validating_seconds=0.1, running_seconds=0.5, finalizing_seconds=0.1, jitter=0.0,
                            faults=FaultPlan(quotas=QuotaPlan(files=2)))  # fmt: skip
    with EmulatorServer(tmp_path / "emulator", config) as server:
        env = _azure_env(tmp_path / "home", server, f"sqlite:///{tmp_path / 'state.db'}")
        if known:
            assert _llmbulk(env, tmp_path, "limits", "set", "azure", MODEL, "--files", "2").returncode == 0
        rows = 30 if known else 15
        source = str(_input(tmp_path / "in.csv", rows, "f"))
        done = _llmbulk(env, tmp_path, "submit", source, "-p", "azure", "-m", MODEL, "--prompt", "{{ text }}",
                        "--id-column", "id", "--max-items-per-batch", "5", "--json")  # fmt: skip
        assert done.returncode == 0, done.stderr
        job = str(json.loads(done.stdout)["job_id"])
        ran = _llmbulk(env, tmp_path, "run", job, "--out", "out.csv", timeout=240)
        assert ran.returncode == 0, ran.stderr
        batches = json.loads(_llmbulk(env, tmp_path, "status", job, "--json").stdout)["batches"]
        (scope,) = json.loads(_llmbulk(env, tmp_path, "limits", "--json").stdout)
        most = _most_files_at_once(server)
    with open(tmp_path / "out.csv", newline="") as fh:
        out = list(csv.DictReader(fh))
    assert len(out) == rows and {r["status"] for r in out} == {"succeeded"}
    assert {r["attempts"] for r in out} == {"1"}  # a refused upload costs no attempt
    refused = [b for b in batches if b["state"] == "requeued"]
    if known:
        assert most == 2 and not refused  # the scope kept to the quota: the resource never refused
        assert scope["limit"]["files"] == 2
    else:
        assert refused and all("file quota" in (b["error"] or "") for b in refused), refused
        assert most <= 2
    assert scope["in_use"]["files"] == 0  # every input file deleted once its results were collected
