"""API keys never reach the database, logs, shards, results, outputs or error messages; state is private."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from llmbulk.emulator import EmulatorConfig, EmulatorServer, FaultPlan

KEYS = {
    "openai": ("OPENAI_API_KEY", "OPENAI_BASE_URL", "fake-key-LLMBULKSECRET-openai"),
    "anthropic": ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "fake-key-LLMBULKSECRET-anthropic"),
    "gemini": ("GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL", "fake-key-LLMBULKSECRET-gemini"),
}
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"}
QUICKSTART = Path(__file__).resolve().parent.parent / "examples" / "quickstart" / "reviews.csv"


def test_a_whole_job_writes_no_key_anywhere(tmp_path: Path) -> None:
    config = EmulatorConfig(validating_seconds=0, running_seconds=0, finalizing_seconds=0,
                            faults=FaultPlan(item_errors={"rate_limit": 0.2, "invalid_request": 0.1}))  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "GOOGLE_", "GEMINI_"))}
    env.update(LLMBULK_HOME=str(tmp_path / "state"), LLMBULK_POLL_INITIAL="0.05", LLMBULK_POLL_MAX="0.1")
    with EmulatorServer(tmp_path / "emulator", config) as server:
        urls = {"openai": server.openai_base_url, "anthropic": server.anthropic_base_url,
                "gemini": server.gemini_base_url}  # fmt: skip
        for provider, (key_var, url_var, key) in KEYS.items():
            run_env = {**env, key_var: key, url_var: urls[provider]}
            result = subprocess.run(
                [sys.executable, "-m", "llmbulk", "run", str(QUICKSTART), "-p", provider, "-m", MODELS[provider],
                 "--prompt", "{{ text }}", "--out", f"{provider}.csv", "-v"],
                cwd=tmp_path, env=run_env, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert result.returncode in (0, 4), result.stderr
            assert key not in result.stdout + result.stderr
            stats = subprocess.run([sys.executable, "-m", "llmbulk", "status", "--json",
                                    _last_job(tmp_path, run_env)], cwd=tmp_path, env=run_env,
                                   capture_output=True, text=True)  # fmt: skip
            assert key not in stats.stdout + stats.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file() and "emulator" not in p.parts]
    assert len(written) > 10
    for path in written:
        data = path.read_bytes()
        assert b"LLMBULKSECRET" not in data, f"a key leaked into {path}"
    cassettes = Path(__file__).parent / "cassettes"
    for path in cassettes.glob("*.yaml"):
        assert "LLMBULKSECRET" not in path.read_text() and "cassette-fake-key" not in path.read_text()
    state = tmp_path / "state"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "llmbulk.db").stat().st_mode) == 0o600


def _last_job(cwd: Path, env: dict[str, str]) -> str:
    import json

    listed = subprocess.run([sys.executable, "-m", "llmbulk", "jobs", "--json"], cwd=cwd, env=env,
                            capture_output=True, text=True)  # fmt: skip
    return json.loads(listed.stdout)[0]["job_id"]
