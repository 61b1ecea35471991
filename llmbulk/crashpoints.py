"""Named points where a test can make this process die with SIGKILL, to prove crash safety.

Set `LLMBULK_CRASH_AT=name` (or `name:N` to die at the N-th time the point is reached). Unset —
the normal case — each point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

_seen: dict[str, int] = {}


def crashpoint(name: str) -> None:
    """Die here, uncleanly, if the environment asks for it."""
    wanted = os.environ.get("LLMBULK_CRASH_AT")
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
