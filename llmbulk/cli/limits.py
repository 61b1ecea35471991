"""`llmbulk limits`: the capacity scopes every runner of the state database shares (#21)."""

from __future__ import annotations

from typing import Annotated

import typer

from llmbulk.cli import complete
from llmbulk.cli.options import JsonOpt, State, grouped
from llmbulk.cli.root import HELP_OPTIONS, app

limits_app = typer.Typer(
    help="Provider limits per account and model, shared by every job and runner of the state database.",
    context_settings=HELP_OPTIONS,
)
app.add_typer(limits_app, name="limits")


@limits_app.callback(invoke_without_command=True)
@grouped
def limits(ctx: typer.Context, json: JsonOpt = False, *, state: State) -> None:
    """List each scope: its limit, the limit observed at the provider, what is in use and what is queued.

    Example: llmbulk limits --json
    """
    if ctx.invoked_subcommand is not None:
        return
    from llmbulk import api, render

    reports = api.limits(settings=state.settings())
    render.print_json(render.limits_json(reports)) if json else render.limits_table(reports)


@limits_app.command("set")
@grouped
def limits_set(
    provider: Annotated[str, typer.Argument(help="Provider or vendor profile.", autocompletion=complete.providers)],
    model: Annotated[str, typer.Argument(help="Model the limits apply to.")],
    enqueued_tokens: Annotated[
        int | None, typer.Option("--enqueued-tokens", min=0, help="Estimated tokens in flight (0: the default).")
    ] = None,
    active_batches: Annotated[
        int | None, typer.Option("--active-batches", min=0, help="Batches in flight (0: the default).")
    ] = None,
    creations_per_hour: Annotated[
        int | None, typer.Option("--creations-per-hour", min=0, help="Batch creations per hour (0: the default).")
    ] = None,
    files: Annotated[int | None, typer.Option("--files", min=0, help="Files at the provider (0: the default).")] = None,
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="The account's base URL, as the jobs were given it.")
    ] = None,
    emulate: Annotated[bool, typer.Option("--emulate", help="The scope of emulated jobs.")] = False,
    json: JsonOpt = False,
    *,
    state: State,
) -> None:
    """Set limits of one provider account and model; the others keep theirs. Forgets what a quota
    refusal lowered the observed limit to.

    Example: llmbulk limits set openai gpt-4o-mini --enqueued-tokens 2000000
    """
    from llmbulk import api, render

    given = {
        "enqueued_tokens": enqueued_tokens, "active_batches": active_batches,
        "creations_per_hour": creations_per_hour, "files": files,
    }  # fmt: skip
    values = {name: value for name, value in given.items() if value is not None}
    reports = api.set_limits(provider, model, values, base_url=base_url, emulate=emulate, settings=state.settings())
    render.print_json(render.limits_json(reports)) if json else render.limits_table(reports)
