"""Provider hygiene (#21 part 4, #23 part 4): expiry on every upload and batch, files deleted at the provider
once collected (kept with --keep-files), the warning before uncollected results expire, `llmbulk prune`,
and one files listing per send round — the real CLI and SDKs over real HTTP against the emulator.
"""

from __future__ import annotations

import csv
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from llmbulk.emulator import Emulator, EmulatorConfig, EmulatorServer, FaultPlan, HttpFault
from llmbulk.retention import WARN_WITHIN, expiry_warning

DAY = 86_400
OPENAI = ("-p", "openai", "-m", "gpt-4o-mini")
GEMINI = ("-p", "gemini", "-m", "gemini-2.5-flash")


def _input(tmp_path: Path, rows: int = 9) -> Path:
    path = tmp_path / "in.csv"
    path.write_text("id,text\n" + "".join(f"r{i},review {i}\n" for i in range(rows)))
    return path


def _args(tmp_path: Path, provider: tuple[str, ...], *extra: str) -> list[str]:
    # Three shards of three rows each.
    return [str(_input(tmp_path)), *provider, "--prompt", "Label: {{ text }}", "--id-column", "id",
            "--max-items-per-batch", "3", "--emulate", *extra]  # fmt: skip


def _emulator(home: Path) -> Emulator:
    return Emulator(home / "emulator")


def _db(home: Path) -> sqlite3.Connection:
    db = sqlite3.connect(home / "llmbulk.db")
    db.row_factory = sqlite3.Row
    return db


def _job(llmbulk: Callable[..., Any]) -> str:
    return str(llmbulk("jobs", "--json").json()[0]["job_id"])


def test_every_upload_and_batch_carries_an_expiry(llmbulk: Callable[..., Any], home: Path, tmp_path: Path) -> None:
    submitted = llmbulk("submit", *_args(tmp_path, OPENAI))
    assert submitted.exit_code == 0, submitted.stderr
    emulator = _emulator(home)
    uploads = [f for f in emulator.list_files("openai") if f.get("purpose") == "batch"]
    assert len(uploads) == 3
    for upload in uploads:  # what the emulator got: expires_after {created_at, 14 days}
        assert upload["expiry_set"] and upload["expires_at"] - upload["created_at"] == 14 * DAY
    batches = emulator.list_batches("openai")
    assert len(batches) == 3 and {b["output_expires_seconds"] for b in batches} == {30 * DAY}


def test_collect_deletes_input_and_result_files_at_the_provider_and_keeps_raw_results(
    llmbulk: Callable[..., Any], home: Path, tmp_path: Path
) -> None:
    done = llmbulk("run", *_args(tmp_path, OPENAI), "--out", "out.csv")
    assert done.exit_code == 0, done.stderr
    emulator = _emulator(home)
    audit = emulator.audit_events()
    made = {e["id"] for e in audit if e["event"] == "file.created"}
    assert len(made) == 6  # three uploads, three output files (no item failed: no error file)
    assert {e["id"] for e in audit if e["event"] == "file.deleted"} == made
    assert emulator.list_files("openai") == []
    job = _job(llmbulk)
    with _db(home) as db:
        rows = db.execute("SELECT id, files_deleted_at FROM batches WHERE job_id = ?", (job,)).fetchall()
    assert len(rows) == 3 and all(r["files_deleted_at"] for r in rows)
    raw = sorted((home / "jobs" / job / "results").glob("*.jsonl"))
    assert [p.name for p in raw] == [f"{r['id']}.jsonl" for r in sorted(rows, key=lambda r: r["id"])]
    assert sum(len(p.read_bytes().splitlines()) for p in raw) == 9
    again = llmbulk("collect", job, "--out", "again.csv")  # nothing asked of the provider again
    assert again.exit_code == 0, again.stderr
    assert len([e for e in emulator.audit_events() if e["event"] == "file.deleted"]) == 6


def test_keep_files_leaves_everything_at_the_provider(llmbulk: Callable[..., Any], home: Path, tmp_path: Path) -> None:
    done = llmbulk("run", *_args(tmp_path, OPENAI, "--keep-files"), "--out", "out.csv")
    assert done.exit_code == 0, done.stderr
    files = _emulator(home).list_files("openai")
    assert sorted(f["purpose"] for f in files) == ["batch"] * 3 + ["batch_output"] * 3
    assert not any(e["event"] == "file.deleted" for e in _emulator(home).audit_events())


def test_keep_files_given_to_collect_is_kept_with_the_job(
    llmbulk: Callable[..., Any], home: Path, tmp_path: Path
) -> None:
    assert llmbulk("submit", *_args(tmp_path, OPENAI)).exit_code == 0
    job = _job(llmbulk)
    collected = llmbulk("collect", job, "--out", "out.csv", "--keep-files")
    assert collected.exit_code == 0, collected.stderr
    assert len(_emulator(home).list_files("openai")) == 6
    with _db(home) as db:
        (spec,) = db.execute("SELECT spec_json FROM jobs WHERE id = ?", (job,)).fetchone()
    assert '"keep_files":true' in spec


