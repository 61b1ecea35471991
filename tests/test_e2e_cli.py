"""End to end through the CLI on the emulator: submit → status → collect → retry → collect, per provider.

The real SDKs talk real HTTP to the in-process emulator that `--emulate` starts; state is a real
SQLite file in tmp_path. Faults are injected through the emulator's fault plan.
"""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from conftest import QUICKSTART, Outcome

from llmbulk.models import parse_custom_id

PROMPT = "Classify the sentiment of this review as positive, negative or neutral: {{ text }}"
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"}
PROVIDERS = ["openai", "anthropic", "gemini"]
with open(QUICKSTART, newline="") as _fh:
    INPUT_IDS = [row["review_id"] for row in csv.DictReader(_fh)]


def _submit(llmbulk: Callable[..., Outcome], provider: str, *extra: str) -> dict:
    result = llmbulk(
        "submit",
        str(QUICKSTART),
        "--provider",
        provider,
        "--model",
        MODELS[provider],
        "--prompt",
        PROMPT,
        "--id-column",
        "review_id",
        "--emulate",
        "--json",
        *extra,
    )
    assert result.exit_code == 0, result.stderr
    return result.json()


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _shard_rows(home: Path, job_id: str, seq: int) -> list[int]:
    path = home / "jobs" / job_id / "shards" / f"{seq:05d}.jsonl"
    rows = []
    for line in path.read_bytes().splitlines():
        data = orjson.loads(line)
        custom_id = data.get("custom_id") or data.get("key")
        rows.append(parse_custom_id(custom_id)[1])
    return rows


