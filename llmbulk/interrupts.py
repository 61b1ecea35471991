"""Ctrl-C and SIGTERM: one line on stderr and exit 130, whatever moment they land.

SIGTERM (a CI runner's cancel, `kill`, a container stop) is handled like Ctrl-C: the command
unwinds, releasing its job's lease, and says which job it left and how to continue it. A second
signal while unwinding leaves at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType

from llmbulk.errors import ExitStatus

INTERRUPTED = int(ExitStatus.INTERRUPTED)
_received: list[int] = []
_reported: list[bool] = []
_deferring: list[bool] = []
_pending: list[int] = []
_cleanups: list[Callable[[], object]] = []  # run before an interrupted exit, which skips atexit


def install() -> None:
    """Route SIGINT and SIGTERM to the same orderly interrupt."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _on_signal)
    if sys.unraisablehook is not _quiet_after_signal:
        _default_unraisable.append(sys.unraisablehook)
        sys.unraisablehook = _quiet_after_signal


_default_unraisable: list[Callable[[sys.UnraisableHookArgs], object]] = []


def _quiet_after_signal(unraisable: sys.UnraisableHookArgs) -> None:
    """After a signal, an object half built when it landed can fail in its `__del__` (an SDK
    client whose HTTP client never finished `__init__`); Python would print that traceback under
    the one interrupt line. It is the interrupt's consequence, not news: say nothing."""
    if _received:
        return
    _default_unraisable[0](unraisable)


def begin() -> None:
    """A new command: signals an earlier command of this process received are not its own."""
    _received.clear()
    _reported.clear()
    _pending.clear()


def received() -> bool:
    """Whether SIGINT or SIGTERM arrived during this command.

    A signal can land inside library code that turns the KeyboardInterrupt into its own error
    (pydantic building an SDK's response model wraps it in a SchemaError): any error seen after a
    signal is that signal.
    """
    return bool(_received)


def ignore() -> None:
    """From here on (the command has finished), SIGINT and SIGTERM change nothing."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    _received.append(signum)
    if len(_received) > 1:  # interrupted again while unwinding: leave now
        leave()
    if _deferring:  # raised when the deferred step ends
        _pending.append(signum)
        return
    raise KeyboardInterrupt


class Deferral:
    """A step that an interrupt must not split: a signal landing inside it is raised when it ends.

    Python runs a signal handler at the first bytecode after a C call returns, so a signal that
    arrives during a commit would otherwise surface just after it, before the caller has noted
    what the commit made (a new job, whose id the interrupt line must name). `start` may come
    late in a block (just before the commit); `end` belongs in a `finally`.
    """

    def __init__(self) -> None:
        self.active = False

    def start(self) -> None:
        if not self.active:
            self.active = True
            _deferring.append(True)

    def end(self) -> None:
        if not self.active:
            return
        self.active = False
        _deferring.pop()
        if _pending and not _deferring:
            _pending.clear()
            raise KeyboardInterrupt


def message() -> str:
    """The one line: what stopped, and the job and command that continue the work."""
    what = "terminated" if signal.SIGTERM in _received else "interrupted"
    session = sys.modules.get("llmbulk.session")  # loaded only once a command works on a job
    job_id = session.current_job.get() if session is not None else None
    if job_id is None:
        return what
    return f"{what}; job {job_id} is safe to continue: llmbulk run {job_id} (or rerun the same command)"


def report(show: Callable[[str], object]) -> None:
    """Show the one line, once, however many layers see the same interrupt."""
    if not _reported:
        _reported.append(True)
        show(message())


def leave() -> None:
    """Print the line and exit 130 without waiting for anything else."""
    with contextlib.suppress(OSError, ValueError):
        report(lambda line: sys.stderr.write(f"error: {line}\n"))
    exit_now()


def add_cleanup(fn: Callable[[], object]) -> None:
    """Run `fn` (quick, e.g. erasing a live display) before an interrupted exit, which skips atexit."""
    _cleanups.append(fn)


def remove_cleanup(fn: Callable[[], object]) -> None:
    with contextlib.suppress(ValueError):
        _cleanups.remove(fn)


def exit_now() -> None:
    """Exit 130 at once: the state is committed; threads still downloading are not waited for."""
    for fn in list(_cleanups):
        with contextlib.suppress(Exception):
            fn()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(INTERRUPTED)