def test_gemini_uploads_and_result_files_are_deleted_after_use(
    llmbulk: Callable[..., Any], home: Path, tmp_path: Path
) -> None:
    done = llmbulk("run", *_args(tmp_path, GEMINI), "--out", "out.csv")
    assert done.exit_code == 0, done.stderr
    emulator = _emulator(home)
    audit = emulator.audit_events()
    made = [e for e in audit if e["event"] == "file.created"]
    assert sorted(e["purpose"] for e in made) == ["batch_output"] * 3 + ["input"] * 3
    assert {e["id"] for e in audit if e["event"] == "file.deleted"} == {e["id"] for e in made}
    assert emulator.list_files("gemini") == []


def test_status_and_collect_warn_before_uncollected_results_expire(
    llmbulk: Callable[..., Any], home: Path, tmp_path: Path
) -> None:
    # Gemini keeps a result file 48 h: an ended batch not yet collected is always within the 72 h warning.
    assert llmbulk("submit", *_args(tmp_path, GEMINI)).exit_code == 0
    job = _job(llmbulk)
    quiet = llmbulk("status", job)  # nothing polled yet: no batch is known to have ended
    assert "not collected" not in quiet.stderr
    polled = llmbulk("status", job, "--refresh")
    warning = [line for line in polled.stderr.splitlines() if "not collected" in line]
    assert len(warning) == 1, polled.stderr
    assert f"3 ended batch(es) of job {job}" in warning[0] and "expire in 48 h" in warning[0]
    assert f"llmbulk collect {job}" in warning[0]
    assert "not collected" in llmbulk("status", job).stderr  # the quick path says it too
    collected = llmbulk("collect", job, "--out", "out.csv")
    assert collected.exit_code == 0 and "not collected" not in collected.stderr
    assert "not collected" not in llmbulk("status", job).stderr


def _status(provider: str, **batch: Any) -> Any:
    fields = {"id": "b1", "state": "ended", "collected": False, "created_at": 0.0, "ended_at": 0.0, **batch}
    return SimpleNamespace(job=SimpleNamespace(id="j1", provider=provider), batches=[SimpleNamespace(**fields)])


def test_expiry_warning_per_provider_retention() -> None:
    day = float(DAY)
    # OpenAI: output files 30 days after the batch ended; warned from 72 h before.
    assert expiry_warning(_status("openai", ended_at=0.0), now=27 * day - 1) is None
    assert "expire in 72 h" in (expiry_warning(_status("openai", ended_at=0.0), now=27 * day) or "")
    # Anthropic: 29 days after creation, whenever the batch ended.
    assert expiry_warning(_status("anthropic", created_at=0.0, ended_at=20 * day), now=26 * day - 1) is None
    assert expiry_warning(_status("anthropic", created_at=0.0, ended_at=20 * day), now=26 * day) is not None
    late = expiry_warning(_status("anthropic", created_at=0.0), now=30 * day) or ""
    assert "have expired" in late
    # Collected, failed or running batches, and vendors with no published retention: no warning.
    for status in (_status("openai", collected=True), _status("openai", state="failed"),
                   _status("openai", state="running", ended_at=None), _status("groq")):  # fmt: skip
        assert expiry_warning(status, now=29 * day) is None
    assert WARN_WITHIN == 72 * 3600


def test_prune_is_a_dry_run_until_apply_and_never_touches_a_running_job(
    llmbulk: Callable[..., Any], home: Path, tmp_path: Path
) -> None:
    assert llmbulk("run", *_args(tmp_path, OPENAI), "--out", "out.csv").exit_code == 0
    finished = _job(llmbulk)
    other = tmp_path / "other"
    other.mkdir()
    os.chdir(other)
    submitted = llmbulk(
        "submit", *_args(other, OPENAI), "--new-job", "--fresh", "--json"
    )  # not collected: still active
    running = submitted.json()["job_id"]
    assert running != finished
    results, shards = home / "jobs" / finished / "results", home / "jobs" / finished / "shards"
    assert len(list(results.glob("*.jsonl"))) == 3 and len(list(shards.glob("*.jsonl"))) == 3

    dry = llmbulk("prune", "--json").json()
    assert dry["applied"] is False and [j["job_id"] for j in dry["jobs"]] == [finished]
    assert dry["jobs"][0]["files"] == 6 and dry["jobs"][0]["outcome"] is None
    assert len(list(results.glob("*.jsonl"))) == 3  # nothing deleted
    assert llmbulk("prune", "--older-than", "30d", "--json").json()["jobs"] == []  # finished just now
    asked = llmbulk("prune", "--job", running, "--apply", "--json").json()
    assert asked["jobs"] == [] and asked["skipped"] == [{"job_id": running, "reason": "job is active, not finished"}]
    assert len(list((home / "jobs" / running / "shards").glob("*.jsonl"))) == 3

    applied = llmbulk("prune", "--apply")
    assert applied.exit_code == 0, applied.stderr
    assert f"{finished}: 6 file(s)" in applied.stdout and "deleted" in applied.stdout
    assert not results.exists() and list(shards.glob("*.jsonl")) == []
    assert (home / "jobs" / finished / "log.jsonl").exists()
    # The outcomes are in the database: the output table is written again without the raw files.
    rewritten = llmbulk("collect", finished, "--out", str(tmp_path / "again.csv"))
    assert rewritten.exit_code == 0, rewritten.stderr
    with open(tmp_path / "out.csv", newline="") as a, open(tmp_path / "again.csv", newline="") as b:
        assert list(csv.DictReader(a)) == list(csv.DictReader(b))


