"""Commands that read jobs: status, jobs, items, cost, stats, doctor."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from llmbulk.cli import complete
from llmbulk.cli.options import JobArg, JsonOpt, Listing, OutOpt, State, grouped
from llmbulk.cli.root import app
from llmbulk.errors import ExitStatus


@app.command()
@grouped
def status(
    job: JobArg,
    refresh: Annotated[bool, typer.Option("--refresh", "-r", help="Poll the provider before showing.")] = False,
    *,
    listing: Listing,
    state: State,
) -> None:
    """Show a job's batches, item counts by state, errors and dead items.

    Reads the state database only (fast, no network) unless --refresh is given.
    --format csv or jsonl prints the batches, json the whole status.
    Exit code: 0 done, 3 still running, 4 done with failed or dead items.

    Example: llmbulk status j7f3k2 --refresh
    """
    from llmbulk import exit_status, read_status, render
    from llmbulk.events import delivery_failures

    kind, settings = listing.kind, state.settings()
    result = None if refresh else read_status(settings.db_url, job)
    if result is None:  # polling, or anything the quick reader leaves to the full path
        from llmbulk import api

        result = api.status(job, refresh=refresh, settings=settings)
    render.status_output(result, kind, delivery_failures(settings.job_dir(job) / "log.jsonl"))
    render.expiry_notice(result)
    raise typer.Exit(int(exit_status(result)))


@app.command()
@grouped
def jobs(
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many jobs to list.")] = 50,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More detail on stderr.")] = 0,
    *,
    listing: Listing,
    state: State,
) -> None:
    """List jobs, newest first (-v also says which state database is in use).

    Example: llmbulk jobs --format csv
    """
    from llmbulk import read_jobs, render
    from llmbulk.events import redact_url

    kind, settings = listing.kind, state.settings()
    if verbose:
        render.err.print(f"state: {redact_url(settings.db_url)} (home {settings.home.resolve()})", markup=False)
    found: list[Any] | None = read_jobs(settings.db_url, limit)  # rows with the Job fields, without SQLAlchemy
    if found is None:  # no database yet, another schema: the full path creates, migrates or explains
        from llmbulk import api

        found = list(api.jobs(limit, settings=settings))
    render.jobs_output(found, kind)


@app.command()
@grouped
def items(
    job: JobArg,
    item_state: Annotated[
        str,
        typer.Option("--state", help="Item state, e.g. dead, failed_permanent.", autocompletion=complete.item_states),
    ] = "dead",
    out: OutOpt = None,
    limit: Annotated[int | None, typer.Option("--limit", "-n", help="At most this many.")] = None,
    *,
    listing: Listing,
    state: State,
) -> None:
    """List or export a job's items in one state, with the error of their last attempt (the dead-letter list).

    Example: llmbulk items j7f3k2 --state dead --out dead.csv
    """
    from llmbulk import items as read_items  # light: the quick reader when it can (not through llmbulk.api)
    from llmbulk import render

    kind = listing.kind
    result = read_items(job, item_state, out, limit=limit, settings=state.settings())
    if out is None or kind == "json":
        render.items_output(result, kind)
    elif str(out) != "-":
        render.err.print(f"wrote {len(result):,} item(s) to {out}", markup=False)


@app.command()
@grouped
def cost(job: JobArg, *, listing: Listing, state: State) -> None:
    """Show a job's cost: estimate at submit vs actual so far, and the saving against synchronous calls.

    Prices come from the genai-prices library (batch rates); unknown models show as unknown, never $0.

    Example: llmbulk cost j7f3k2
    """
    from llmbulk import cost as read_cost  # light: the quick reader when it can (not through llmbulk.api)
    from llmbulk import render

    render.cost_output(read_cost(job, settings=state.settings()), listing.kind)


@app.command()
@grouped
def stats(
    job: Annotated[
        str | None, typer.Argument(help="Job id (default: recent jobs).", autocompletion=complete.job_ids)
    ] = None,
    recent: Annotated[int, typer.Option("--recent", help="How many recent jobs when no job is given.")] = 20,
    json: JsonOpt = False,
    *,
    state: State,
) -> None:
    """Batch latency, throughput, failure rate by error code, retries, dead items and cost.

    Example: llmbulk stats j7f3k2
    """
    from llmbulk import api, render

    result = api.stats(job, recent=recent, settings=state.settings())
    render.print_json(render.stats_json(result)) if json else render.stats_report(result)


@app.command()
@grouped
def doctor(
    model: Annotated[
        list[str], typer.Option("--model", "-m", help="Check a model name too, as provider:model (repeatable).")
    ] = [],  # noqa: B006 - typer needs a literal default
    json: JsonOpt = False,
    *,
    state: State,
) -> None:
    """Check provider keys, the state database (reachable and migrated) and the local emulator.

    Example: llmbulk doctor --model openai:gpt-4o-mini
    """
    from llmbulk import api, render

    checks = api.doctor(settings=state.settings(), models=model)
    render.print_json(render.doctor_json(checks)) if json else render.doctor_report(checks)
    essential = [c for c in checks if not c.name.endswith(" key")]
    raise typer.Exit(int(ExitStatus.DONE if all(c.ok for c in essential) else ExitStatus.ERROR))
