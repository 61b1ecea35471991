"""Never pay twice in everyday use: the same command run again, cancel, fencing, reconciliation.

Each test runs llmbulk through its CLI (or library) against the emulator with the real SDKs and
a real state database, and checks the emulator's audit log: what the provider was asked to do.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import QUICKSTART, Outcome

from llmbulk import api
from llmbulk.config import load_settings
from llmbulk.errors import LeaseError
from llmbulk.leases import JobLease
from llmbulk.store import Store
from llmbulk.store.schema import Batch

MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"}
PROMPT = "Sentiment of: {{ text }}"


def _run_args(provider: str = "openai", *extra: str) -> list[str]:
    return ["run", str(QUICKSTART), "-p", provider, "-m", MODELS[provider], "--prompt", PROMPT,
            "--id-column", "review_id", "--max-items-per-batch", "20", "--emulate", *extra]  # fmt: skip


def _audit(home: Path) -> list[dict[str, Any]]:
    path = home / "emulator" / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _created(home: Path) -> list[dict[str, Any]]:
    return [e for e in _audit(home) if e["event"] == "batch.created"]


def _jobs(llmbulk: Callable[..., Outcome]) -> list[dict[str, Any]]:
    listed = llmbulk("jobs", "--json")
    assert listed.exit_code == 0, listed.stderr
    return listed.json()


def _events(home: Path, job_id: str) -> list[dict[str, Any]]:
    log = home / "jobs" / job_id / "log.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()]


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_the_same_run_command_twice_continues_its_job_and_pays_once(
    provider: str, llmbulk: Callable[..., Outcome], home: Path, tmp_path: Path
) -> None:
    first = llmbulk(*_run_args(provider, "--out", "out.csv"))
    assert first.exit_code == 0, first.stderr
    created = len(_created(home))
    assert created >= 2
    (tmp_path / "out.csv").unlink()
    again = llmbulk(*_run_args(provider, "--out", "out.csv"))
    assert again.exit_code == 0, again.stderr
    assert "already finished with the same input and options" in again.stderr
    assert len(_jobs(llmbulk)) == 1
    assert len(_created(home)) == created  # nothing sent again
    assert len(_rows(tmp_path / "out.csv")) == 50  # the output is written again from the state

    separate = llmbulk(*_run_args(provider, "--out", "out2.csv", "--new-job"))
    assert separate.exit_code == 0, separate.stderr
    assert len(_jobs(llmbulk)) == 2
    assert len(_created(home)) == created  # a separate job, answered from the first one's answers
    assert {r["reused_from"].split("/")[0] for r in _rows(tmp_path / "out2.csv")} == {_jobs(llmbulk)[1]["job_id"]}
    fresh = llmbulk(*_run_args(provider, "--out", "out3.csv", "--new-job", "--fresh"))
    assert fresh.exit_code == 0, fresh.stderr
    assert len(_jobs(llmbulk)) == 3
    assert len(_created(home)) == 2 * created  # --fresh sends everything again


def test_a_changed_input_or_option_is_a_new_job(llmbulk: Callable[..., Outcome], home: Path, tmp_path: Path) -> None:
    assert llmbulk(*_run_args("openai", "--out", "a.csv")).exit_code == 0
    grown = tmp_path / "reviews.csv"
    grown.write_text(QUICKSTART.read_text() + "R9999,kettle,one more review\n")
    args = _run_args("openai", "--out", "b.csv")
    args[1] = str(grown)
    assert llmbulk(*args).exit_code == 0
    assert llmbulk(*_run_args("openai", "--out", "c.csv", "--max-tokens", "20")).exit_code == 0
    assert len(_jobs(llmbulk)) == 3


def test_submit_rerun_sends_only_the_shards_still_unsent(
    llmbulk: Callable[..., Outcome], home: Path, faults: Callable[..., None]
) -> None:
    # Every create after the first fails for now (503 after the SDK would retry; create has no retries).
    faults(http_faults=[{"method": "POST", "path_regex": "/batches$", "status": 503, "times": 50, "skip": 1}])
    args = ["submit", *_run_args("openai")[1:], "--json"]
    first = llmbulk(*args)
    assert first.exit_code == 0, first.stderr
    job_id = first.json()["job_id"]
    assert len(first.json()["batch_ids"]) == 1 and first.json()["queued_shards"] == 2
    faults()
    second = llmbulk(*args)
    assert second.exit_code == 0, second.stderr
    assert second.json()["job_id"] == job_id and second.json()["continued"]
    assert f"continuing job {job_id}" in second.stderr
    per_shard = Counter(e["metadata"]["llmbulk_shard"] for e in _created(home))
    assert len(per_shard) == 3 and set(per_shard.values()) == {1}


def test_cancelled_stays_cancelled_until_resumed(llmbulk: Callable[..., Outcome], home: Path, monkeypatch) -> None:
    monkeypatch.setenv("LLMBULK_EMULATOR_SECONDS", "30")  # batches stay running while we cancel
    submitted = llmbulk("submit", *_run_args("openai")[1:], "--json")
    job_id = submitted.json()["job_id"]
    cancelled = llmbulk("cancel", job_id)
    assert cancelled.exit_code == 0, cancelled.stderr
    sent = len(_created(home))
    assert llmbulk("status", job_id).exit_code == 7
    retried = llmbulk("retry", job_id)
    assert retried.exit_code == 7 and "llmbulk resume" in retried.stderr
    ran = llmbulk("run", job_id, "--out", "out.csv", "--timeout", "20")
    assert ran.exit_code == 7, ran.stderr
    worker = llmbulk("worker", "--timeout", "5")
    assert worker.exit_code == 0, worker.stderr
    again = llmbulk(*_run_args("openai", "--out", "out.csv"))  # the same command: refused, not re-paid
    assert again.exit_code == 7 and f"llmbulk resume {job_id}" in again.stderr
    assert len(_created(home)) == sent and len(_jobs(llmbulk)) == 1

    monkeypatch.setenv("LLMBULK_EMULATOR_SECONDS", "0")
    assert llmbulk("resume", job_id).exit_code == 0
    finished = llmbulk("run", job_id, "--out", "out.csv")
    assert finished.exit_code == 0, finished.stderr
    assert _jobs(llmbulk)[0]["state"] == "done"


def test_cancel_of_a_finished_job_changes_nothing(llmbulk: Callable[..., Outcome], home: Path) -> None:
    assert llmbulk(*_run_args("openai", "--out", "out.csv")).exit_code == 0
    job_id = _jobs(llmbulk)[0]["job_id"]
    result = llmbulk("cancel", job_id)
    assert result.exit_code == 0 and "already finished" in result.stderr
    assert _jobs(llmbulk)[0]["state"] == "done"
    assert not [e for e in _audit(home) if e["event"] == "batch.cancelled"]


def test_cancel_while_another_process_holds_the_job_is_honoured_by_it(
    llmbulk: Callable[..., Outcome], home: Path, monkeypatch
) -> None:
    monkeypatch.setenv("LLMBULK_EMULATOR_SECONDS", "30")
    job_id = llmbulk("submit", *_run_args("openai")[1:], "--json").json()["job_id"]
    store = Store.open(load_settings().db_url)
    try:
        with JobLease(store, job_id):
            asked = llmbulk("cancel", job_id)
            assert asked.exit_code == 0, asked.stderr
            assert "asked it to cancel" in asked.stderr
            assert store.get_job(job_id).state == "active"
        ran = llmbulk("run", job_id, "--out", "out.csv", "--timeout", "20")  # the next holder honours it
        assert ran.exit_code == 7, ran.stderr
        assert store.get_job(job_id).state == "cancelled"
    finally:
        store.close()
    assert len([e for e in _audit(home) if e["event"] == "batch.cancelled"]) == 3


def _store_with_job(tmp_path: Path, job_id: str) -> Store:
    """A fresh SQLite store holding one bare active job (for lease tests)."""
    store = Store.open(f"sqlite:///{tmp_path / 'state.db'}")
    with store.tx() as tx:
        tx._conn.exec_driver_sql(
            "INSERT INTO jobs (id, created_at, provider, model, input_path, input_format, spec_json, emulated,"
            " max_attempts, max_items, max_bytes, n_items, state, lease_gen) VALUES"
            " (?, 0, 'openai', 'm', '/x', 'csv', '{}', 1, 3, 10, 100, 0, 'active', 0)",
            (job_id,),
        )
    return store


def test_a_takeover_fences_the_old_holder(tmp_path: Path) -> None:
    store = _store_with_job(tmp_path, "jfence")
    paused = JobLease(store, "jfence", ttl=0.3)
    paused._stop.set()  # as if the process were stopped: no heartbeat
    time.sleep(0.4)
    with JobLease(store, "jfence", ttl=30) as successor:
        assert successor.gen == paused.gen + 1
        with pytest.raises(LeaseError, match="lost the lease"), paused.fenced() as tx:
            tx.add_batch(Batch(id="b", job_id="jfence", shard_id="s", state="creating", intent_at=0))
        assert store.batches("jfence") == []  # the intent was never recorded
        with pytest.raises(LeaseError):
            paused.guard()
        with successor.fenced():
            pass
    store.close()


def test_a_holder_whose_machine_slept_checks_the_database_before_a_provider_call(tmp_path: Path) -> None:
    """A closed laptop lid: the monotonic clock stood still while the wall clock (and the lease) ran on."""
    store = _store_with_job(tmp_path, "jsleep")
    sleeper = JobLease(store, "jsleep", ttl=0.6)
    sleeper._stop.set()  # asleep: no heartbeat
    time.sleep(0.7)
    with JobLease(store, "jsleep", ttl=30):  # another runner took the job meanwhile
        _monotonic, wall = sleeper._confirmed
        sleeper._confirmed = (time.monotonic(), wall)  # as after a suspend: no monotonic time passed
        with pytest.raises(LeaseError, match="lost the lease"):
            sleeper.guard()
    store.close()


def test_another_holders_create_in_flight_is_waited_for_then_reconciled(home: Path, tmp_path: Path) -> None:
    options = api.SubmitOptions(input=QUICKSTART, provider="openai", model="gpt-4o-mini", prompt=PROMPT,
                                id_column="review_id", max_items_per_batch=20, emulate=True,
                                max_active_batches=1)  # fmt: skip
    settings = load_settings(env={"LLMBULK_HOME": str(home), "LLMBULK_EMULATOR_SECONDS": "0"})
    job_id = api.submit(options, settings=settings).job_id
    store = Store.open(settings.db_url)
    try:
        shard = store.unsent_shards(job_id)[0]
        # A runner on another machine recorded its create intent moments ago and may still be sending it.
        with store.tx() as tx:
            tx.add_batch(Batch(id=f"{shard.id}-b1", job_id=job_id, shard_id=shard.id, state="creating",
                               intent_at=time.time(), owner="elsewhere:4242:abcd"))  # fmt: skip
        waiting = api.run(job_id, settings=settings, timeout=1.5)
        assert not waiting.finished
        assert shard.id not in {e["metadata"]["llmbulk_shard"] for e in _created(home)}
        later = load_settings(env={**settings.env, "LLMBULK_INFLIGHT_WINDOW": "0"})
        done = api.run(job_id, settings=later, out=tmp_path / "out.csv")
        assert done.finished
    finally:
        store.close()
    per_shard = Counter(e["metadata"]["llmbulk_shard"] for e in _created(home))
    assert len(per_shard) == 3 and set(per_shard.values()) == {1}


def test_a_second_provider_batch_for_a_shard_is_cancelled_and_logged(home: Path, tmp_path: Path) -> None:
    import openai

    from llmbulk.emulator import EmulatorServer
    from llmbulk.emulator.settings import config_from_env

    settings = load_settings(env={"LLMBULK_HOME": str(home), "LLMBULK_EMULATOR_SECONDS": "3"})
    options = api.SubmitOptions(input=QUICKSTART, provider="openai", model="gpt-4o-mini", prompt=PROMPT,
                                id_column="review_id", max_items_per_batch=20, emulate=True)  # fmt: skip
    job_id = api.submit(options, settings=settings).job_id
    store = Store.open(settings.db_url)
    try:
        (first, *_rest) = store.batches(job_id)
        shard = next(s for s in store.shards(job_id) if s.id == first.shard_id)
        # A paused runner's create that landed after the shard was sent: same shard, a second batch.
        with EmulatorServer(settings.emulator_dir, config_from_env(settings.env)) as server:
            client = openai.OpenAI(api_key="k", base_url=server.openai_base_url)
            with open(home / shard.path, "rb") as fh:
                upload = client.files.create(file=(f"{shard.id}.jsonl", fh), purpose="batch")
            extra = client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                          completion_window="24h", metadata={"llmbulk_job": job_id,
                                                                             "llmbulk_shard": shard.id})  # fmt: skip
        with store.tx() as tx:
            tx.add_batch(Batch(id=f"{shard.id}-b2", job_id=job_id, shard_id=shard.id, state="validating",
                               provider_batch_id=extra.id, intent_at=time.time(), created_at=time.time()))  # fmt: skip
        result = api.run(job_id, settings=settings, out=tmp_path / "out.csv")
        assert result.finished
        dup = next(b for b in store.batches(job_id) if b.provider_batch_id == extra.id)
        assert (dup.state, dup.error_code) == ("cancelled", "duplicate")
    finally:
        store.close()
    assert extra.id in {e["id"] for e in _audit(home) if e["event"] == "batch.cancelled"}
    logged = [e for e in _events(home, job_id) if e.get("event") == "batch.duplicate_cancelled"]
    assert [e["batch_id"] for e in logged] == [extra.id]
    rows = _rows(tmp_path / "out.csv")
    assert len(rows) == 50 and {r["status"] for r in rows} == {"succeeded"}


def test_anthropic_never_adopts_a_same_sized_batch_of_another_job(home: Path, tmp_path: Path) -> None:
    """Job Y's batch, not yet recorded, matches job X's lost create by time and size: proven not X's."""
    import anthropic

    from llmbulk.emulator import EmulatorServer
    from llmbulk.emulator.settings import config_from_env

    env = {"LLMBULK_HOME": str(home), "LLMBULK_EMULATOR_SECONDS": "0", "LLMBULK_INFLIGHT_WINDOW": "0"}
    settings = load_settings(env=env)
    common = dict(input=QUICKSTART, provider="anthropic", model="claude-haiku-4-5", id_column="review_id",
                  max_items_per_batch=20, emulate=True, max_active_batches=1)  # fmt: skip
    job_x = api.submit(api.SubmitOptions(prompt=PROMPT, **common), settings=settings).job_id  # type: ignore[arg-type]
    job_y = api.submit(api.SubmitOptions(prompt="Other: {{ text }}", **common), settings=settings).job_id  # type: ignore[arg-type]
    store = Store.open(settings.db_url)
    try:
        x_shard = store.unsent_shards(job_x)[0]
        y_shard = store.unsent_shards(job_y)[0]
        intent_at = time.time()
        with store.tx() as tx:
            tx.add_batch(Batch(id=f"{x_shard.id}-b1", job_id=job_x, shard_id=x_shard.id, state="creating",
                               intent_at=intent_at, owner="gone:1:x"))  # fmt: skip
        with EmulatorServer(settings.emulator_dir, config_from_env(settings.env)) as server:
            client = anthropic.Anthropic(api_key="k", base_url=server.anthropic_base_url)
            requests = [json.loads(line) for line in (home / y_shard.path).read_text().splitlines()]
            stranger = client.messages.batches.create(requests=requests)
        result = api.run(job_x, settings=settings, out=tmp_path / "x.csv")
        assert result.finished
        x_batches = {b.provider_batch_id for b in store.batches(job_x)}
        assert stranger.id not in x_batches
    finally:
        store.close()
    rows = _rows(tmp_path / "x.csv")
    assert len(rows) == 50 and {r["status"] for r in rows} == {"succeeded"}


