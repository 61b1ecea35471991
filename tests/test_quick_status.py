"""`llmbulk status` reads through the database driver alone and must say exactly what the full
path says; anything unusual falls back to the full path. SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import QUICKSTART

from llmbulk import api, render
from llmbulk.config import load_settings
from llmbulk.models import BatchState, ItemState
from llmbulk.store import queries
from llmbulk.store.migrations import MIGRATIONS
from llmbulk.store.quick import read_status
from llmbulk.views import OPEN_ITEM_STATES, SETTLED_ITEM_STATES, TERMINAL_BATCH_STATES


def test_light_constants_match_the_models() -> None:
    assert tuple(name for name, _ in MIGRATIONS) == queries.SCHEMA
    assert {s.value for s in BatchState if s.terminal} == TERMINAL_BATCH_STATES
    assert set(OPEN_ITEM_STATES) | set(SETTLED_ITEM_STATES) == {s.value for s in ItemState}


def _job_with_every_kind_of_item(store_url: str, tmp_path: Path) -> tuple[str, dict[str, str]]:
    env = {
        "LLMBULK_EMULATOR_SECONDS": "0",
        # High enough that dead and permanently failed items both occur whatever the job id (p > 0.9998).
        "LLMBULK_EMULATOR_FAULTS": '{"item_errors": {"rate_limit": 0.4, "invalid_request": 0.2}}',
    }
    settings = load_settings(home=tmp_path / "home", db=store_url, env=env)
    options = api.SubmitOptions(input=QUICKSTART, provider="anthropic", model="claude-haiku-4-5",
                                prompt="{{ text }}", id_column="review_id", emulate=True, max_attempts=2,
                                max_items_per_batch=20)  # fmt: skip
    job_id = api.submit(options, settings=settings).job_id
    api.collect(job_id, tmp_path / "out.csv", settings=settings)  # settles some, leaves some retryable
    api.run(job_id, out=tmp_path / "out.csv", settings=settings)  # retries once more, then dead
    return job_id, env


def test_quick_reader_says_what_the_full_path_says(store_url: str, tmp_path: Path) -> None:
    job_id, env = _job_with_every_kind_of_item(store_url, tmp_path)
    settings = load_settings(home=tmp_path / "home", db=store_url, env=env)
    full = api.status(job_id, settings=settings)
    quick = read_status(store_url, job_id)
    assert quick is not None
    assert render.status_json(quick) == render.status_json(full)
    assert quick.counts.get("dead") and quick.counts.get("failed_permanent") and quick.dead
    assert (quick.finished, quick.settled, quick.progress) == (full.finished, full.settled, full.progress)


def test_anything_unusual_is_left_to_the_full_path(tmp_path: Path) -> None:
    assert read_status(f"sqlite:///{tmp_path / 'none.db'}", "j1") is None  # no database yet: not created
    assert not (tmp_path / "none.db").exists()
    (tmp_path / "junk.db").write_bytes(b"not a database" * 100)
    assert read_status(f"sqlite:///{tmp_path / 'junk.db'}", "j1") is None
    assert read_status("mysql://somewhere/db", "j1") is None


def test_status_cli_answers_without_sqlalchemy_and_errors_as_before(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMBULK_", "OPENAI_"))}
    env.update(LLMBULK_HOME=str(tmp_path / "home"), LLMBULK_EMULATOR_SECONDS="0")
    submitted = subprocess.run(
        [sys.executable, "-m", "llmbulk", "run", str(QUICKSTART), "-p", "openai", "-m", "gpt-4o-mini",
         "--prompt", "{{ text }}", "--emulate", "--json", "--out", str(tmp_path / "o.csv")],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    job_id = api_json(submitted.stdout)["job_id"]
    probe = (
        "import sys, runpy; sys.argv = ['llmbulk', 'status', sys.argv[1]]\n"
        "try:\n    runpy.run_module('llmbulk', run_name='__main__')\nexcept SystemExit as exit:\n"
        "    heavy = ('sqlalchemy', 'sqlmodel', 'openai', 'pyarrow', 'typer')\n"
        "    print('heavy:', sorted(m for m in heavy if m in sys.modules), 'exit:', exit.code)\n"
    )
    shown = subprocess.run([sys.executable, "-c", probe, job_id], env=env, capture_output=True, text=True)
    assert "heavy: [] exit: 0" in shown.stdout, shown.stdout + shown.stderr
    assert f"{job_id}" in shown.stdout and "succeeded 50" in shown.stdout
    missing = subprocess.run([sys.executable, "-m", "llmbulk", "status", "jnope1"], env=env, capture_output=True,
                             text=True)  # fmt: skip
    assert missing.returncode == 2 and "no job 'jnope1'" in missing.stderr


def api_json(stdout: str) -> dict:
    import json

    return json.loads(stdout)


@pytest.fixture(autouse=True)
def _no_real_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "LLMBULK_DB", "LLMBULK_HOME"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("args", "taken"),
    [
        (["status", "j1"], ("j1", False, None, None)),
        (["status", "j1", "--json", "--db", "sqlite:///x.db", "--home", "h"], ("j1", True, "sqlite:///x.db", "h")),
        (["status", "--json", "j1"], ("j1", True, None, None)),
        (["status", "j1", "--refresh"], None),  # polls: the full path
        (["status", "--help"], None),
        (["status"], None),
        (["status", "j1", "j2"], None),
        (["status", "j1", "--db"], None),
        (["status", "j1", "--db=sqlite:///x.db"], None),
        (["collect", "j1"], None),
        ([], None),
    ],
)
def test_only_plain_status_skips_the_cli_framework(args: list[str], taken: tuple | None) -> None:
    from llmbulk.entry import _plain_status

    assert _plain_status(args) == taken


def test_quick_jobs_items_and_cost_say_what_the_store_says(store_url: str, tmp_path: Path) -> None:
    from llmbulk.jobs.inspect import cost_report
    from llmbulk.progress import NO_PROGRESS
    from llmbulk.render.payloads import cost_json
    from llmbulk.session import open_session
    from llmbulk.store.quick import read_items, read_jobs, read_tokens

    job_id, env = _job_with_every_kind_of_item(store_url, tmp_path)
    settings = load_settings(home=tmp_path / "home", db=store_url, env=env)
    with open_session(settings, NO_PROGRESS) as session:
        store = session.store
        jobs, job = store.list_jobs(5), store.get_job(job_id)
        dead, succeeded = store.items_in_state(job_id, "dead", 3), store.items_in_state(job_id, "succeeded")
        tokens, reused = store.token_totals(job_id), store.reused_totals(job_id)
    quick_jobs = read_jobs(store_url, 5)
    assert quick_jobs is not None and [render.job_json(j) for j in quick_jobs] == [render.job_json(j) for j in jobs]
    assert read_items(store_url, job_id, "dead", 3) == dead and len(dead) == 3
    assert read_items(store_url, job_id, "succeeded", None) == succeeded and succeeded
    assert read_items(store_url, "jnope1", "dead", None) is None  # the full path says "no job"
    quick = read_tokens(store_url, job_id)
    assert quick is not None and quick[1:] == (tokens, reused) and tokens["input_tokens"] > 0
    assert cost_json(cost_report(*quick)) == cost_json(cost_report(job, tokens, reused))
    assert read_tokens(store_url, "jnope1") is None
