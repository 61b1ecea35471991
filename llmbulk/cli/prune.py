"""`llmbulk prune`: list (and with --apply delete) the local raw results and shards of finished jobs."""

from __future__ import annotations

from typing import Annotated

import typer

from llmbulk.cli import complete
from llmbulk.cli.options import JsonOpt, State, grouped
from llmbulk.cli.root import app


@app.command()
@grouped
def prune(
    older_than: Annotated[
        str | None, typer.Option("--older-than", help="Only jobs finished longer ago than this, e.g. 30d.")
    ] = None,
    job: Annotated[
        list[str],
        typer.Option("--job", help="Only this job (repeatable).", autocompletion=complete.job_ids),
    ] = [],  # noqa: B006 - typer needs a literal default
    apply: Annotated[bool, typer.Option("--apply", help="Delete what is listed (default: a dry run).")] = False,
    json: JsonOpt = False,
    *,
    state: State,
) -> None:
    """List the raw result files and shards that finished jobs keep in the state home; --apply deletes them.

    A job still running (or with results not yet collected) is never touched. The database keeps every
    outcome, so `collect` still writes the output table; the raw results cannot be downloaded again
    (collect deletes them at the provider), which is why nothing is deleted without --apply.

    Example: llmbulk prune --older-than 30d && llmbulk prune --older-than 30d --apply
    """
    from llmbulk import api, render
    from llmbulk.reuse import parse_age

    age = None if older_than is None else parse_age(older_than, "--older-than")
    report = api.prune(job_ids=job or None, older_than=age, apply=apply, settings=state.settings())
    if json:
        render.print_json(
            {
                "applied": report.applied,
                "jobs": [
                    {
                        "job_id": p.job_id,
                        "files": p.files,
                        "bytes": p.bytes,
                        "finished_at": p.finished_at,
                        "outcome": p.outcome or None,
                    }
                    for p in report.jobs
                ],
                "skipped": [{"job_id": j, "reason": why} for j, why in report.skipped],
            }
        )
        return
    for pruned in report.jobs:
        what = pruned.outcome or "would be deleted"
        line = f"{pruned.job_id}: {pruned.files} file(s), {pruned.bytes / 1e6:,.1f} MB — {what}"
        render.out.print(line, markup=False, highlight=False)
    for job_id, why in report.skipped:
        render.err.print(f"{job_id}: kept ({why})", markup=False, highlight=False)
    total = f"{len(report.jobs)} job(s), {report.files} file(s), {report.bytes / 1e6:,.1f} MB"
    tail = "deleted" if report.applied else "dry run: nothing was deleted (add --apply)"
    render.err.print(f"{total}: {tail}", markup=False, highlight=False)
