"""Several `llmbulk` processes on one job at once (cron collect overlapping a manual run): no
duplicate batch, no corrupted state, output identical to a single run. Real processes, real SQLite
(and PostgreSQL when LLMBULK_TEST_POSTGRES_URL is set).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmbulk.emulator import EmulatorConfig, EmulatorServer


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorServer]:
    config = EmulatorConfig(validating_seconds=0.05, running_seconds=0.3, finalizing_seconds=0.05, jitter=0.5)
    with EmulatorServer(tmp_path / "emulator", config) as server:
        yield server


@pytest.fixture
def db_url(store_url: str) -> str:
    """The shared state database: conftest's SQLite file or fresh PostgreSQL schema."""
    return store_url


def _env(home: Path, server: EmulatorServer, db: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LLMBULK_"))}
    env.update(LLMBULK_HOME=str(home), LLMBULK_DB=db, OPENAI_API_KEY="fake-concurrency-key",
               OPENAI_BASE_URL=server.openai_base_url, LLMBULK_POLL_INITIAL="0.05", LLMBULK_POLL_MAX="0.2")  # fmt: skip
    return env


def _write_input(path: Path) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text"])
        writer.writerows([f"r{i}", f"text {i}"] for i in range(40))


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "llmbulk", *args]


def _outputs(path: Path) -> list[tuple[str, str, str]]:
    with open(path, newline="") as fh:
        return [(r["id"], r["status"], r["output"]) for r in csv.DictReader(fh)]


@pytest.mark.parametrize("runners", [2, 4])
def test_concurrent_runners_match_a_single_run(
    runners: int, tmp_path: Path, emulator: EmulatorServer, db_url: str
) -> None:
    input_path = tmp_path / "in.csv"
    _write_input(input_path)
    submit = ["-p", "openai", "-m", "gpt-4o-mini", "--prompt", "Label: {{ text }}", "--id-column", "id",
              "--max-items-per-batch", "6"]  # fmt: skip
    single_env = _env(tmp_path / "single", emulator, f"sqlite:///{tmp_path / 'single.db'}")
    single = subprocess.run(_cmd("run", str(input_path), *submit, "--out", "single.csv"), cwd=tmp_path,
                            env=single_env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert single.returncode == 0, single.stderr

    # The submitter sends two of the seven shards; each runner has only the database and the input
    # (a state home of its own, as on another machine), so the rest are rebuilt by whoever sends them.
    env = _env(tmp_path / "submitter", emulator, db_url)
    submitted = subprocess.run(_cmd("submit", str(input_path), *submit, "--max-active-batches", "2", "--json"),
                               cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    job_id = json.loads(submitted.stdout)["job_id"]
    processes = [
        subprocess.Popen(
            _cmd("run", job_id, "--out", f"out{i}.csv", "--wait-lock", "120"),
            cwd=tmp_path,
            env=_env(tmp_path / f"runner{i}", emulator, db_url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(runners)
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=180)
        assert process.returncode == 0, stderr
        assert "database is locked" not in stderr
    expected = _outputs(tmp_path / "single.csv")
    for i in range(runners):
        assert _outputs(tmp_path / f"out{i}.csv") == expected
    shared_batches = [
        e for e in emulator.emulator.audit_events()
        if e["event"] == "batch.created" and (e.get("metadata") or {}).get("llmbulk_job") == job_id
    ]  # fmt: skip
    per_shard = Counter(e["metadata"]["llmbulk_shard"] for e in shared_batches)
    assert len(per_shard) == 7 and set(per_shard.values()) == {1}