@pytest.mark.parametrize("args, message", [
    (["--out", str(QUICKSTART)], "is the input file"),
    (["--out", "missing/out.csv"], "does not exist"),
    (["--out", "o.csv", "--format", "parquet"], "not --format parquet"),
])  # fmt: skip
def test_a_bad_out_is_refused_before_anything_is_sent(
    args: list[str], message: str, llmbulk: Callable[..., Outcome], home: Path
) -> None:
    before = QUICKSTART.read_bytes()
    result = llmbulk(*_run_args("openai", *args))
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not _created(home) and QUICKSTART.read_bytes() == before
    assert _jobs(llmbulk) == []


@pytest.mark.parametrize("variable, value", [("LLMBULK_POLL_INITIAL", "abc"), ("LLMBULK_LEASE_TTL", "0"),
                                             ("LLMBULK_HTTP_TIMEOUT", "nan")])  # fmt: skip
def test_a_bad_duration_setting_is_one_line(
    variable: str, value: str, llmbulk: Callable[..., Outcome], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    result = llmbulk("jobs")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: {variable}={value!r} is not a number of seconds — " + (
        "unset it or give seconds, e.g. " + {"LLMBULK_POLL_INITIAL": "30", "LLMBULK_LEASE_TTL": "60",
                                             "LLMBULK_HTTP_TIMEOUT": "600"}[variable]
    )  # fmt: skip


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_mid_run_is_one_line_naming_the_job_and_the_same_command_continues(
    signum: int, home: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "LLMBULK_EMULATOR_SECONDS": "8", "LLMBULK_EMULATED_POLL_INITIAL": "0.2"}
    args = [sys.executable, "-m", "llmbulk", *_run_args("openai", "--out", "out.csv")]
    process = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(_created(home)) < 3 and time.monotonic() < deadline:  # every shard sent: now it polls
        time.sleep(0.1)
    process.send_signal(signum)
    _out, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    (job,) = [j["job_id"] for j in json.loads(subprocess.run(
        [sys.executable, "-m", "llmbulk", "jobs", "--json"], cwd=tmp_path, env=env, capture_output=True, text=True
    ).stdout)]  # fmt: skip
    word = "interrupted" if signum == signal.SIGINT else "terminated"
    assert err.strip().splitlines()[-1] == (
        f"error: {word}; job {job} is safe to continue: llmbulk run {job} (or rerun the same command)"
    )
    env["LLMBULK_EMULATOR_SECONDS"] = "0"
    again = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert f"continuing job {job}" in again.stderr
    assert len(_created(home)) == 3  # the same three batches, collected
    assert len(_rows(tmp_path / "out.csv")) == 50


