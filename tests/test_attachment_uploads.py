"""Attachments uploaded once and referenced (#22): many rows and later jobs share one upload, and a run
killed around the upload reruns without a second one. Real SDKs over real HTTP to the emulator; the
emulator's own file records count the uploads.
"""

from __future__ import annotations

import csv
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from conftest import Outcome

from llmbulk.emulator import EmulatorConfig, EmulatorServer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples" / "invoices"))
sys.path.insert(0, str(ROOT / "examples" / "product_photos"))
from make_invoices import pdf  # noqa: E402
from make_photos import png  # noqa: E402

MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"}
FAKE_KEY = "sk-upload-test-key"
ATTACHMENT_NAME = re.compile(r"llmbulk-[0-9a-f]{64}\.")


def _uploads(emulator_dir: Path) -> list[dict]:
    """The attachment files the emulator holds (llmbulk names them after their hash)."""
    metas = [orjson.loads(p.read_bytes()) for p in (emulator_dir / "files").glob("*.json")]
    return [m for m in metas if ATTACHMENT_NAME.match(str(m.get("filename") or m.get("display_name") or ""))]


def _input(folder: Path, rows: int = 6) -> Path:
    """Rows that all send the same terms-and-conditions PDF, each with a photo of its own."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "terms.pdf").write_bytes(pdf(["Terms and conditions", "Pay within 30 days."]))
    for n in range(rows):
        (folder / f"p{n}.png").write_bytes(png(4, 4, (n * 25 % 256, 0, 0)))
    path = folder / "rows.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "photo", "terms"])
        writer.writerows([f"r{n}", f"p{n}.png", "terms.pdf"] for n in range(rows))
    return path


def _sent(home: Path) -> bytes:
    return b"\n".join(p.read_bytes() for p in sorted(home.glob("jobs/*/shards/*.jsonl")))


@pytest.mark.parametrize("provider", sorted(MODELS))
def test_a_file_used_by_many_rows_is_uploaded_once_and_a_later_job_reuses_it(
    provider: str, tmp_path: Path, home: Path, llmbulk: Callable[..., Outcome]
) -> None:
    path = _input(tmp_path / "in")
    args = ["run", str(path), "--provider", provider, "--model", MODELS[provider], "--attach", "photo",
            "--attach", "terms", "--id-column", "id", "--emulate"]  # fmt: skip
    first = llmbulk(*args, "--prompt", "Check this photo against the terms", "--out", "one.csv")
    assert first.exit_code == 0, first.stderr
    uploads = _uploads(home / "emulator")
    assert len(uploads) == 1 and uploads[0]["bytes"] == (tmp_path / "in" / "terms.pdf").stat().st_size
    sent = _sent(home)
    assert sent.count(uploads[0]["id"].encode()) == 6  # every row references the one upload
    assert b"application/pdf;base64" not in sent and b'"mimeType":"application/pdf","data"' not in sent
    assert "1 file sent by reference (1 uploaded now" in first.stderr
    second = llmbulk(*args, "--prompt", "Does the photo break the terms?", "--out", "two.csv")
    assert second.exit_code == 0, second.stderr
    assert len(_uploads(home / "emulator")) == 1  # the second job referenced the same file
    assert "(0 uploaded now, 1 already at" in second.stderr
    with open(tmp_path / "two.csv", newline="") as fh:
        assert {r["status"] for r in csv.DictReader(fh)} == {"succeeded"}


def test_never_sends_everything_inline(tmp_path: Path, home: Path, llmbulk: Callable[..., Outcome]) -> None:
    path = _input(tmp_path / "in", rows=3)
    result = llmbulk(
        "run", str(path), "--provider", "gemini", "--model", MODELS["gemini"], "--prompt", "Check",
        "--attach", "photo", "--attach", "terms", "--id-column", "id", "--attach-upload", "never", "--emulate",
        "--out", "o.csv",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert _uploads(home / "emulator") == [] and _sent(home).count(b'"mimeType":"application/pdf","data"') == 3


# --- a run killed around the upload ---------------------------------------------------------------------


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorServer]:
    config = EmulatorConfig(validating_seconds=0.05, running_seconds=0.1, finalizing_seconds=0.05)
    with EmulatorServer(tmp_path / "emulator", config) as server:
        yield server


def _env(tmp_path: Path, server: EmulatorServer, crash_at: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "GOOGLE_", "LLMBULK_"))}
    env.update(
        LLMBULK_HOME=str(tmp_path / "state"), OPENAI_API_KEY=FAKE_KEY, OPENAI_BASE_URL=server.openai_base_url,
        ANTHROPIC_API_KEY=FAKE_KEY, ANTHROPIC_BASE_URL=server.anthropic_base_url,
        GOOGLE_API_KEY=FAKE_KEY, GOOGLE_GEMINI_BASE_URL=server.gemini_base_url,
        LLMBULK_POLL_INITIAL="0.05", LLMBULK_POLL_MAX="0.2",
    )  # fmt: skip
    if crash_at:
        env["LLMBULK_CRASH_AT"] = crash_at
    return env


@pytest.mark.parametrize("point", ["after_attachment_intent", "before_attachment_upload", "after_attachment_upload"])
@pytest.mark.parametrize("provider", sorted(MODELS))
def test_a_run_killed_around_the_upload_reruns_without_a_second_upload(
    provider: str, point: str, tmp_path: Path, emulator: EmulatorServer
) -> None:
    path = _input(tmp_path / "in", rows=4)
    args = [sys.executable, "-m", "llmbulk", "run", str(path), "-p", provider, "-m", MODELS[provider],
            "--prompt", "Check", "--attach", "terms", "--id-column", "id", "--out", "out.csv"]  # fmt: skip
    killed = subprocess.run(args, cwd=tmp_path, env=_env(tmp_path, emulator, point), capture_output=True, timeout=60)
    assert killed.returncode == -9, killed.stderr
    expected_before = 1 if point == "after_attachment_upload" else 0
    assert len(_uploads(tmp_path / "emulator")) == expected_before
    rerun = subprocess.run(args, cwd=tmp_path, env=_env(tmp_path, emulator), capture_output=True, timeout=60, text=True)
    assert rerun.returncode == 0, rerun.stderr
    uploads = _uploads(tmp_path / "emulator")
    assert len(uploads) == 1  # adopted after the lost answer, or uploaded once by the rerun
    with sqlite3.connect(tmp_path / "state" / "llmbulk.db") as db:
        rows = db.execute("SELECT file_id FROM attachment_files").fetchall()
    assert rows == [(uploads[0]["id"],)]
    with open(tmp_path / "out.csv", newline="") as fh:
        assert [r["status"] for r in csv.DictReader(fh)] == ["succeeded"] * 4


# --- gc -------------------------------------------------------------------------------------------------


def test_gc_deletes_attachment_uploads_no_open_job_needs(
    tmp_path: Path, home: Path, llmbulk: Callable[..., Outcome]
) -> None:
    path = _input(tmp_path / "in", rows=3)
    base = ["--provider", "openai", "--model", MODELS["openai"], "--prompt", "Check", "--attach", "photo",
            "--attach", "terms", "--id-column", "id", "--emulate"]  # fmt: skip
    assert llmbulk("submit", str(path), *base, "--new-job").exit_code == 0  # left open: it needs the upload
    [upload] = _uploads(home / "emulator")

    def attachments() -> list[dict]:
        scans = llmbulk("gc", "--emulate", "-p", "openai", "--json").json()["providers"]
        return [left for scan in scans for left in scan["leftovers"] if left["kind"] == "attachment"]

    assert attachments() == []  # an open job references it
    [job] = llmbulk("jobs", "--json").json()
    assert llmbulk("cancel", job["job_id"]).exit_code == 0
    listed = attachments()
    assert [left["id"] for left in listed] == [upload["id"]]
    applied = llmbulk("gc", "--emulate", "-p", "openai", "--apply", "--json").json()["providers"][0]["leftovers"]
    assert [(left["id"], left["outcome"]) for left in applied if left["kind"] == "attachment"] == [
        (upload["id"], "deleted")
    ]
    assert _uploads(home / "emulator") == []
    with sqlite3.connect(home / "llmbulk.db") as db:
        assert db.execute("SELECT COUNT(*) FROM attachment_files").fetchone() == (0,)
    # The next job uploads it again (the record went with the file).
    again = llmbulk("run", str(path), *base, "--new-job", "--out", "o.csv")
    assert again.exit_code == 0, again.stderr
    assert len(_uploads(home / "emulator")) == 1


@pytest.mark.parametrize("provider", sorted(MODELS))
def test_retried_rows_reference_the_upload_again(
    provider: str, tmp_path: Path, home: Path, llmbulk: Callable[..., Outcome], faults: Callable[..., None]
) -> None:
    faults(item_errors={"server_error": 0.5})
    path = _input(tmp_path / "in", rows=8)
    result = llmbulk(
        "run", str(path), "--provider", provider, "--model", MODELS[provider], "--prompt", "Check",
        "--attach", "photo", "--attach", "terms", "--id-column", "id", "--max-attempts", "12", "--emulate",
        "--out", "o.csv",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    shards = sorted(home.glob("jobs/*/shards/*.jsonl"))
    assert len(shards) > 1  # a retry round was packed
    [upload] = _uploads(home / "emulator")
    for shard in shards:  # every round references the one upload, none carries the PDF inline
        lines = shard.read_bytes().splitlines()
        assert all(upload["id"].encode() in line for line in lines)
    with open(tmp_path / "o.csv", newline="") as fh:
        assert {r["status"] for r in csv.DictReader(fh)} == {"succeeded"}
