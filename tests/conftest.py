"""Shared fixtures: an isolated state directory and a CLI runner that uses it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
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
