"""Shared fixtures: an isolated state directory and a CLI runner that uses it."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmbulk.cli import app

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

    schema = f"llmbulk_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()
