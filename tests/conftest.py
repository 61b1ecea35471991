"""Shared fixtures (an isolated state directory, a CLI runner that uses it, state database URLs) and
the suite's speed settings: `-n auto` sizing, which tests are `slow`, fast emulated polling.
"""

from __future__ import annotations

import json
import os
import re
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmbulk.cli import app

# llmbulk.render builds its consoles once per process, at first import, with the width COLUMNS has
# then: build them now at the width the `home` fixture sets, so which test happens to import it
# first (test order, xdist's distribution) does not decide how in-process tables wrap.
_columns = os.environ.get("COLUMNS")
os.environ["COLUMNS"] = "250"
import llmbulk.render  # noqa: E402

if _columns is None:
    del os.environ["COLUMNS"]
else:
    os.environ["COLUMNS"] = _columns

KEY_VARS = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "GOOGLE_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_GEMINI_BASE_URL",
    "LLMBULK_DB",
    "LLMBULK_HOME",
)
QUICKSTART = Path(__file__).resolve().parent.parent / "examples" / "quickstart" / "reviews.csv"


@dataclass
class Outcome:
    """One CLI invocation's result."""

    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@pytest.fixture(autouse=True)
def _work_in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs in its own folder: a default output (`llmbulk-<job>.csv`) never lands in the repo."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private LLMBULK_HOME in tmp_path, the working directory set to tmp_path, no real keys."""
    for var in KEY_VARS:
        monkeypatch.delenv(var, raising=False)
    state = tmp_path / ".llmbulk"
    monkeypatch.setenv("LLMBULK_HOME", str(state))
    monkeypatch.setenv("LLMBULK_EMULATOR_SECONDS", "0")
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.chdir(tmp_path)
    return state


@pytest.fixture
def faults(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Set the fault plan the in-process emulator of `--emulate` commands uses."""

    def set_plan(**plan: Any) -> None:
        monkeypatch.setenv("LLMBULK_EMULATOR_FAULTS", json.dumps(plan))

    return set_plan


@pytest.fixture
def llmbulk(home: Path) -> Callable[..., Outcome]:
    """Run the CLI in-process with the isolated state."""
    runner = CliRunner()

    def invoke(*args: str) -> Outcome:
        result = runner.invoke(app, list(args), env=dict(os.environ), catch_exceptions=False)
        return Outcome(result.exit_code, result.stdout, result.stderr)

    return invoke


PG_URL = os.environ.get("LLMBULK_TEST_POSTGRES_URL")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A state database URL: a SQLite file, or a fresh schema on the test PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    if not PG_URL:
        pytest.skip("LLMBULK_TEST_POSTGRES_URL is not set")
    from sqlalchemy import create_engine, text

    # A schema per test, named after the xdist worker too: parallel workers (and other test runs on
    # the same server) never share one.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    schema = f"llmbulk_test_{worker}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


# ---- speed: parallel workers and the slow step ----------------------------------------------------

# Tests that run in the slow step (`pytest -m slow`, a separate step of .ci/run) besides those marked
# `@pytest.mark.slow` in place: node ids, `*` matching anything. The default run keeps one leg of each.
SLOW_TESTS = (
    # SIGKILL at each transition: the default run keeps every point for OpenAI (uploads, whose reuse
    # is checked) and the lost-upload tests; the Anthropic and Gemini legs run here.
    "tests/test_crash.py::test_sigkill_at_each_transition_then_rerun_loses_nothing_and_pays_once[*-anthropic]",
    "tests/test_crash.py::test_sigkill_at_each_transition_then_rerun_loses_nothing_and_pays_once[*-gemini]",
    # Random kills: seconds of real processes being killed and rerun per provider.
    "tests/test_crash.py::test_random_sigkills_then_rerun[*]",
    # Four runners sharing one job: the default run keeps the two-runner legs (SQLite, PostgreSQL).
    "tests/test_concurrency.py::test_concurrent_runners_match_a_single_run[*-4]",
)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the SLOW_TESTS `slow` before `-m` selects; warn about a pattern that names nothing."""
    matched: set[str] = set()
    regexes = {pattern: re.compile(".*".join(map(re.escape, pattern.split("*")))) for pattern in SLOW_TESTS}
    for item in items:
        for pattern, regex in regexes.items():
            if regex.fullmatch(item.nodeid):
                item.add_marker(pytest.mark.slow)
                matched.add(pattern)
    if config.option.keyword or any("::" in arg for arg in config.args):
        return  # a selection: patterns naming other tests match nothing, rightly
    collected_files = {item.nodeid.split("::", 1)[0] for item in items}
    for pattern in SLOW_TESTS:
        if pattern not in matched and pattern.split("::", 1)[0] in collected_files:
            warnings.warn(f"tests/conftest.py SLOW_TESTS: {pattern} matches no test (renamed?)", stacklevel=1)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """`-n auto`: twice the CPUs (the suite waits on subprocesses, sockets and batch clocks about half
    the time), at most 8. PYTEST_XDIST_AUTO_NUM_WORKERS still overrides."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(2, min(8, 2 * cpus))
