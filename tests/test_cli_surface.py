"""The command line's everyday surface: tables that fit 80 columns with whole ids, every table in
--format csv/json/jsonl, `-h` on every command, completion of job ids/providers/states, and a
failed webhook delivery reported on stderr and in `status`."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import typer.main
from conftest import QUICKSTART
from typer.testing import CliRunner

from llmbulk import render
from llmbulk.cli import app, complete
from llmbulk.views import BatchView


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMBULK_", "OPENAI_", "COLUMNS"))}
    env.update(LLMBULK_HOME=str(home), LLMBULK_EMULATOR_SECONDS="0", **extra)
    return env


def _llmbulk(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmbulk", *args], env=_env(home, **env), capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, list[str]]]:
    """A finished emulated job of 50 items in 5 batches: (state home, job id, provider batch ids)."""
    home = tmp_path_factory.mktemp("surface") / "home"
    out = home.parent / "out.csv"
    ran = _llmbulk(home, "run", str(QUICKSTART), "-p", "openai", "-m", "gpt-4o-mini", "--prompt", "{{ text }}",
                   "--emulate", "--max-items-per-batch", "10", "--out", str(out), "--json")  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    status = json.loads(ran.stdout)
    batch_ids = [b["provider_batch_id"] for b in status["batches"]]
    assert len(batch_ids) == 5 and all(batch_ids)
    yield home, status["job_id"], batch_ids


@pytest.mark.parametrize("command", ["status", "jobs", "cost", "items"])
def test_tables_fit_80_columns_with_whole_ids(job: tuple[Path, str, list[str]], command: str) -> None:
    home, job_id, batch_ids = job
    args = {"status": [job_id], "jobs": [], "cost": [job_id], "items": [job_id, "--state", "succeeded"]}[command]
    shown = _llmbulk(home, command, *args, COLUMNS="80")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines and lines[0].strip(), "no empty first header row"
    assert max(len(line) for line in lines) <= 80, shown.stdout
    if command in ("status", "jobs"):
        assert job_id in shown.stdout.split()
    if command == "status":
        batch_lines = [line for line in lines if line.startswith("batch_")]
        assert [line.split()[0] for line in batch_lines] == batch_ids  # one line per batch, each id whole
    if command == "items":
        assert len(lines) == 1 + 50


@pytest.mark.parametrize("command", ["status", "jobs", "cost", "items"])
def test_every_format_parses(job: tuple[Path, str, list[str]], command: str) -> None:
    home, job_id, batch_ids = job
    args = {"status": [job_id], "jobs": [], "cost": [job_id], "items": [job_id, "--state", "succeeded"]}[command]
    shown = {kind: _llmbulk(home, command, *args, "--format", kind) for kind in ("csv", "json", "jsonl")}
    for kind, result in shown.items():
        assert result.returncode == 0, (kind, result.stderr)
    rows = list(csv.DictReader(io.StringIO(shown["csv"].stdout)))
    lines = [json.loads(line) for line in shown["jsonl"].stdout.splitlines()]
    whole = json.loads(shown["json"].stdout)
    assert [r[next(iter(r))] for r in rows] == [str(next(iter(line.values()))) for line in lines]
    if command == "status":
        assert [r["provider_batch_id"] for r in rows] == batch_ids == [b["provider_batch_id"] for b in lines]
        assert whole["job_id"] == job_id and whole["hook_failures"] is None
    elif command == "jobs":
        assert [r["job_id"] for r in rows] == [job_id] == [j["job_id"] for j in whole]
    elif command == "cost":
        assert [r["row"] for r in rows] == ["estimate_likely", "estimate_upper", "actual"]
        assert int(rows[-1]["output_tokens"]) == whole["tokens"]["output_tokens"] > 0
    else:
        assert len(rows) == len(lines) == len(whole) == 50 and {r["state"] for r in rows} == {"succeeded"}
    as_json = _llmbulk(home, command, *args, "--json")
    assert json.loads(as_json.stdout) == whole  # --json is --format json


def test_format_names_are_checked(job: tuple[Path, str, list[str]]) -> None:
    home, job_id, _ = job
    bad = _llmbulk(home, "jobs", "--format", "xml")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --format xml: not one of table, csv, json, jsonl")
    clash = _llmbulk(home, "status", job_id, "--json", "--format", "csv")
    assert clash.returncode == 2 and "--json and --format csv disagree" in clash.stderr


def _command_paths(group: typer.main.TyperGroup, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield prefix
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _command_paths(command, (*prefix, name))  # type: ignore[arg-type]
        else:
            yield (*prefix, name)


def test_short_help_on_every_command_and_group() -> None:
    root = typer.main.get_command(app)
    paths = list(_command_paths(root))  # type: ignore[arg-type]
    assert ("status",) in paths and ("emulator", "serve") in paths and ("emulator",) in paths
    runner = CliRunner()
    for path in paths:
        shown = runner.invoke(app, [*path, "-h"])
        assert shown.exit_code == 0, (path, shown.output)
        assert shown.stdout.startswith("Usage: "), path


def test_completion_offers_job_ids_providers_and_states(job: tuple[Path, str, list[str]]) -> None:
    home, job_id, _ = job
    ctx = SimpleNamespace(params={"home": home, "db": None})
    assert complete.job_ids(ctx, job_id[:2]) == [job_id]  # type: ignore[arg-type]
    assert complete.job_ids(ctx, "zz-none") == []  # type: ignore[arg-type]
    empty = SimpleNamespace(params={"home": home.parent / "no-state-here", "db": None})
    assert complete.job_ids(empty, "") == []  # type: ignore[arg-type]
    assert not (home.parent / "no-state-here").exists()  # completing creates no state
    assert complete.providers("an") == ["anthropic"]
    assert complete.item_states("failed") == ["failed_retryable", "failed_permanent"]
    # Through the shell's own protocol (bash), as a Tab press runs the installed command.
    script = str(Path(sys.executable).parent / "llmbulk")

    def tab(words: str) -> list[str]:
        env = _env(home, _LLMBULK_COMPLETE="complete_bash", COMP_WORDS=words, COMP_CWORD=str(len(words.split()) - 1))
        return subprocess.run([script], env=env, capture_output=True, text=True, timeout=60).stdout.split()

    assert tab(f"llmbulk status {job_id[:3]}") == [job_id]
    assert tab("llmbulk items x --state de") == ["dead"]


def test_failed_webhook_is_a_warning_and_a_status_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ran = _llmbulk(home, "run", str(QUICKSTART), "-p", "openai", "-m", "gpt-4o-mini", "--prompt", "{{ text }}",
                   "--emulate", "--out", str(tmp_path / "o.csv"), "--webhook", "http://127.0.0.1:9/hook",
                   "--notify-on", "done")  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    warnings = [line for line in ran.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "event delivery to webhook http://127.0.0.1:9/hook failed" in warnings[0]
    job_id = json.loads(_llmbulk(home, "jobs", "--json").stdout)[0]["job_id"]
    for status in (_llmbulk(home, "status", job_id), _llmbulk(home, "status", job_id, "--refresh")):
        line = next(line for line in status.stdout.splitlines() if line.startswith("webhook:"))
        assert line.startswith("webhook: last delivery failed at ") and line.endswith("(1 failure)")
    failures = json.loads(_llmbulk(home, "status", job_id, "--json").stdout)["hook_failures"]
    assert failures["target"] == "webhook" and failures["count"] == 1


def test_unpolled_counts_are_short_and_ids_whole() -> None:
    batch = BatchView(id="j1-s0001-b1", shard_id="j1-s0001", provider_batch_id="batch_" + "a" * 32,
                      state="running", raw_status="in_progress", total=1000, completed=None, failed=None,
                      counts_known=False, created_at=None, ended_at=None, polled_at=None, collected=False,
                      error=None)  # fmt: skip
    lines = render.batches_grid([batch]).lines(80)
    assert len(lines) == 2 and all(len(line) <= 80 for line in lines)
    cells = lines[1].split()
    assert cells[:4] == ["batch_" + "a" * 32, "running", "?/1,000", "?"]
