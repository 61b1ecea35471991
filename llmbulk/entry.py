"""The console entry point: `llmbulk status JOB` is answered before the CLI framework is imported.

Cron jobs, CI steps and dashboards poll `status` often, and importing the CLI framework costs
more than the queries of a million-item job. Only the plain forms are taken here (`status JOB`
with `--json`, `--db URL`, `--home DIR`); anything else, and anything the quick reader leaves to
the full path (no database yet, another schema), goes to the full CLI, which parses, migrates
and explains exactly as before.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Console-script entry point; Ctrl-C or SIGTERM at any moment ends in one line and exit 130."""
    from llmbulk import interrupts

    interrupts.install()
    try:
        plain = _plain_status(sys.argv[1:])
        if plain is not None:
            code = _quick_status(*plain)
            if code is not None:
                sys.exit(code)
        from llmbulk.cli import main as cli_main

        cli_main()
    except KeyboardInterrupt:  # landed outside a command body (imports, parsing, cleanup)
        interrupts.leave()
    except SystemExit as exc:
        if exc.code == interrupts.INTERRUPTED:  # the line is printed: don't wait on stray threads
            interrupts.exit_now()
        interrupts.ignore()  # the work is done: a late signal must not turn its exit status into a kill
        raise


def _plain_status(args: list[str]) -> tuple[str, bool, str | None, str | None] | None:
    """(job, json, db, home) when the arguments are a plain `status JOB`, else None."""
    if not args or args[0] != "status":
        return None
    job: str | None = None
    as_json, db, home = False, None, None
    rest = iter(args[1:])
    for arg in rest:
        if arg == "--json":
            as_json = True
        elif arg in ("--db", "--home"):
            value = next(rest, None)
            if value is None or value.startswith("-"):
                return None
            db, home = (value, home) if arg == "--db" else (db, value)
        elif arg.startswith("-") or job is not None:
            return None  # --refresh, --help, a typo: the full CLI handles or explains it
        else:
            job = arg
    return (job, as_json, db, home) if job else None


def _quick_status(job: str, as_json: bool, db: str | None, home: str | None) -> int | None:
    from llmbulk.config import load_settings
    from llmbulk.errors import LlmbulkError
    from llmbulk.store.quick import read_status

    try:
        settings = load_settings(home=home, db=db)
        status = read_status(settings.db_url, job)
    except LlmbulkError:
        return None
    if status is None:
        return None
    from llmbulk import render
    from llmbulk.cli import run_command
    from llmbulk.events import delivery_failures
    from llmbulk.views import exit_status

    def show() -> int:
        failures = delivery_failures(settings.job_dir(job) / "log.jsonl")
        render.status_output(status, "json" if as_json else "table", failures)
        return int(exit_status(status))

    return run_command(show)