# ---- one files listing per send round (#23 part 4) ---------------------------------------------


def _server(tmp_path: Path, faults: list[HttpFault]) -> Iterator[EmulatorServer]:
    config = EmulatorConfig(validating_seconds=0.05, running_seconds=0.1, finalizing_seconds=0.05, jitter=0.0,
                            faults=FaultPlan(http_faults=faults))  # fmt: skip
    with EmulatorServer(tmp_path / "emu", config) as server:
        yield server


@pytest.fixture
def lossy(tmp_path: Path) -> Iterator[EmulatorServer]:
    """An emulator that loses the answer to the second upload (made, then the connection reset)."""
    yield from _server(tmp_path, [HttpFault(method="POST", path_regex=r"^/openai/v1/files$", action="reset",
                                            after=True, skip=1)])  # fmt: skip


@pytest.fixture
def clean(tmp_path: Path) -> Iterator[EmulatorServer]:
    yield from _server(tmp_path, [])


def _submit_to(server: EmulatorServer, llmbulk: Callable[..., Any], tmp_path: Path, mp: pytest.MonkeyPatch) -> None:
    mp.setenv("OPENAI_API_KEY", "sk-hygiene")
    mp.setenv("OPENAI_BASE_URL", server.openai_base_url)
    submitted = llmbulk("submit", *[a for a in _args(tmp_path, OPENAI) if a != "--emulate"])
    assert submitted.exit_code == 0, submitted.stderr


def test_no_files_listing_when_no_upload_was_sent_twice(
    llmbulk: Callable[..., Any], tmp_path: Path, clean: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _submit_to(clean, llmbulk, tmp_path, monkeypatch)
    assert clean.emulator.calls.get("POST /openai/v1/files") == 3
    assert "GET /openai/v1/files" not in clean.emulator.calls  # the SDK sent each upload once: no copy to look for


def test_one_files_listing_per_round_still_deletes_a_lost_uploads_copy(
    llmbulk: Callable[..., Any], home: Path, tmp_path: Path, lossy: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _submit_to(lossy, llmbulk, tmp_path, monkeypatch)
    calls = lossy.emulator.calls
    assert calls.get("POST /openai/v1/files") == 4  # three shards, one upload retried by the SDK
    assert calls.get("GET /openai/v1/files") == 1  # one listing for the round, not one per upload
    audit = lossy.emulator.audit_events()
    copies = [e for e in audit if e["event"] == "file.created" and e.get("name") == f"{_job(llmbulk)}-s0002.jsonl"]
    assert len(copies) == 2
    with _db(home) as db:
        recorded = {r[0] for r in db.execute("SELECT input_file_id FROM batches")}
    (stray,) = [e["id"] for e in copies if e["id"] not in recorded]
    assert [e["id"] for e in audit if e["event"] == "file.deleted"] == [stray]
    assert {f["id"] for f in lossy.emulator.list_files("openai")} == recorded  # each batch's input is kept

    time.sleep(0.5)  # the batches end
    collected = llmbulk("collect", _job(llmbulk), "--out", "out.csv")
    assert collected.exit_code == 0, collected.stderr
    assert lossy.emulator.list_files("openai") == []


@pytest.fixture
def failing_delete(tmp_path: Path) -> Iterator[EmulatorServer]:
    """An emulator whose first file delete fails with 500 three times (the SDK's two retries included)."""
    yield from _server(tmp_path, [HttpFault(method="DELETE", path_regex=r"^/openai/v1/files/", status=500, times=3)])


def test_a_failed_delete_is_a_warning_and_is_tried_again_by_the_next_collect(
    llmbulk: Callable[..., Any], tmp_path: Path, failing_delete: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _submit_to(failing_delete, llmbulk, tmp_path, monkeypatch)
    time.sleep(0.5)  # the batches end
    job = _job(llmbulk)
    collected = llmbulk("collect", job, "--out", "out.csv")
    assert collected.exit_code == 0, collected.stderr  # results collected; the output table written
    warnings = [line for line in collected.stderr.splitlines() if "could not delete" in line]
    assert len(warnings) == 1 and "HTTP 500" in warnings[0] and "gc" in warnings[0], collected.stderr
    assert len(failing_delete.emulator.list_files("openai")) == 1  # five of six deleted
    again = llmbulk("collect", job, "--out", "out.csv")
    assert again.exit_code == 0 and "could not delete" not in again.stderr, again.stderr
    assert failing_delete.emulator.list_files("openai") == []