def _stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


def test_a_signal_during_the_job_commit_names_the_job_it_made_and_keeps_its_shards(home: Path, tmp_path: Path) -> None:
    """Python runs a handler just after the C call it lands in: a signal during the commit must not
    surface before the new job is named (the line would name no job) or delete the job's shards."""
    env = {**os.environ, "LLMBULK_EMULATOR_SECONDS": "0", "LLMBULK_PAUSE_AT": "job_commit"}
    args = [sys.executable, "-m", "llmbulk", *_run_args("openai", "--out", "out.csv")]
    process = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not _stopped(process.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)  # lands while the commit is about to run
    process.send_signal(signal.SIGCONT)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    del env["LLMBULK_PAUSE_AT"]
    (job,) = [j["job_id"] for j in json.loads(subprocess.run(
        [sys.executable, "-m", "llmbulk", "jobs", "--json"], cwd=tmp_path, env=env, capture_output=True, text=True
    ).stdout)]  # fmt: skip
    assert err.strip().splitlines()[-1] == (
        f"error: interrupted; job {job} is safe to continue: llmbulk run {job} (or rerun the same command)"
    )
    shards = sorted((home / "jobs" / job / "shards").iterdir())
    assert len(shards) == 3
    assert not _created(home)  # stopped before sending anything
    again = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert f"continuing job {job}" in again.stderr
    assert len(_created(home)) == 3 and len(_rows(tmp_path / "out.csv")) == 50


