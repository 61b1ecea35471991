"""What the benchmark measures with: whole processes (CPU time and peak RSS from `wait4`), and the
emulator in a process of its own, whose call counter (`/_emulator/stats`) says what a run cost in
HTTP calls.

CPU time, not wall time: the benchmark machine is shared (2 cores, other work running), so wall
time says more about the neighbours than about the code.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FLOOR = Path(__file__).resolve().parent / "floor"
SHARED_FLOOR = Path(__file__).resolve().parents[3] / "shared" / "bench"  # ../shared/bench beside the checkout


@dataclass(frozen=True)
class Proc:
    """One finished process: CPU seconds (user + system), wall seconds, peak RSS and its stdout."""

    cpu: float
    wall: float
    rss_mb: float
    stdout: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def measure(cmd: list[str], env: dict[str, str], cwd: Path, ok: tuple[int, ...] = (0,)) -> Proc:
    """Run `cmd` to its end; its own CPU time and peak RSS come from `wait4` (not the whole tree's)."""
    out_path, err_path = cwd / ".proc.out", cwd / ".proc.err"
    started = time.perf_counter()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    stdout, stderr = out_path.read_text(), err_path.read_text()
    if proc.returncode not in ok:
        raise SystemExit(f"{' '.join(cmd[:4])} … exited {proc.returncode}:\n{stderr[-3000:]}")
    return Proc(usage.ru_utime + usage.ru_stime, wall, usage.ru_maxrss / 1024, stdout)


def floor_is_the_shared_one() -> str:
    """Whether the copied floor still equals ../shared/bench (when that is there), as a note to print."""
    if not SHARED_FLOOR.is_dir():
        return "floor: tests/benchmarks/floor (../shared/bench not found to compare)"
    differ = [
        p.name for p in sorted(SHARED_FLOOR.glob("*.py")) if (FLOOR / p.name).read_bytes() != p.read_bytes()
    ]  # fmt: skip
    return (
        f"floor: tests/benchmarks/floor, {'DIFFERS from' if differ else 'identical to'} ../shared/bench {differ or ''}"
    )


class Emulator:
    """`llmbulk emulator serve` in its own process, batches ending at once; its CPU is the provider's."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llmbulk", "emulator", "serve", "--port", str(self.port),
             "--state-dir", str(state_dir), "--batch-seconds", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(400):
            try:
                self.stats()
                break
            except OSError:
                time.sleep(0.05)
        self.env = {
            "OPENAI_BASE_URL": f"{self.url}/openai/v1",
            "OPENAI_API_KEY": "bench",
            "ANTHROPIC_BASE_URL": f"{self.url}/anthropic",
            "ANTHROPIC_API_KEY": "bench",
            "GOOGLE_GEMINI_BASE_URL": f"{self.url}/gemini",
            "GOOGLE_API_KEY": "bench",
        }

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(f"{self.url}/_emulator/stats", timeout=10) as response:
            return dict(json.loads(response.read())["calls"])

    def finish_batches(self, provider: str) -> int:
        """Read every batch once so the emulator writes its results (its work, outside our timings);
        returns the result bytes. Batches with `--batch-seconds 0` have ended by now."""
        paths = {"openai": "/openai/v1/batches/{}", "anthropic": "/anthropic/v1/messages/batches/{}",
                 "gemini": "/gemini/v1beta/{}"}  # fmt: skip
        headers = {"Authorization": "Bearer bench", "x-api-key": "bench", "anthropic-version": "2023-06-01",
                   "x-goog-api-key": "bench"}  # fmt: skip
        size = 0
        for path in sorted((self.state_dir / "batches").glob("*.json")):
            batch = json.loads(path.read_bytes())
            for _ in range(100):
                request = urllib.request.Request(self.url + paths[provider].format(batch["id"]), headers=headers)
                with urllib.request.urlopen(request, timeout=60):
                    pass
                batch = json.loads(path.read_bytes())
                if batch.get("results"):
                    break
                time.sleep(0.05)
            results = batch["results"] or {}
            for key in ("file", "output_file_id", "error_file_id"):
                if results.get(key):
                    size += (self.state_dir / "files" / f"{results[key].replace('/', '_')}.data").stat().st_size
        return size

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def calls_made(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Calls between two stats snapshots, by method and route (ids folded to `{id}`); the emulator's
    own `/_emulator/` routes (the benchmark's reads of the counter) are left out."""
    made: dict[str, int] = {}
    for call, n in after.items():
        delta = n - before.get(call, 0)
        if delta and "/_emulator/" not in call:
            route = route_of(call)
            made[route] = made.get(route, 0) + delta
    return made


_ID = re.compile(r"/(?=[^/]*\d)(?=[^/]{12,})[^/:]+")


def route_of(call: str) -> str:
    """`GET /openai/v1/batches/batch_abc123…` → `GET /openai/v1/batches/{id}` (segments that look like ids)."""
    return _ID.sub("/{id}", call)
