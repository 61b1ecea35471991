"""Shell completion of the values users type: job ids, providers, item states, formats.

Completion runs the whole command line on every Tab, so each source is the cheapest that is
right: job ids from the state database (the newest first), the rest from constants. A state
that cannot be read completes nothing rather than printing an error into the shell.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer


def job_ids(ctx: typer.Context, incomplete: str) -> list[str]:
    """Ids of the jobs in the state database that start with what is typed, newest first.

    The database is the one the command line names so far (`--db`, `--home`, their variables,
    else the one found from here); a state that does not exist yet is not created.
    """
    with contextlib.suppress(Exception):  # a broken URL, an unreachable server: no candidates
        from llmbulk import api
        from llmbulk.config import load_settings

        settings = load_settings(home=ctx.params.get("home"), db=ctx.params.get("db"))
        sqlite = settings.db_url.removeprefix("sqlite:///").split("?", 1)[0]
        if settings.db_url.startswith("sqlite:///") and not Path(sqlite).is_file():
            return []
        return [job.id for job in api.jobs(1000, settings=settings) if job.id.startswith(incomplete)]
    return []


def providers(incomplete: str) -> list[str]:
    from llmbulk.providers import REGISTRY

    return [name for name in sorted(REGISTRY) if name.startswith(incomplete)]


def item_states(incomplete: str) -> list[str]:
    from llmbulk.views import OPEN_ITEM_STATES, SETTLED_ITEM_STATES

    return [state for state in (*OPEN_ITEM_STATES, *SETTLED_ITEM_STATES) if state.startswith(incomplete)]


def formats(incomplete: str) -> list[str]:
    return [name for name in ("table", "csv", "json", "jsonl") if name.startswith(incomplete)]
