"""The `llmbulk` command: options → one verb → render, behind one error boundary.

`run_command` is the only place where errors become exit codes: every `LlmbulkError` is one
line on stderr and its exit code; click's own errors (bad option values, missing options) one
`error:` line instead of a usage block; Ctrl-C or SIGTERM one line and exit 130. Nothing else is
caught, so a bug still shows its traceback (without locals, so keys never appear).

This module imports neither typer nor click: the quick `status` path of `llmbulk.entry` uses the
same boundary without paying for them. `app` (the typer application) is built on first access.
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llmbulk.errors import ExitStatus, LlmbulkError

if TYPE_CHECKING:
    import typer

__all__ = ["app", "main", "run_command"]

# Storage trouble (disk full, file-size limit, read-only or forbidden paths) is the machine's,
# not a bug: one line. The state database's transactions roll back, so nothing half-written stays.
_STORAGE_ERRORS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def run_command(body: Callable[[], object]) -> int:
    """Run `body` (a command, or the whole command line) and return its exit code.

    `body` may return an `ExitStatus`/int (its exit code) or None (0).
    """
    from llmbulk import interrupts

    _forget_current_job()
    interrupts.begin()
    try:
        code = body()
    except KeyboardInterrupt:
        return _interrupted()
    except Exception as exc:
        if interrupts.received():  # the interrupt, turned into another error on its way up
            return _interrupted()
        return _failed(exc)
    code = int(code) if isinstance(code, int) else 0
    if code == ExitStatus.INTERRUPTED:  # typer's own form of a Ctrl-C (it reports nothing itself)
        _interrupted()
    return code


def _failed(exc: Exception) -> int:
    """The exit code of a command that raised `exc` (re-raised if it is a bug)."""
    from llmbulk import render

    if isinstance(exc, LlmbulkError):
        render.error(str(exc) + _kept_job_note(exc))
        return int(exc.exit_status)
    if isinstance(exc, OSError):
        if exc.errno not in _STORAGE_ERRORS:
            raise exc
        where = f" {exc.filename}" if exc.filename else ""
        render.error(f"cannot write{where}: {exc.strerror}; nothing recorded was lost")
        return int(ExitStatus.ERROR)
    mapped = _click_error(exc)
    if mapped is None:
        raise exc
    return mapped


def _interrupted() -> int:
    from llmbulk import interrupts, render

    interrupts.report(render.error)  # once, however many layers see the same interrupt
    return int(ExitStatus.INTERRUPTED)


def _click_error(exc: Exception) -> int | None:
    """The exit code for one of click's own exceptions (already shown), else None."""
    click = sys.modules.get("typer._click") or sys.modules.get("click")
    if click is None:  # no command line was parsed: it cannot be one of click's
        return None
    from llmbulk.cli.root import click_errors

    if isinstance(exc, getattr(click_errors, "NoArgsIsHelpError", ())):  # `llmbulk` alone: the help
        exc.show()  # type: ignore[attr-defined]
        return int(exc.exit_code)  # type: ignore[attr-defined]
    if isinstance(exc, click_errors.ClickException):
        from llmbulk import render

        message = " ".join(exc.format_message().splitlines())
        if isinstance(exc, click_errors.UsageError) and exc.ctx is not None:
            message += f" — see `{exc.ctx.command_path} --help`"
        render.error(message)
        return int(exc.exit_code)
    import typer

    if isinstance(exc, typer.Abort):  # click's form of a Ctrl-C outside a command body
        return _interrupted()
    return None


def _forget_current_job() -> None:
    """A job named by an earlier command of this process is not this one's."""
    session = sys.modules.get("llmbulk.session")  # loaded only once a command works on a job
    if session is not None:
        session.current_job.set(None)


def _kept_job_note(exc: LlmbulkError) -> str:
    """After a provider or setup failure, where the job the command made or continued stands."""
    from llmbulk.errors import ConfigError, ProviderError

    session = sys.modules.get("llmbulk.session")
    job_id = session.current_job.get() if session is not None else None
    if job_id is None or not isinstance(exc, ProviderError | ConfigError):
        return ""
    return (
        f" (job {job_id} is kept: once fixed, `llmbulk run {job_id}` continues it; `llmbulk cancel {job_id}` drops it)"
    )


def main() -> None:
    """Console-script entry point (through `llmbulk.entry`)."""
    from llmbulk.cli.root import app

    sys.exit(run_command(app))


def __getattr__(name: str) -> Any:
    if name == "app":  # built on first use: importing typer is not free
        from llmbulk.cli.root import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:
    app: typer.Typer
