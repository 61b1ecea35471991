"""The light commands (`--help`, `--version`, `status`, `jobs`, `items`, `cost`) import no provider SDK,
no SQLAlchemy, no pyarrow and (but for `cost`) no pydantic: each runs in a fresh process, as a user
runs it, and the modules it loaded are checked. (Their timings are the benchmark's to print, not a test's to assert.)"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import QUICKSTART

HEAVY = ("openai", "anthropic", "google.genai", "sqlalchemy", "sqlmodel", "pyarrow", "pydantic", "genai_prices")
PROBE = (
    "import sys, runpy\n"
    "sys.argv = ['llmbulk', *sys.argv[1:]]\n"
    "try:\n    runpy.run_module('llmbulk', run_name='__main__')\n"
    "except SystemExit as exit:\n    code = exit.code\n"
    f"heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
    "print('\\nPROBE', {'heavy': heavy, 'exit': code}, file=sys.stderr)\n"
)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], str]:
    """A finished emulated job in a private state directory, made through the CLI."""
    tmp = tmp_path_factory.mktemp("light")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMBULK_", "OPENAI_", "ANTHROPIC_", "GOOGLE_"))}
    env.update(LLMBULK_HOME=str(tmp / "home"), LLMBULK_EMULATOR_SECONDS="0", COLUMNS="200",
               XDG_CACHE_HOME=str(tmp / "cache"),
               LLMBULK_EMULATOR_FAULTS='{"item_errors": {"invalid_request": 0.3}}')  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "llmbulk", "run", str(QUICKSTART), "-p", "anthropic", "-m", "claude-haiku-4-5",
         "--prompt", "{{ text }}", "--id-column", "review_id", "--emulate", "--json", "--out", str(tmp / "o.csv")],
        env=env, capture_output=True, text=True, cwd=tmp,
    )  # fmt: skip
    assert done.returncode in (0, 4), done.stderr
    return env, json.loads(done.stdout)["job_id"]


COMMANDS = {
    "help": (["--help"], "Usage"),
    "version": (["--version"], "llmbulk "),
    "status": (["status", "{job}"], "items:"),
    "status --json": (["status", "{job}", "--json"], '"counts"'),
    "jobs": (["jobs"], "{job}"),
    "items": (["items", "{job}", "--state", "failed_permanent", "-n", "10"], "invalid_request_error"),
    "cost": (["cost", "{job}"], "actual"),
    "cost --json": (["cost", "{job}", "--json"], '"actual_usd"'),
}


@pytest.mark.parametrize("name", COMMANDS)
def test_a_light_command_imports_nothing_heavy(made: tuple[dict[str, str], str], name: str) -> None:
    env, job = made
    args, shown = COMMANDS[name]
    args = [a.format(job=job) for a in args]
    out = subprocess.run([sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True)
    probe = ast.literal_eval(out.stderr.rsplit("PROBE", 1)[-1].strip())
    # `cost` reads the rates the run looked up from the user's cache, without the price library.
    assert probe["heavy"] == [], f"{name} loaded {probe['heavy']}\n{out.stderr[-2000:]}"
    assert probe["exit"] in (0, None, 4 if name.startswith("status") else 0), out.stderr  # 4: done, some failed
    assert shown.format(job=job) in out.stdout, out.stdout + out.stderr


def test_the_light_paths_fall_back_to_the_full_path_on_a_new_state_directory(tmp_path: Path) -> None:
    """No database yet: `jobs` creates it (the quick reader never does) and lists nothing."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMBULK_")}
    env["LLMBULK_HOME"] = str(tmp_path / "home")
    listed = subprocess.run([sys.executable, "-m", "llmbulk", "jobs", "--json"], env=env, capture_output=True,
                            text=True)  # fmt: skip
    assert listed.returncode == 0 and json.loads(listed.stdout) == [], listed.stderr
    assert (tmp_path / "home" / "llmbulk.db").is_file()
    missing = subprocess.run([sys.executable, "-m", "llmbulk", "cost", "jnope1"], env=env, capture_output=True,
                             text=True)  # fmt: skip
    assert missing.returncode == 2 and "no job 'jnope1'" in missing.stderr
    missing = subprocess.run([sys.executable, "-m", "llmbulk", "items", "jnope1"], env=env, capture_output=True,
                             text=True)  # fmt: skip
    assert missing.returncode == 2 and "no job 'jnope1'" in missing.stderr


def test_cost_without_cached_rates_asks_the_price_library_then_not_again(made: tuple[dict[str, str], str],
                                                                        tmp_path: Path) -> None:  # fmt: skip
    env, job = made
    env = {**env, "XDG_CACHE_HOME": str(tmp_path / "cache")}  # an empty cache
    runs = [subprocess.run([sys.executable, "-c", PROBE, "cost", job, "--json"], env=env, capture_output=True,
                           text=True) for _ in range(2)]  # fmt: skip
    probes = [ast.literal_eval(run.stderr.rsplit("PROBE", 1)[-1].strip()) for run in runs]
    assert "genai_prices" in probes[0]["heavy"] and probes[1]["heavy"] == []
    first, second = (json.loads(run.stdout) for run in runs)
    assert first == second and first["actual_usd"] > 0  # the cached rates price exactly as the library does
    assert len(list((tmp_path / "cache" / "llmbulk").glob("rates-*.json"))) == 1