@pytest.mark.parametrize("provider", PROVIDERS)
def test_submit_status_collect_retry_collect(
    provider: str, llmbulk: Callable[..., Outcome], faults: Callable[..., None], home: Path
) -> None:
    faults(item_errors={"rate_limit": 0.25, "invalid_request": 0.1})
    submitted = _submit(llmbulk, provider, "--max-items-per-batch", "20")
    job_id = submitted["job_id"]
    assert submitted["n_items"] == 50 and len(submitted["batch_ids"]) == 3

    status = llmbulk("status", job_id, "--refresh", "--json")
    assert status.exit_code in (3, 4), status.stderr
    assert sum(status.json()["counts"].values()) == 50

    first = llmbulk("collect", job_id, "--out", "first.csv", "--json")
    assert first.exit_code == 3, first.stderr  # retryable failures left: not done
    rows = _rows(home.parent / "first.csv")
    assert [r["review_id"] for r in rows] == INPUT_IDS
    by_state: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        by_state.setdefault(row["status"], []).append(index)
    assert set(by_state) <= {"succeeded", "failed_retryable", "failed_permanent"}
    assert by_state.get("failed_retryable") and by_state.get("failed_permanent") and by_state.get("succeeded")
    for index in by_state["succeeded"]:
        assert rows[index]["output"] and not rows[index]["error"]
    for index in by_state["failed_retryable"] + by_state["failed_permanent"]:
        assert rows[index]["error"] and not rows[index]["output"]

    retried = llmbulk("retry", job_id, "--json")
    assert retried.exit_code == 0, retried.stderr
    assert retried.json()["n_items"] == len(by_state["failed_retryable"])
    # Exactly the failed-retryable rows, in new shards (over 20 of them make two).
    retry_shards = sorted((home / "jobs" / job_id / "shards").glob("*.jsonl"))[3:]
    assert len(retry_shards) == -(-len(by_state["failed_retryable"]) // 20)
    retried_rows = [row for path in retry_shards for row in _shard_rows(home, job_id, int(path.stem))]
    assert retried_rows == by_state["failed_retryable"]

    final = llmbulk("collect", job_id, "--out", "final.csv", "--json")
    rows = _rows(home.parent / "final.csv")
    assert [r["review_id"] for r in rows] == INPUT_IDS
    for index in by_state["succeeded"]:
        assert rows[index]["status"] == "succeeded" and rows[index]["attempts"] == "1"
    for index in by_state["failed_permanent"]:
        assert rows[index]["status"] == "failed_permanent" and rows[index]["attempts"] == "1"
    for index in by_state["failed_retryable"]:
        assert rows[index]["attempts"] == "2"
    counts = final.json()["counts"]
    assert sum(counts.values()) == 50
    # Job usage (summed per batch at collect) matches the attempts as recorded, item by item.
    usage = final.json()["usage"]
    assert usage["attempts"] == 50 + len(by_state["failed_retryable"])
    assert usage["input_tokens"] == _attempt_tokens(home, job_id, "input_tokens") > 0
    assert usage["output_tokens"] == _attempt_tokens(home, job_id, "output_tokens") > 0


def _attempt_tokens(home: Path, job_id: str, column: str) -> int:
    with sqlite3.connect(home / "llmbulk.db") as db:
        return db.execute(f"SELECT SUM({column}) FROM attempts WHERE job_id = ?", (job_id,)).fetchone()[0]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_run_completes_with_retries_and_every_row_once(
    provider: str, llmbulk: Callable[..., Outcome], faults: Callable[..., None], home: Path
) -> None:
    faults(item_errors={"server_error": 0.2})
    result = llmbulk(
        "run", str(QUICKSTART), "-p", provider, "-m", MODELS[provider], "--prompt", PROMPT,
        "--id-column", "review_id", "--out", "out.parquet", "--emulate", "--max-attempts", "10",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    import pyarrow.parquet as pq

    table = pq.read_table(home.parent / "out.parquet").to_pylist()
    assert [r["review_id"] for r in table] == INPUT_IDS
    assert {r["status"] for r in table} == {"succeeded"}
    assert any(r["attempts"] > 1 for r in table)
    assert all(r["output"] for r in table)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_expired_batch_keeps_finished_results_and_retries_the_rest(
    provider: str, llmbulk: Callable[..., Outcome], faults: Callable[..., None], home: Path
) -> None:
    faults(expire_batches=[1], expire_fraction=0.5)
    submitted = _submit(llmbulk, provider)
    job_id = submitted["job_id"]
    first = llmbulk("collect", job_id, "--out", "first.csv", "--json")
    counts = first.json()["counts"]
    assert counts.get("succeeded", 0) > 0 and counts.get("failed_retryable", 0) > 0
    assert counts["succeeded"] + counts["failed_retryable"] == 50
    rows = _rows(home.parent / "first.csv")
    assert all("expire" in r["error"] for r in rows if r["status"] == "failed_retryable")
    run = llmbulk("run", job_id, "--out", "final.csv")
    assert run.exit_code == 0, run.stderr
    final = _rows(home.parent / "final.csv")
    assert [r["status"] for r in final] == ["succeeded"] * 50


@pytest.mark.parametrize("provider", PROVIDERS)
def test_every_item_failing_permanently_ends_done_with_failures(
    provider: str, llmbulk: Callable[..., Outcome], faults: Callable[..., None], home: Path
) -> None:
    faults(item_errors={"invalid_request": 1.0})
    result = llmbulk(
        "run", str(QUICKSTART), "-p", provider, "-m", MODELS[provider], "--prompt", PROMPT,
        "--id-column", "review_id", "--out", "out.csv", "--emulate", "--json",
    )  # fmt: skip
    assert result.exit_code == 4, result.stderr
    assert result.json()["counts"] == {"failed_permanent": 50}
    assert {r["status"] for r in _rows(home.parent / "out.csv")} == {"failed_permanent"}


def test_openai_validation_failed_batch_is_retried(
    llmbulk: Callable[..., Outcome], faults: Callable[..., None], home: Path
) -> None:
    faults(fail_validation_batches=[1])
    result = llmbulk(
        "run", str(QUICKSTART), "-p", "openai", "-m", "gpt-4o-mini", "--prompt", PROMPT,
        "--id-column", "review_id", "--out", "out.csv", "--emulate", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    rows = _rows(home.parent / "out.csv")
    assert {r["attempts"] for r in rows} == {"2"} and {r["status"] for r in rows} == {"succeeded"}
    batches = result.json()["batches"]
    assert batches[0]["state"] == "failed" and batches[0]["error"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_cancel_harvests_finished_items_and_leaves_the_rest_retryable(
    provider: str, llmbulk: Callable[..., Outcome], home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMBULK_EMULATOR_SECONDS", "600")
    submitted = _submit(llmbulk, provider)
    job_id = submitted["job_id"]
    cancelled = llmbulk("cancel", job_id, "--json")
    assert cancelled.exit_code == 0, cancelled.stderr
    monkeypatch.setenv("LLMBULK_EMULATOR_SECONDS", "0")
    collected = llmbulk("collect", job_id, "--out", "out.csv", "--json")
    counts = collected.json()["counts"]
    assert sum(counts.values()) == 50
    assert counts.get("failed_retryable", 0) > 0
    assert collected.json()["batches"][0]["state"] == "cancelled"


def test_gemini_inline_mode_end_to_end(llmbulk: Callable[..., Outcome], home: Path) -> None:
    result = llmbulk(
        "run", str(QUICKSTART), "-p", "gemini", "-m", MODELS["gemini"], "--prompt", PROMPT,
        "--id-column", "review_id", "--out", "out.csv", "--emulate", "--gemini-inline", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    rows = _rows(home.parent / "out.csv")
    assert [r["review_id"] for r in rows] == INPUT_IDS and {r["status"] for r in rows} == {"succeeded"}
    audit = _audit(home)
    assert any(e["event"] == "batch.created" for e in audit)
    assert not any(e["event"] == "file.created" and e.get("purpose") == "input" for e in audit)  # nothing uploaded


def test_gemini_inline_is_refused_for_other_providers(llmbulk: Callable[..., Outcome]) -> None:
    result = llmbulk("submit", str(QUICKSTART), "-p", "openai", "-m", "gpt-4o-mini", "--prompt", PROMPT,
                     "--emulate", "--gemini-inline")  # fmt: skip
    assert result.exit_code == 2 and "--gemini-inline" in result.stderr


def _audit(home: Path) -> list[dict]:
    path = home / "emulator" / "audit.jsonl"
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def _log(home: Path, job_id: str) -> list[dict]:
    return [orjson.loads(line) for line in (home / "jobs" / job_id / "log.jsonl").read_bytes().splitlines()]


def test_max_active_batches_paces_submission(llmbulk: Callable[..., Outcome], home: Path) -> None:
    result = llmbulk(
        "run", str(QUICKSTART), "-p", "openai", "-m", "gpt-4o-mini", "--prompt", PROMPT, "--id-column",
        "review_id", "--max-items-per-batch", "20", "--max-active-batches", "1", "--out", "out.csv",
        "--emulate", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    in_flight, most = 0, 0
    for event in _log(home, result.json()["job_id"]):
        if event["event"] == "batch.created":
            in_flight += 1
        elif event["event"] in ("batch.ended", "batch.failed", "batch.expired", "batch.cancelled"):
            in_flight -= 1
        most = max(most, in_flight)
    assert most == 1
    assert [e["event"] for e in _log(home, result.json()["job_id"])].count("batch.created") == 3


def test_token_limit_failure_requeues_the_shard_without_failing_items(
    llmbulk: Callable[..., Outcome], faults: Callable[..., None], home: Path
) -> None:
    faults(token_limit_batches=[1])
    result = llmbulk(
        "run", str(QUICKSTART), "-p", "openai", "-m", "gpt-4o-mini", "--prompt", PROMPT, "--id-column",
        "review_id", "--out", "out.csv", "--emulate", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    rows = _rows(home.parent / "out.csv")
    assert {r["status"] for r in rows} == {"succeeded"} and {r["attempts"] for r in rows} == {"1"}
    states = [b["state"] for b in result.json()["batches"]]
    assert states == ["requeued", "ended"]


def test_events_reach_a_command_and_a_dead_webhook_does_not_break_the_run(
    llmbulk: Callable[..., Outcome], home: Path
) -> None:
    sink = home.parent / "events.jsonl"
    result = llmbulk(
        "run", str(QUICKSTART), "-p", "openai", "-m", "gpt-4o-mini", "--prompt", PROMPT, "--out", "out.csv",
        "--emulate", "--json", "--on-event", f"cat >> {sink}; echo >> {sink}",
        "--webhook", "http://127.0.0.1:9/unreachable",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    events = [orjson.loads(line)["event"] for line in sink.read_bytes().splitlines() if line.strip()]
    assert events[0] == "job.submitted" and events[-1] == "job.done"
    assert "batch.created" in events and "batch.collected" in events
    log = _log(home, result.json()["job_id"])
    names = [e["event"] for e in log if e["event"] not in ("progress", "delivery.failed")]
    assert names[:3] == ["job.started", "job.submitted", "batch.created"]  # parameters first
    assert any(e["event"] == "delivery.failed" and "webhook" in e["error"] for e in log)


CREATE_ROUTES = {
    "openai": r"/openai/v1/batches$",
    "anthropic": r"/anthropic/v1/messages/batches$",
    "gemini": r":batchGenerateContent$",
}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_rate_limited_create_requeues_the_shard_and_the_job_completes(
    provider: str, llmbulk: Callable[..., Outcome], faults: Callable[..., None], home: Path
) -> None:
    faults(http_faults=[{"method": "POST", "path_regex": CREATE_ROUTES[provider], "status": 429, "times": 2,
                         "retry_after_ms": 10}])  # fmt: skip
    result = llmbulk(
        "run", str(QUICKSTART), "-p", provider, "-m", MODELS[provider], "--prompt", PROMPT, "--id-column",
        "review_id", "--out", "out.csv", "--emulate", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    rows = _rows(home.parent / "out.csv")
    assert [r["review_id"] for r in rows] == INPUT_IDS
    assert {r["status"] for r in rows} == {"succeeded"} and {r["attempts"] for r in rows} == {"1"}
    assert [b["state"] for b in result.json()["batches"]] == ["requeued", "requeued", "ended"]
    events = [e["event"] for e in _log(home, result.json()["job_id"])]
    assert events.count("batch.requeued") == 2 and events.count("batch.created") == 1


def test_job_log_has_progress_every_thousand_items(llmbulk: Callable[..., Outcome], home: Path) -> None:
    source = home.parent / "many.csv"
    with open(source, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["review_id", "text"])
        writer.writerows([f"r{i}", f"review number {i}"] for i in range(2_500))
    result = llmbulk(
        "run", str(source), "-p", "openai", "-m", "gpt-4o-mini", "--prompt", PROMPT, "--id-column", "review_id",
        "--max-items-per-batch", "2000", "--out", "out.csv", "--emulate", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    log = _log(home, result.json()["job_id"])
    progress: dict[str, list[int]] = {}
    for record in log:
        if record["event"] == "progress":
            progress.setdefault(record["stage"].split()[0], []).append(record["done"])
    assert progress["pack"] == [1_000, 2_000, 2_500]
    collected = sorted(progress["collect"])  # two batches: 2,000 and 500 results
    assert collected == [500, 1_000, 2_000]
    assert log[0]["event"] == "job.started" and log[0]["spec"]["prompt"] == PROMPT
    assert log[-1]["event"] == "job.done" and log[-1]["counts"] == {"succeeded": 2_500}
    hooks = [r for r in log if r["event"] == "delivery.failed"]
    assert not hooks
