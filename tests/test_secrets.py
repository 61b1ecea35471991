"""API keys never reach the database, logs, shards, results, outputs or error messages; state is private.

Nor do the credentials users put in URLs and command lines (webhooks, --on-event, database URLs):
they are redacted wherever a URL or command is logged or printed.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from llmbulk.emulator import EmulatorConfig, EmulatorServer, FaultPlan

KEYS = {
    "openai": ("OPENAI_API_KEY", "OPENAI_BASE_URL", "fake-key-LLMBULKSECRET-openai"),
    "anthropic": ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "fake-key-LLMBULKSECRET-anthropic"),
    "gemini": ("GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL", "fake-key-LLMBULKSECRET-gemini"),
    # Azure's key travels in its own `api-key` header; its endpoint is the resource's, `/openai/v1` added.
    "azure": ("AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT", "fake-key-LLMBULKSECRET-azure"),
}
MODELS = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-haiku-4-5",
    "gemini": "gemini-2.5-flash",
    "azure": "gpt-4o-mini",
}
QUICKSTART = Path(__file__).resolve().parent.parent / "examples" / "quickstart" / "reviews.csv"


def test_a_whole_job_writes_no_key_anywhere(tmp_path: Path) -> None:
    config = EmulatorConfig(validating_seconds=0, running_seconds=0, finalizing_seconds=0,
                            faults=FaultPlan(item_errors={"rate_limit": 0.2, "invalid_request": 0.1}))  # fmt: skip
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "ANTHROPIC_", "GOOGLE_", "GEMINI_", "AZURE_"))
    }
    env.update(LLMBULK_HOME=str(tmp_path / "state"), LLMBULK_POLL_INITIAL="0.05", LLMBULK_POLL_MAX="0.1")
    with EmulatorServer(tmp_path / "emulator", config) as server:
        urls = {"openai": server.openai_base_url, "anthropic": server.anthropic_base_url,
                "gemini": server.gemini_base_url, "azure": f"{server.url}/azure"}  # fmt: skip
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


# ---- credentials in URLs and command lines are redacted wherever they are shown -------------------------

SECRET = "s3cretLLMBULK"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:s3cretLLMBULK@hooks.example.com/hook", "https://***@hooks.example.com/hook"),
        ("https://s3cretLLMBULK@hooks.example.com/hook", "https://***@hooks.example.com/hook"),
        ("https://h.example.com/hook?token=s3cretLLMBULK&team=a", "https://h.example.com/hook?token=***&team=a"),
        ("https://h.example.com/h?API_KEY=s3cretLLMBULK", "https://h.example.com/h?API_KEY=***"),
        ("https://h.example.com/h?X-Amz-Signature=s3cretLLMBULK", "https://h.example.com/h?X-Amz-Signature=***"),
        ("https://h.example.com/h?access_token=s3cretLLMBULK", "https://h.example.com/h?access_token=***"),
        ("https://h.example.com/h?Password=s3cret%2FLLMBULK", "https://h.example.com/h?Password=***"),
        ("https://h.example.com/h#access_token=s3cretLLMBULK", "https://h.example.com/h#access_token=***"),
        (
            "https://hooks.slack.com/services/T0001/B0001/s3cretLLMBULK1234",
            "https://hooks.slack.com/services/T0001/B0001/***",
        ),
        ("https://h.example.com/hook?team=a", "https://h.example.com/hook?team=a"),
        ("http://[::1/hook?token=s3cretLLMBULK", "http://***"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    from llmbulk.events import redact_url, url_secrets

    assert redact_url(url) == shown
    assert "LLMBULK" not in shown
    assert any("LLMBULK" in s for s in url_secrets(url)) == ("LLMBULK" in url)  # (with a user name, if hidden)


@pytest.mark.parametrize(
    "command",
    [
        f"curl -u bot:{SECRET} -d @- https://h.example.com/hook",
        f"curl --user bot:{SECRET} https://h.example.com/hook",
        f"curl -H 'Authorization: Bearer {SECRET}' https://h.example.com/hook",
        f'curl -H "X-Api-Key: {SECRET}" https://h.example.com/hook',
        f"curl https://h.example.com/hook?token={SECRET}",
        f"curl https://bot:{SECRET}@h.example.com/hook",
        f"SLACK_TOKEN={SECRET} ./notify.sh",
        f"./notify --api-key {SECRET} --channel ops",
        f"./notify --password={SECRET}",
        f"./notify --secret '{SECRET} with spaces'",
    ],
)
def test_redact_command(command: str) -> None:
    from llmbulk.events import redact_command

    shown = redact_command(command)
    assert "LLMBULK" not in shown and "***" in shown, shown
    program = next(word for word in command.split() if "=" not in word)
    assert program in shown  # still recognisable


def test_redact_command_leaves_plain_commands_alone() -> None:
    from llmbulk.events import redact_command

    for command in ("python notify.py --channel ops", "tee -a events.jsonl", "curl -d @- https://h.example.com/x"):
        assert redact_command(command) == command


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://bulk:pw@db:5432/llmbulk", "postgresql+psycopg://bulk:***@db:5432/llmbulk"),
        (
            "postgresql+psycopg://bulk@db/llmbulk?password=pw&sslmode=require",
            "postgresql+psycopg://bulk@db/llmbulk?password=***&sslmode=require",
        ),
        ("postgresql://bulk@db/llmbulk?sslpassword=pw", "postgresql://bulk@db/llmbulk?sslpassword=***"),
        ("postgresql+psycopg://bulk@db/llmbulk", "postgresql+psycopg://bulk@db/llmbulk"),
        (
            "sqlite:////var/lib/llmbulk/run2024abcdef123456/state.db",
            "sqlite:////var/lib/llmbulk/run2024abcdef123456/state.db",
        ),
    ],
)
def test_database_urls_lose_passwords_in_userinfo_and_query(url: str, shown: str) -> None:
    from llmbulk.store.engine import _redact

    assert _redact(url) == shown


def test_jobs_doctor_and_submit_never_show_a_password_given_in_the_database_url(store_url: str, tmp_path: Path) -> None:
    if not store_url.startswith("postgresql"):
        pytest.skip("a password in the URL's query is a PostgreSQL setting")
    url = f"{store_url}&password={SECRET}"  # trust auth: the server ignores it, llmbulk must not show it
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "ANTHROPIC_", "GOOGLE_", "GEMINI_", "AZURE_"))
    }
    env.update(LLMBULK_HOME=str(tmp_path / "state"), LLMBULK_EMULATOR_SECONDS="0", LLMBULK_DB=url)
    commands = [
        ["submit", str(QUICKSTART), "-p", "openai", "-m", "gpt-4o-mini", "--prompt", "{{ text }}", "--emulate", "-v"],
        ["jobs"],
        ["doctor"],
        ["jobs", "--db", url.replace(":5432/", ":9/")],  # unreachable: the error line names the URL
        ["doctor", "--db", url.replace(":5432/", ":9/")],
    ]
    shown = []
    for args in commands:
        result = subprocess.run(
            [sys.executable, "-m", "llmbulk", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        assert SECRET not in result.stdout + result.stderr, (args, result.stdout, result.stderr)
        shown.append(result.stdout + result.stderr)
    assert "password=***" in shown[2] and "password=***" in shown[3] and "password=***" in shown[4]
    for path in (tmp_path / "state").rglob("*"):
        if path.is_file() and "emulator" not in path.parts:
            assert SECRET.encode() not in path.read_bytes(), path
