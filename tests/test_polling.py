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


MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"}


def _batches(server: EmulatorServer, tmp_path: Path, provider: str, n: int, *, inline: bool = False):
    """An adapter for `provider` on `server` and `n` batches of two requests each, created through it."""
    from llmbulk import providers
    from llmbulk.models import Task
    from llmbulk.providers.base import ProviderSettings, ShardInput

    base = {"openai": server.openai_base_url, "anthropic": server.anthropic_base_url, "gemini": server.gemini_base_url}
    settings = ProviderSettings(model=MODELS[provider], base_url=base[provider], api_key="k-test", inline=inline)
    adapter = providers.create(provider, settings)
    ids = []
    for seq in range(n):
        path = tmp_path / f"{provider}-{seq}.jsonl"
        tasks = [Task(i, f"r{i}", [{"role": "user", "content": f"hi {i}"}], None, {}) for i in range(2)]
        lines = [adapter.encode(task, f"jpoll1-{task.row_index}-{seq + 1}") for task in tasks]
        path.write_bytes(b"\n".join(lines) + b"\n")
        shard = ShardInput(f"s{seq}", path, 2, path.stat().st_size, "0" * 64)
        labels = {"llmbulk_job": "jpoll1", "llmbulk_shard": str(seq)}
        file_id = adapter.files.upload(shard, labels) if adapter.files is not None else None
        ids.append(adapter.create(shard, file_id, labels).batch_id)
    return adapter, ids


def _gets(server: EmulatorServer) -> dict[str, int]:
    return {call: n for call, n in server.emulator.calls.items() if call.startswith("GET ")}


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_a_poll_round_of_many_batches_is_one_listing_call(tmp_path: Path, provider: str) -> None:
    config = EmulatorConfig(validating_seconds=0, running_seconds=3600, jitter=0)
    with EmulatorServer(tmp_path / "emulator", config) as server:
        adapter, ids = _batches(server, tmp_path, provider, 20)
        before = _gets(server)
        statuses = adapter.poll(ids)
        after = _gets(server)
        adapter.close()
    made = {call: n - before.get(call, 0) for call, n in after.items() if n != before.get(call, 0)}
    assert len(made) == 1 and next(iter(made)).endswith("/batches"), made  # the listing; no retrieve per batch
    assert sum(made.values()) == 1, made
    assert [s.batch_id for s in statuses] == ids  # every batch, in the order asked
    assert {s.state.value for s in statuses} == {"running"}


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
def test_a_few_batches_are_retrieved_one_by_one(tmp_path: Path, provider: str) -> None:
    config = EmulatorConfig(validating_seconds=0, running_seconds=3600, jitter=0)
    with EmulatorServer(tmp_path / "emulator", config) as server:
        adapter, ids = _batches(server, tmp_path, provider, 2)
        before = sum(_gets(server).values())
        adapter.poll(ids)
        made = sum(_gets(server).values()) - before
        adapter.close()
    assert made == 2  # at or below the threshold a retrieve each is as few calls, and smaller answers


def test_ended_inline_gemini_batches_are_read_whole_after_the_listing(tmp_path: Path) -> None:
    """The listing leaves out inlined responses, so an ended inline job is fetched by name (its status
    then points at its inline results); an ended file job is complete in the listing."""
    config = EmulatorConfig(validating_seconds=0, running_seconds=0, finalizing_seconds=0, jitter=0)
    with EmulatorServer(tmp_path / "emulator", config) as server:
        (tmp_path / "inline").mkdir()
        inline, inline_ids = _batches(server, tmp_path / "inline", "gemini", 5, inline=True)
        files, file_ids = _batches(server, tmp_path, "gemini", 5)
        calls = server.emulator.calls
        gets = lambda: sum(n for c, n in calls.items() if c.startswith("GET ") and "/batches/" in c)  # noqa: E731
        lists = lambda: sum(n for c, n in calls.items() if c.startswith("GET ") and c.endswith("/batches"))  # noqa: E731
        before = (gets(), lists())
        inline_statuses = inline.poll(inline_ids)
        middle = (gets(), lists())
        file_statuses = files.poll(file_ids)
        after = (gets(), lists())
        inline.close()
        files.close()
    assert (middle[0] - before[0], middle[1] - before[1]) == (5, 1)
    assert all(s.state.value == "ended" and s.result_refs == {"inline": "1"} for s in inline_statuses)
    assert (after[0] - middle[0], after[1] - middle[1]) == (0, 1)
    assert all(s.state.value == "ended" and s.result_refs.get("file_name") for s in file_statuses)


def test_listing_stops_once_retrieving_the_rest_costs_no_more() -> None:
    from llmbulk.providers.base import listed

    read: list[int] = []

    def pages(size: int):
        for number in range(1, 100):
            read.append(number)
            yield [f"b{number}-{i}" for i in range(3)]

    wanted = ["b1-0", "b2-1", "x1", "x2", "x3", "x4"]
    found = listed(pages, str, wanted)
    # After page 2 two are found and four missing; after page 4 still four missing: stop (4 >= 4).
    assert found == {"b1-0": "b1-0", "b2-1": "b2-1"} and read == [1, 2, 3, 4]
    read.clear()
    wanted = ["b1-0", "b2-0", "b2-1", "b2-2"]
    assert listed(pages, str, wanted) == {b: b for b in wanted} and read == [1, 2]  # all found: no further page
    read.clear()
    assert listed(pages, str, ["b1-0", "b2-0", "b3-0"]) == {} and read == []  # a few: retrieved instead


def test_anthropic_results_come_from_the_url_its_poll_read(tmp_path: Path) -> None:
    """No second retrieve per batch before its download; a status this adapter did not read itself
    (recorded by another process: an emulator's port changes between runs) goes through the SDK's
    `results()`, which reads the batch afresh."""
    config = EmulatorConfig(validating_seconds=0, running_seconds=0, finalizing_seconds=0, jitter=0)
    with EmulatorServer(tmp_path / "emulator", config) as server:
        adapter, ids = _batches(server, tmp_path, "anthropic", 5)
        before = _gets(server)
        statuses = adapter.poll(ids)
        lines = [line for status in statuses for line in adapter.results(status)]
        made = calls_made(before, _gets(server))
        other, _ = _batches(server, tmp_path / "other", "anthropic", 0)
        before = _gets(server)
        again = list(other.results(statuses[0]))
        made_again = calls_made(before, _gets(server))
        adapter.close()
        other.close()
    assert len(lines) == 10 and len(again) == 2 and set(again) <= set(lines)
    assert made == {"listing": 1, "results": 5}, made
    assert made_again == {"retrieve": 1, "results": 1}, made_again


def calls_made(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for call, n in after.items():
        if n != before.get(call, 0):
            kind = "listing" if call.endswith("/batches") else "results" if call.endswith("/results") else "retrieve"
            kinds[kind] = kinds.get(kind, 0) + n - before.get(call, 0)
    return kinds
