"""Submit with one state directory, continue from a fresh one that has only the database URL and the
input file — as CI runners on different machines do (SQLite here; PostgreSQL when configured).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmbulk.emulator import EmulatorConfig, EmulatorServer, FaultPlan


@pytest.fixture
def db_url(store_url: str) -> str:
    """The shared state database: conftest's SQLite file or fresh PostgreSQL schema."""
    return store_url


def test_collect_and_retry_from_a_fresh_state_directory(tmp_path: Path, db_url: str) -> None:
    config = EmulatorConfig(validating_seconds=0, running_seconds=0, finalizing_seconds=0,
                            faults=FaultPlan(item_errors={"server_error": 0.3}))  # fmt: skip
    input_path = tmp_path / "in.csv"
    with open(input_path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text"])
        writer.writerows([f"r{i}", f"text {i}"] for i in range(30))
    with EmulatorServer(tmp_path / "emulator", config) as server:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LLMBULK_"))}
        base.update(LLMBULK_DB=db_url, OPENAI_API_KEY="sk-shared-test", OPENAI_BASE_URL=server.openai_base_url)

        def llmbulk(home: str, *args: str) -> subprocess.CompletedProcess:
            env = {**base, "LLMBULK_HOME": str(tmp_path / home)}
            return subprocess.run([sys.executable, "-m", "llmbulk", *args], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=120)  # fmt: skip

        submitted = llmbulk("runner-a", "submit", str(input_path), "-p", "openai", "-m", "gpt-4o-mini",
                            "--prompt", "{{ text }}", "--id-column", "id", "--json")  # fmt: skip
        assert submitted.returncode == 0, submitted.stderr
        job_id = json.loads(submitted.stdout)["job_id"]
        assert not (tmp_path / "runner-b").exists()
        finished = llmbulk("runner-b", "run", job_id, "--out", "out.csv", "--max-attempts", "10")
        assert finished.returncode == 0, finished.stderr
    with open(tmp_path / "out.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["id"] for r in rows] == [f"r{i}" for i in range(30)]
    assert {r["status"] for r in rows} == {"succeeded"} and any(r["attempts"] != "1" for r in rows)
    assert list((tmp_path / "runner-b" / "jobs" / job_id / "results").glob("*.jsonl"))  # downloaded by runner B


def test_worker_continues_every_active_job(tmp_path: Path) -> None:
    config = EmulatorConfig(validating_seconds=0, running_seconds=0, finalizing_seconds=0)
    input_path = tmp_path / "in.csv"
    input_path.write_text("id,text\n" + "".join(f"r{i},text {i}\n" for i in range(12)))
    with EmulatorServer(tmp_path / "emulator", config) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LLMBULK_"))}
        env.update(LLMBULK_HOME=str(tmp_path / "state"), OPENAI_API_KEY="sk-worker-test",
                   OPENAI_BASE_URL=server.openai_base_url, LLMBULK_POLL_INITIAL="0.05")  # fmt: skip

        def llmbulk(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "llmbulk", *args], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=120)  # fmt: skip

        ids = []
        for _ in range(2):
            submitted = llmbulk("submit", str(input_path), "-p", "openai", "-m", "gpt-4o-mini", "--prompt",
                                "{{ text }}", "--json", "--new-job")  # fmt: skip
            assert submitted.returncode == 0, submitted.stderr
            ids.append(json.loads(submitted.stdout)["job_id"])
        passed = llmbulk("worker", "--json")
        assert passed.returncode == 0, passed.stderr
        assert sorted(json.loads(passed.stdout)["finished"]) == sorted(ids)
        states = {j["job_id"]: j["state"] for j in json.loads(llmbulk("jobs", "--json").stdout)}
        assert states == dict.fromkeys(ids, "done")
        assert all((tmp_path / f"llmbulk-{job}.csv").exists() for job in ids)


def test_a_runner_elsewhere_rebuilds_unsent_shards_from_its_own_checkout(tmp_path: Path, db_url: str) -> None:
    """Runner A packs three shards but may send only one; runner B, with another checkout path and
    no shard files, renders the other two again from its copy of the input (sha256-checked)."""
    rows = [[f"r{i}", f"text {i}"] for i in range(30)]
    for checkout in ("checkout-a", "checkout-b", "checkout-c"):
        (tmp_path / checkout / "data").mkdir(parents=True)
        with open(tmp_path / checkout / "data" / "in.csv", "w", newline="") as fh:
            csv.writer(fh).writerows([["id", "text"], *rows])
    edited = [*rows[:15], ["r15", "text edited"], *rows[16:]]  # runner C's copy differs in a row of shard 2
    with open(tmp_path / "checkout-c" / "data" / "in.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["id", "text"], *edited])
    config = EmulatorConfig(validating_seconds=0, running_seconds=0, finalizing_seconds=0)
    with EmulatorServer(tmp_path / "emulator", config) as server:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LLMBULK_"))}
        base.update(LLMBULK_DB=db_url, OPENAI_API_KEY="sk-shared-test", OPENAI_BASE_URL=server.openai_base_url,
                    LLMBULK_POLL_INITIAL="0.1", LLMBULK_POLL_MAX="0.2")  # fmt: skip

        def llmbulk(checkout: str, *args: str) -> subprocess.CompletedProcess:
            env = {**base, "LLMBULK_HOME": str(tmp_path / f"home-{checkout}")}
            return subprocess.run([sys.executable, "-m", "llmbulk", *args], cwd=tmp_path / checkout, env=env,
                                  capture_output=True, text=True, timeout=120)  # fmt: skip

        submitted = llmbulk("checkout-a", "submit", "data/in.csv", "-p", "openai", "-m", "gpt-4o-mini",
                            "--prompt", "{{ text }}", "--id-column", "id", "--max-items-per-batch", "10",
                            "--max-active-batches", "1", "--json")  # fmt: skip
        assert submitted.returncode == 0, submitted.stderr
        job_id = json.loads(submitted.stdout)["job_id"]
        (tmp_path / "checkout-a").rename(tmp_path / "elsewhere")  # runner A's machine is gone
        refused = llmbulk("checkout-c", "run", job_id, "--out", "out.csv")
        assert refused.returncode != 0
        assert f"changed since job {job_id} was submitted" in refused.stderr and "Traceback" not in refused.stderr
        finished = llmbulk("checkout-b", "run", job_id, "--out", "out.csv")
        assert finished.returncode == 0, finished.stderr
        created = [e for e in server.emulator.audit_events() if e["event"] == "batch.created"]
    with open(tmp_path / "checkout-b" / "out.csv", newline="") as fh:
        out = list(csv.DictReader(fh))
    assert [r["id"] for r in out] == [f"r{i}" for i in range(30)] and {r["status"] for r in out} == {"succeeded"}
    assert len(created) == 3  # one batch per shard: nothing sent twice by either runner
    rebuilt = sorted(p.name for p in (tmp_path / "home-checkout-b" / "jobs" / job_id / "shards").glob("*.jsonl"))
    assert rebuilt == ["00002.jsonl", "00003.jsonl"]
