"""Results delivered as each batch ends: the output table grows batch by batch, and
`collect --follow --format jsonl --out -` streams each row to stdout once, as it settles.

Real `llmbulk` subprocesses against their in-process emulator (`--emulate`), batches that take a
second each and are paced one at a time so they end at different moments.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import KEY_VARS, QUICKSTART

PROMPT = "Classify the sentiment of this review as positive, negative or neutral: {{ text }}"
with open(QUICKSTART, newline="") as _fh:
    INPUT_IDS = [row["review_id"] for row in csv.DictReader(_fh)]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARS}
    env.update(LLMBULK_HOME=str(tmp_path / ".llmbulk"), LLMBULK_EMULATOR_SECONDS="1", LLMBULK_POLL_INITIAL="0.2")
    env.update(LLMBULK_POLL_MAX="0.4", COLUMNS="200", **extra)
    return env


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "llmbulk", *args]


def _succeeded(path: Path) -> int:
    try:
        with open(path, newline="") as fh:
            return sum(row["status"] == "succeeded" for row in csv.DictReader(fh))
    except FileNotFoundError:
        return 0


def test_run_output_table_grows_batch_by_batch(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    proc = subprocess.Popen(
        _cli("run", str(QUICKSTART), "-p", "openai", "-m", "gpt-4o-mini", "--prompt", PROMPT, "--id-column",
             "review_id", "--max-items-per-batch", "20", "--max-active-batches", "1", "--out", str(out),
             "--emulate"),
        cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    seen: list[int] = []
    while proc.poll() is None:
        count = _succeeded(out)
        if not seen or seen[-1] != count:
            seen.append(count)
        time.sleep(0.05)
    _, stderr = proc.communicate()
    assert proc.returncode == 0, stderr
    # Observed while the run was still going: the first batches' rows before the last batch ended.
    assert 20 in seen and 40 in seen, seen
    assert _succeeded(out) == 50
    with open(out, newline="") as fh:
        assert [row["review_id"] for row in csv.DictReader(fh)] == INPUT_IDS


@pytest.mark.parametrize("provider,model", [("openai", "gpt-4o-mini"), ("gemini", "gemini-2.5-flash")])
def test_follow_streams_each_row_once_as_it_settles(tmp_path: Path, provider: str, model: str) -> None:
    faults = json.dumps({"item_errors": {"invalid_request": 0.1}})
    env = _env(tmp_path, LLMBULK_EMULATOR_FAULTS=faults)
    submitted = subprocess.run(
        _cli("submit", str(QUICKSTART), "-p", provider, "-m", model, "--prompt", PROMPT, "--id-column",
             "review_id", "--max-items-per-batch", "20", "--max-active-batches", "1", "--emulate", "--json"),
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    job_id = json.loads(submitted.stdout)["job_id"]
    started = time.monotonic()
    proc = subprocess.Popen(
        _cli("collect", job_id, "--follow", "--format", "jsonl", "--out", "-"),
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    arrivals: list[tuple[float, dict]] = []
    stderr: list[str] = []
    drain = threading.Thread(target=lambda: stderr.extend(proc.stderr or []), daemon=True)
    drain.start()
    for line in proc.stdout or []:
        arrivals.append((time.monotonic() - started, json.loads(line)))
    proc.wait(timeout=120)
    drain.join(timeout=5)
    ended = time.monotonic() - started
    assert proc.returncode == 4, "".join(stderr)  # done, with the invalid requests failed
    rows = [row for _, row in arrivals]
    assert Counter(row["review_id"] for row in rows) == Counter(INPUT_IDS)  # every row exactly once
    assert {row["status"] for row in rows} == {"succeeded", "failed_permanent"}
    assert all(row["output"] for row in rows if row["status"] == "succeeded")
    # The first batch's rows were on stdout well before the last batch ended.
    assert arrivals[0][0] < ended - 1.0, (arrivals[0][0], ended)
    assert len({round(t, 1) for t, _ in arrivals}) >= 3  # three batches, three deliveries