def test_a_nul_byte_in_an_id_is_refused_before_anything_is_recorded(
    llmbulk: Callable[..., Outcome], home: Path, tmp_path: Path
) -> None:
    table = tmp_path / "nul.csv"
    table.write_bytes(b"id,text\nr1,fine\nr\x002,bad\n")
    result = llmbulk("run", str(table), "-p", "openai", "-m", "gpt-4o-mini", "--prompt", PROMPT, "--id-column", "id",
                     "--emulate", "--out", "o.csv")  # fmt: skip
    assert result.exit_code == 2 and "row 2" in result.stderr and "NUL" in result.stderr
    assert _jobs(llmbulk) == [] and not _created(home)


def test_db_in_a_missing_folder_is_an_error_not_a_new_database(llmbulk: Callable[..., Outcome], tmp_path: Path) -> None:
    result = llmbulk("jobs", "--db", str(tmp_path / "nowhere" / "state.db"))
    assert result.exit_code == 1 and "no folder" in result.stderr
    assert not (tmp_path / "nowhere").exists()


def test_several_jobs_in_a_row_on_one_database(store_url: str, tmp_path: Path) -> None:
    """A finished job, then more on the same and another model: calibration reads the finished ones."""
    settings = load_settings(env={"LLMBULK_HOME": str(tmp_path / "home"), "LLMBULK_DB": store_url,
                                  "LLMBULK_EMULATOR_SECONDS": "0"})  # fmt: skip
    common = dict(input=QUICKSTART, provider="openai", id_column="review_id", emulate=True)
    ids = []
    for model, prompt in (("gpt-4o-mini", PROMPT), ("gpt-4o-mini", "Topic: {{ text }}"), ("gpt-4o", PROMPT)):
        options = api.SubmitOptions(model=model, prompt=prompt, **common)  # type: ignore[arg-type]
        result = api.run(None, options, out=tmp_path / f"{len(ids)}.csv", settings=settings)
        assert result.finished and result.status.counts == {"succeeded": 50}
        ids.append(result.job_id)
    assert len(set(ids)) == 3
    estimate = api.submit(api.SubmitOptions(model="gpt-4o-mini", prompt="Again: {{ text }}", **common),  # type: ignore[arg-type]
                          dry_run=True, settings=settings).estimate  # fmt: skip
    assert estimate is not None and estimate.input_tokens > 0


