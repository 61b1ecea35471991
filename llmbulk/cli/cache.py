"""`llmbulk cache …`: the answers earlier jobs paid for, which later jobs reuse instead of sending."""

from __future__ import annotations

from typing import Annotated

import typer

from llmbulk.cli import complete
from llmbulk.cli.options import JsonOpt, State, grouped
from llmbulk.cli.root import HELP_OPTIONS, app

cache_app = typer.Typer(
    help="The answers earlier jobs paid for: a request sent again is answered from them (see --fresh).",
    no_args_is_help=True,
    context_settings=HELP_OPTIONS,
)
app.add_typer(cache_app, name="cache")


@cache_app.command("stats")
@grouped
def cache_stats(json: JsonOpt = False, *, state: State) -> None:
    """Show how many answers are kept, their size, how often they were reused and what that saved.

    Example: llmbulk cache stats
    """
    from llmbulk import api, render

    stats = api.cache_stats(settings=state.settings())
    render.print_json(stats) if json else render.cache_stats(stats)


@cache_app.command("prune")
@grouped
def cache_prune(
    older_than: Annotated[
        str | None, typer.Option("--older-than", help="Forget answers recorded longer ago than this, e.g. 30d.")
    ] = None,
    job: Annotated[
        str | None,
        typer.Option("--job", help="Forget the answers this job paid for.", autocompletion=complete.job_ids),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Forget every answer.")] = False,
    json: JsonOpt = False,
    *,
    state: State,
) -> None:
    """Forget answers so later jobs send those requests again (the jobs keep their own results).

    Example: llmbulk cache prune --older-than 30d
    """
    from llmbulk import api, render
    from llmbulk.reuse import parse_age

    age = 0.0 if all_ else (None if older_than is None else parse_age(older_than, "--older-than"))
    removed = api.prune_cache(age, job, settings=state.settings())
    if json:
        render.print_json({"removed": removed})
    else:
        render.err.print(f"forgot {removed:,} answer(s)", markup=False)
