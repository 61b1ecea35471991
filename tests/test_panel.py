"""The progress display of `run`: a live panel on a terminal, one `progress:` line per round elsewhere.

The panel tests run `python -m llmbulk run … --emulate` with stderr on a real pseudo-terminal,
read every byte it draws, and split it into the frames rich redraws; a small screen model replays
the bytes to check what the terminal is left showing.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import QUICKSTART, Outcome

from llmbulk import rounds
from llmbulk.views import BatchView, JobStatus

RUN = ["run", str(QUICKSTART), "-p", "openai", "-m", "gpt-4o-mini", "--prompt", "Sentiment: {{ text }}",
       "--id-column", "review_id", "--out", "out.csv", "--emulate"]  # fmt: skip
# Three batches of 20/20/10, one in flight at a time: the first to end gives the ETA for the others.
WAVES = ["--max-items-per-batch", "20", "--max-active-batches", "1"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
REDRAW = re.compile(r"(?:\x1b\[2K\x1b\[1A)+\x1b\[2K")  # rich moving up over the previous frame


def _env(home: Path, batch_seconds: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS", "LINES", "FORCE_COLOR")}
    env.update(LLMBULK_HOME=str(home), LLMBULK_EMULATOR_SECONDS=batch_seconds, TERM="xterm-256color",
               LLMBULK_EMULATED_POLL_INITIAL="0.2", LLMBULK_EMULATED_POLL_MAX="0.4")  # fmt: skip
    return env


def _on_terminal(args: list[str], cwd: Path, env: dict[str, str], until: Callable[[str], bool] | None = None
                 ) -> tuple[int, str]:  # fmt: skip
    """Run llmbulk with stderr on a pseudo-terminal: (exit code, all it drew). `until` sends Ctrl-C."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "llmbulk", *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=slave)  # fmt: skip
    os.close(slave)
    drawn, interrupted, deadline = b"", False, time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            drawn += chunk
        elif proc.poll() is not None:
            break
        if until is not None and not interrupted and until(drawn.decode(errors="replace")):
            proc.send_signal(signal.SIGINT)
            interrupted = True
    os.close(master)
    return proc.wait(timeout=30), drawn.decode()


def _frames(drawn: str) -> list[str]:
    """The panel frames, as plain text, in the order drawn."""
    return [ANSI.sub("", part) for part in REDRAW.split(drawn) if "next poll" in part]


def _screen(drawn: str) -> list[str]:
    """What the terminal shows at the end: the bytes replayed on a model of the screen."""
    lines, row, col = [""], 0, 0
    for token in re.split(r"(\x1b\[[0-9;?]*[A-Za-z]|\r|\n)", drawn):
        if token == "\n":
            row += 1
            lines += [""] * (row + 1 - len(lines))
        elif token == "\r":
            col = 0
        elif token == "\x1b[1A":
            row = max(0, row - 1)
        elif token == "\x1b[2K":
            lines[row] = ""
        elif token and not token.startswith("\x1b"):
            line = lines[row].ljust(col)
            lines[row], col = line[:col] + token + line[col + len(token) :], col + len(token)
    return [line.rstrip() for line in lines if line.strip()]


def test_panel_shows_job_counts_and_eta_and_leaves_a_clean_final_screen(tmp_path: Path) -> None:
    code, drawn = _on_terminal([*RUN, *WAVES], tmp_path, _env(tmp_path / ".llmbulk", "1.5"))
    assert code == 0, drawn
    screen = _screen(drawn)
    final = next(line for line in screen if line.startswith("done: job "))
    job_id = final.split()[2]
    frames = _frames(drawn)
    assert len(frames) >= 5 and all(f"job {job_id}  openai/gpt-4o-mini (emulated)  50 items" in f for f in frames)
    settled = [int(m.group(1)) for f in frames if (m := re.search(r"(\d+)/50 settled", f))]
    assert settled == sorted(settled) and settled[0] == 0 and {20, 40} & set(settled) and settled[-1] == 50
    assert "ETA estimating" in frames[0]
    etas = [m.group(1) for f in frames if (m := re.search(r"ETA ~(\d+:\d\d) \(mean batch", f))]
    assert len(set(etas)) >= 2, etas  # an ETA once a batch ended, counting down as the others run
    assert any("1 running · 1 ended · 1 waiting to send" in f for f in frames)
    assert any(re.search(r"\$[\d.]+ so far of ~\$[\d.]+ estimated", f) for f in frames)
    assert any(re.search(r"next poll  in \d\.\ds", f) for f in frames)
    # The panel is erased; the final lines remain: outcome in words, counts, cost, what was written.
    assert not any("next poll" in line or "settled" in line for line in screen), screen
    assert re.fullmatch(rf"done: job {job_id} · 50 succeeded, 0 failed, 0 dead of 50 · 0:\d\d · cost \$[\d.]+ "
                        r"\(estimated \$[\d.]+\)", final)  # fmt: skip
    assert any(line.startswith("wrote 50 rows to ") for line in screen)
    assert drawn.rfind("\x1b[?25h") > drawn.rfind("\x1b[?25l")  # the cursor is given back


def _second_frame(drawn: str) -> bool:
    return drawn.count("next poll") >= 2


def test_ctrl_c_erases_the_panel_and_leaves_the_interrupt_line(tmp_path: Path) -> None:
    code, drawn = _on_terminal(RUN, tmp_path, _env(tmp_path / ".llmbulk", "30"), until=_second_frame)
    assert code == 130
    screen = _screen(drawn)
    assert not any("next poll" in line or "settled" in line for line in screen), screen
    assert re.fullmatch(r"error: interrupted; job \w+ is safe to continue: .*", screen[-1]), screen
    assert drawn.rfind("\x1b[?25h") > drawn.rfind("\x1b[?25l")


