"""`llmbulk emulator serve` as a user runs it (real subprocesses), and the emulator's file modes and settings.

Each case ends in a working server or one clear line with its exit code, never a traceback.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from llmbulk.emulator import EmulatorConfig, EmulatorServer
from llmbulk.emulator.cli import PORT_IN_USE_EXIT
from llmbulk.emulator.settings import config_from_env
from llmbulk.errors import ConfigError

LLMBULK = [sys.executable, "-m", "llmbulk"]


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*LLMBULK, "emulator", "serve", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def _exports(proc: subprocess.Popen[str], timeout: float = 20) -> dict[str, str]:
    """The variables of the printed `export` lines, parsed as a shell would."""
    values: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while len(values) < 6 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("export "):
            values.update(word.split("=", 1) for word in shlex.split(line)[1:])  # type: ignore[misc]
    return values


@pytest.fixture
def stop() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_non_loopback_host_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = subprocess.run([*LLMBULK, "emulator", "serve", "--host", "0.0.0.0", "--state-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "loopback" in result.stderr and "0.0.0.0" in result.stderr


@pytest.mark.skipif(not _ipv6(), reason="no IPv6 loopback on this machine")
def test_ipv6_any_port_serves_and_prints_usable_urls(tmp_path: Path, stop: list[subprocess.Popen[str]]) -> None:
    proc = _serve("--host", "::1", "--port", "0", "--state-dir", str(tmp_path / "emu"))
    stop.append(proc)
    exports = _exports(proc)
    base = exports["OPENAI_BASE_URL"]
    assert base.startswith("http://[::1]:") and not base.startswith("http://[::1]:0/")
    client = openai.OpenAI(api_key=exports["OPENAI_API_KEY"], base_url=base, max_retries=0)
    assert client.batches.list().data == []
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=15) in (0, 130) and "Traceback" not in (proc.stderr.read() if proc.stderr else "")


def test_busy_port_fails_before_printing_with_its_own_exit_code(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*LLMBULK, "emulator", "serve", "--port", str(port), "--state-dir", str(tmp_path / "emu")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == PORT_IN_USE_EXIT == 8
    assert "export" not in result.stdout and result.stdout == ""
    assert "already in use" in result.stderr and str(port) in result.stderr and "Traceback" not in result.stderr


def test_bad_fault_plan_variable_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [*LLMBULK, "emulator", "serve", "--port", "0", "--state-dir", str(tmp_path / "emu")],
        capture_output=True, text=True, timeout=60, env={**os.environ, "LLMBULK_EMULATOR_FAULTS": "{bad"},
    )  # fmt: skip
    assert result.returncode == 1 and "LLMBULK_EMULATOR_FAULTS" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("name", "value"),
    [("LLMBULK_EMULATOR_SECONDS", "soon"), ("LLMBULK_EMULATOR_SECONDS", "nan"), ("LLMBULK_EMULATOR_SEED", "x"),
     ("LLMBULK_EMULATOR_FAULTS", '{"item_errors": 3}'), ("LLMBULK_EMULATOR_FAULTS", "@/nonexistent/plan.json"),
     ("LLMBULK_EMULATOR_MODELS", "mistral:large"), ("LLMBULK_EMULATOR_FAULTS", '{"shuffle_results": "maybe"}')],
)  # fmt: skip
def test_bad_emulator_variables_are_config_errors_naming_them(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_env({name: value})
    assert name in str(caught.value) and "\n" not in str(caught.value)


def test_state_dir_is_private_and_audit_log_owner_only(tmp_path: Path) -> None:
    """Uploaded prompts and the audit log are this user's only, whatever the umask."""
    old = os.umask(0)
    try:
        with EmulatorServer(tmp_path / "emu", EmulatorConfig(running_seconds=0)) as server:
            client = openai.OpenAI(api_key="k", base_url=server.openai_base_url, max_retries=0)
            client.files.create(file=("in.jsonl", b"{}\n", "application/jsonl"), purpose="batch")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "emu").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "emu" / "audit.jsonl").stat().st_mode) == 0o600


def test_serve_with_api_key_accepts_only_that_key(tmp_path: Path, stop: list[subprocess.Popen[str]]) -> None:
    """`serve(…, api_key=…)` (what `emulator serve --api-key` calls): the printed key works, others get 401."""
    code = ("import sys; from pathlib import Path; from llmbulk import render; from llmbulk.emulator.cli import serve; "
            f"serve('127.0.0.1', 0, Path({str(tmp_path / 'emu')!r}), 0.0, None, 0, render.out, api_key='s3cret', "
            "models='openai:gpt-7')")  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stop.append(proc)
    exports = _exports(proc)
    assert exports["OPENAI_API_KEY"] == exports["ANTHROPIC_API_KEY"] == exports["GOOGLE_API_KEY"] == "s3cret"
    good = openai.OpenAI(api_key="s3cret", base_url=exports["OPENAI_BASE_URL"], max_retries=0)
    assert good.batches.list().data == []
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(api_key="other", base_url=exports["OPENAI_BASE_URL"], max_retries=0).batches.list()


def test_cli_api_key_option(tmp_path: Path, stop: list[subprocess.Popen[str]]) -> None:
    proc = _serve("--port", "0", "--state-dir", str(tmp_path / "emu"), "--api-key", "s3cret")
    stop.append(proc)
    assert _exports(proc, timeout=10).get("OPENAI_API_KEY") == "s3cret"
