"""Polling cost: a six-hour job is watched with at most 40 poll rounds.

`run` and the emulator share a simulated clock, so six hours pass in a second: `run`'s sleeps
move the clock, the emulator's batches progress by it, and the emulator counts the calls it
served. The SDK, HTTP and the state database are real.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from llmbulk import api
from llmbulk.config import load_settings
from llmbulk.emulator import EmulatorConfig, EmulatorServer

HOUR = 3600.0


class SimulatedClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def wall(self) -> float:
        return 1_800_000_000.0 + self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.mark.parametrize("n_batches", [1, 6])
def test_six_hour_job_costs_at_most_40_polls(tmp_path: Path, n_batches: int) -> None:
    clock = SimulatedClock()
    # Batches run about six hours, ending up to 30% apart (the emulator's jitter).
    config = EmulatorConfig(validating_seconds=60, running_seconds=5 * HOUR, finalizing_seconds=600,
                            jitter=0.3, clock=clock.wall)  # fmt: skip
    source = tmp_path / "in.csv"
    with open(source, "w", newline="") as fh:
        csv.writer(fh).writerows([["id", "text"], *([f"r{i}", f"text {i}"] for i in range(6 * 5))])
    with EmulatorServer(tmp_path / "emulator", config) as server:
        env = {"OPENAI_BASE_URL": server.openai_base_url, "OPENAI_API_KEY": "sk-test", "PATH": "/usr/bin:/bin"}
        settings = load_settings(home=tmp_path / "home", env=env)
        options = api.SubmitOptions(input=source, provider="openai", model="gpt-4o-mini", prompt="{{ text }}",
                                    id_column="id", max_items_per_batch=30 // n_batches)  # fmt: skip
        result = api.run(None, options, tmp_path / "out.csv", settings=settings, sleep=clock.sleep,
                         clock=clock.monotonic)  # fmt: skip
        polls = sum(n for call, n in server.emulator.calls.items() if call.startswith("GET /openai/v1/batches"))
    assert result.finished and result.status.counts == {"succeeded": 30}
    assert 5 * HOUR < clock.now < 9 * HOUR  # it did take (simulated) hours
    rounds = len(clock.sleeps)
    assert rounds <= 40, (rounds, clock.sleeps)
    assert polls <= 40, polls  # one list call per round once several batches are live
    assert max(clock.sleeps) <= 900  # the interval is capped at 15 minutes