def test_a_file_size_limit_is_one_line_and_loses_nothing(store_url: str, tmp_path: Path) -> None:
    """`ulimit -f`: shards and outputs cannot be written (a SQLite state cannot either: one line too)."""
    import resource

    from llmbulk.emulator import EmulatorConfig, EmulatorServer

    def limit() -> None:  # too small for the first shard
        resource.setrlimit(resource.RLIMIT_FSIZE, (6000, 6000))

    with EmulatorServer(tmp_path / "emulator", EmulatorConfig(validating_seconds=0, running_seconds=0,
                                                              finalizing_seconds=0)) as server:  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMBULK_", "OPENAI_"))}
        env.update(LLMBULK_HOME=str(tmp_path / ".llmbulk"), LLMBULK_DB=store_url, OPENAI_API_KEY="k",
                   OPENAI_BASE_URL=server.openai_base_url, LLMBULK_POLL_INITIAL="0.1")  # fmt: skip
        args = [sys.executable, "-m", "llmbulk", *[a for a in _run_args("openai", "--out", "out.csv")
                                                    if a != "--emulate"]]  # fmt: skip
        failed = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
                                preexec_fn=limit)  # fmt: skip
        assert failed.returncode == 1, failed.stderr
        assert "Traceback" not in failed.stderr and len(failed.stderr.strip().splitlines()) == 1
        assert ("File too large" if store_url.startswith("postgresql") else "disk I/O error") in failed.stderr
        again = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
        created = [e for e in server.emulator.audit_events() if e["event"] == "batch.created"]
        assert len(created) == 3
    assert len(_rows(tmp_path / "out.csv")) == 50


def test_a_resumed_holder_never_sets_back_a_batch_another_holder_adopted_and_collected(home: Path) -> None:
    """Paused after its create returned: meanwhile the next holder adopted that very batch and collected it."""
    settings = load_settings(env={"LLMBULK_HOME": str(home), "LLMBULK_EMULATOR_SECONDS": "0"})
    options = api.SubmitOptions(input=QUICKSTART, provider="openai", model="gpt-4o-mini", prompt=PROMPT,
                                id_column="review_id", emulate=True)  # fmt: skip
    job_id = api.run(None, options, settings=settings, out=home.parent / "o.csv").job_id
    store = Store.open(settings.db_url)
    try:
        (batch,) = store.batches(job_id)
        assert batch.collected_at is not None
        assert batch.provider_batch_id is not None
        with store.tx() as tx:
            late = tx.mark_submitted(batch.id, batch.shard_id, job_id, provider_batch_id=batch.provider_batch_id,
                                     created_at=time.time())  # fmt: skip
        assert late is None
        (after,) = store.batches(job_id)
        assert (after.state, after.collected_at) == (batch.state, batch.collected_at)
        assert api.status(job_id, settings=settings).finished
    finally:
        store.close()
