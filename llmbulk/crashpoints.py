"""Named points where a test can make this process die (SIGKILL) or freeze (SIGSTOP), to prove safety.

`LLMBULK_CRASH_AT=name` (or `name:N`) kills the process the N-th time the point is reached, and
every later time. `LLMBULK_PAUSE_AT=name` (or `name:N`) stops it there once, on the N-th time, as a
closed laptop lid or a paused VM would; the test sends SIGCONT to let it go on. Either variable may
name several points, comma-separated. Unset — the normal case — each point costs two lookups.
"""

from __future__ import annotations

import os
import signal

_seen: dict[str, int] = {}


def _wanted(variable: str, name: str) -> int | None:
    """The occurrence of point `name` that `variable` asks for, or None if it names another point."""
    value = os.environ.get(variable)
    if not value:
        return None
    for entry in value.split(","):
        point, _, nth = entry.strip().partition(":")
        if point == name:
            return int(nth) if nth.strip().isdigit() else 1
    return None


def crashpoint(name: str) -> None:
    """Die here, uncleanly, or freeze until SIGCONT, if the environment asks for it."""
    crash_at = _wanted("LLMBULK_CRASH_AT", name)
    pause_at = _wanted("LLMBULK_PAUSE_AT", name)
    if crash_at is None and pause_at is None:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if pause_at is not None and _seen[name] == pause_at:
        os.kill(os.getpid(), signal.SIGSTOP)  # the whole process, heartbeat thread included
    if crash_at is not None and _seen[name] >= crash_at:
        os.kill(os.getpid(), signal.SIGKILL)
