"""`llmbulk doctor` as a user runs it: keys, each keyed provider's batch API, the database, the emulator."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from llmbulk.emulator import EmulatorServer


def _doctor(env: dict[str, str], tmp_path: Path) -> tuple[int, dict[str, dict]]:
    shown = subprocess.run([sys.executable, "-m", "llmbulk", "doctor", "--json"], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    return shown.returncode, {c["check"]: c for c in json.loads(shown.stdout)}


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_doctor_reaches_each_keyed_provider_and_reports_one_that_does_not_answer(tmp_path: Path) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "GOOGLE_", "GEMINI_"))}
    base["LLMBULK_HOME"] = str(tmp_path / "home")
    with EmulatorServer(tmp_path / "emulator") as server:
        env = {**base, "OPENAI_API_KEY": "sk-doctor", "OPENAI_BASE_URL": server.openai_base_url,
               "ANTHROPIC_API_KEY": "sk-ant-doctor", "ANTHROPIC_BASE_URL": server.anthropic_base_url,
               "GOOGLE_API_KEY": "g-doctor", "GOOGLE_GEMINI_BASE_URL": server.gemini_base_url}  # fmt: skip
        code, checks = _doctor(env, tmp_path)
        assert code == 0, checks
        for name in ("openai", "anthropic", "gemini"):
            assert checks[f"{name} key"]["ok"] and checks[f"{name} batch API"]["ok"], checks
        listed = [k for k in server.emulator.calls if k.startswith("GET ")]
        assert any("/openai/v1/batches" in k for k in listed) and any("/anthropic/" in k for k in listed)
        assert checks["state database"]["ok"] and checks["emulator"]["ok"]

        env["OPENAI_BASE_URL"] = f"http://127.0.0.1:{_closed_port()}/v1"
        code, checks = _doctor(env, tmp_path)
    assert code == 1
    assert not checks["openai batch API"]["ok"] and "cannot reach OpenAI" in checks["openai batch API"]["detail"]
    assert "sk-doctor" not in json.dumps(checks)  # the key is never shown
    assert checks["anthropic batch API"]["ok"]

    code, checks = _doctor(base, tmp_path)  # no keys: only the emulator is needed
    assert code == 0 and not checks["openai key"]["ok"] and "openai batch API" not in checks


def test_doctor_checks_model_names_against_the_catalogue(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "GOOGLE_", "GEMINI_"))}
    env["LLMBULK_HOME"] = str(tmp_path / "home")
    shown = subprocess.run(
        [sys.executable, "-m", "llmbulk", "doctor", "--json", "-m", "openai:gpt-4o-mini", "-m", "gemini:gemini-nope-9",
         "-m", "openai:text-embedding-3-small", "-m", "claude-haiku-4-5"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    checks = {c["check"]: c for c in json.loads(shown.stdout)}
    assert shown.returncode == 1
    assert (
        checks["model openai:gpt-4o-mini"]["ok"]
        and "/v1/chat/completions" in checks["model openai:gpt-4o-mini"]["detail"]
    )
    assert (
        not checks["model gemini:gemini-nope-9"]["ok"]
        and "not in llmbulk's gemini model list" in checks["model gemini:gemini-nope-9"]["detail"]
    )
    embed = checks["model openai:text-embedding-3-small"]
    assert not embed["ok"] and "serves /v1/embeddings" in embed["detail"]
    assert not checks["model claude-haiku-4-5"]["ok"]  # no provider given