def test_quiet_on_a_terminal_draws_no_panel_only_the_final_lines(tmp_path: Path) -> None:
    code, drawn = _on_terminal([*RUN, *WAVES, "-q"], tmp_path, _env(tmp_path / ".llmbulk", "0.5"))
    assert code == 0, drawn
    assert "next poll" not in drawn and "note:" not in drawn and "progress:" not in drawn
    screen = _screen(drawn)
    assert len(screen) == 2 and screen[0].startswith("done: job ") and screen[1].startswith("wrote 50 rows to ")


LINE = re.compile(
    r"progress: job=(?P<job>\w+) settled=(?P<settled>\d+)/50 succeeded=(?P<succeeded>\d+) failed=0 dead=0 "
    r"batches=(?P<batches>[a-z]+:\d+(?:,[a-z]+:\d+)*) elapsed=\d+s eta=(?P<eta>estimating|\d+s) "
    r"cost=\$[\d.]+ estimate=\$[\d.]+ next_poll=\d+\.\ds"
)


@pytest.fixture
def slow_batches(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    monkeypatch.setenv("LLMBULK_EMULATOR_SECONDS", "0.6")
    monkeypatch.setenv("LLMBULK_EMULATED_POLL_INITIAL", "0.2")
    monkeypatch.setenv("LLMBULK_EMULATED_POLL_MAX", "0.2")


def test_off_a_terminal_one_progress_line_per_round(llmbulk: Callable[..., Outcome], slow_batches: None) -> None:
    result = llmbulk(*RUN, *WAVES)
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    assert "\x1b" not in result.stderr and "\r" not in result.stderr
    progress = [LINE.fullmatch(line) for line in lines if line.startswith("progress: ")]
    assert len(progress) >= 3 and all(progress), lines
    matches = [m for m in progress if m is not None]
    assert len({m["job"] for m in matches}) == 1
    settled = [int(m["settled"]) for m in matches]
    assert settled == sorted(settled) and settled[-1] in (40, 50)
    batches = [dict(p.split(":") for p in m["batches"].split(",")) for m in matches]
    assert batches[0].get("unsent") == "2" and batches[-1].get("ended") in ("2", "3")
    assert matches[0]["eta"] == "estimating" and matches[-1]["eta"].endswith("s")
    # Rounds, not redraws: about one line per poll interval of the run.
    assert len(progress) < 40
    assert lines[-2].startswith(f"done: job {matches[0]['job']} · 50 succeeded") and lines[-1].startswith("wrote 50")


def test_verbose_adds_each_batch_transition(llmbulk: Callable[..., Outcome], slow_batches: None) -> None:
    result = llmbulk(*RUN, *WAVES, "-v")
    assert result.exit_code == 0, result.stderr
    ended = re.findall(r"^batch (batch_\w+): (?:\w+ → )+?(?:\w+ → )?ended after \d+\.\ds$", result.stderr, re.M)
    assert len(set(ended)) == 3, result.stderr
    for batch_id in ended:
        states = re.findall(rf"^batch {batch_id}: (?:\w+ → )?(\w+)", result.stderr, re.M)
        assert states[-1] == "ended" and len(states) == len(set(states)) >= 2  # each change once


def test_quiet_off_a_terminal_prints_only_the_final_lines(llmbulk: Callable[..., Outcome], slow_batches: None) -> None:
    result = llmbulk(*RUN, *WAVES, "-q")
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("done: job ") and lines[1].startswith("wrote 50 rows")


def test_collect_follow_reports_rounds_too(llmbulk: Callable[..., Outcome], slow_batches: None) -> None:
    submit = [a for a in RUN if a not in ("--out", "out.csv")]
    submitted = llmbulk("submit", *submit[1:], "--max-items-per-batch", "25", "--json")
    assert submitted.exit_code == 0, submitted.stderr
    job_id = submitted.json()["job_id"]
    result = llmbulk("collect", job_id, "--follow", "--out", "out.csv")
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    assert any(line.startswith(f"progress: job={job_id} settled=0/50 ") for line in lines), lines
    assert f"done: job {job_id} · 50 succeeded, 0 failed, 0 dead of 50" in result.stderr


def _status(batches: list[BatchView], unsent: int) -> JobStatus:
    class Job:
        id, provider, model, state, n_items, emulated = "j1", "openai", "gpt-4o-mini", "active", 30, True
        created_at, input_path, out_path, estimate_json = 0.0, "in.csv", None, '{"batch_likely_usd": 0.5}'

    return JobStatus(Job(), {"succeeded": 10, "queued": 20}, batches, [], {}, [], unsent)


def _batch(state: str, created: float, ended: float | None = None) -> BatchView:
    return BatchView(f"b{created}", "s", f"batch_{created}", state, None, 10, None, None, False, created, ended,
                     None, ended is not None, None)  # fmt: skip


def test_eta_from_observed_latency() -> None:
    now = 1_000.0
    waiting = rounds.snapshot(_status([_batch("running", now - 4)], unsent=1))
    assert waiting.eta(now) is None and "eta=estimating" in rounds.progress_line(waiting, 4, now, 1.0)
    # One batch took 10 s; the one in flight for 4 s has ~6 s left, then the unsent shard takes 10 s.
    snap = rounds.snapshot(_status([_batch("ended", now - 20, now - 10), _batch("running", now - 4)], unsent=1))
    assert snap.eta(now) == pytest.approx(16.0) and snap.estimate == 0.5
    assert snap.batches == {"running": 1, "ended": 1}
    overdue = rounds.snapshot(_status([_batch("ended", now - 20, now - 10), _batch("running", now - 30)], unsent=0))
    assert overdue.eta(now) == 0.0
