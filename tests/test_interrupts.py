"""What an interrupted process prints: the one line, never a library's leftover traceback."""

from __future__ import annotations

import subprocess
import sys
import textwrap

_SCRIPT = textwrap.dedent(
    """
    import gc, os, signal
    from llmbulk import interrupts

    class HalfBuilt:  # an SDK client whose HTTP client never finished __init__
        def __del__(self):
            raise AttributeError("'Wrapper' object has no attribute '_state'")

    interrupts.install()
    HalfBuilt()          # before any signal: Python reports it as usual
    gc.collect()
    try:
        os.kill(os.getpid(), signal.SIGINT)
    except KeyboardInterrupt:
        pass
    HalfBuilt()          # after the signal: the interrupt's consequence, not news
    gc.collect()
    print("done")
    """
)


def test_a_failing_destructor_after_a_signal_prints_nothing() -> None:
    done = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "done", done
    assert done.stderr.count("Exception ignored") == 1, done.stderr
    assert done.stderr.count("_state") == 1, done.stderr
