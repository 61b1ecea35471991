"""`llmbulk gc`: list (and with --apply remove) what llmbulk left at the providers."""

from __future__ import annotations

from typing import Annotated

import typer

from llmbulk.cli import complete
from llmbulk.cli.options import JsonOpt, State, grouped
from llmbulk.cli.root import app
from llmbulk.errors import ExitStatus


@app.command()
@grouped
def gc(
    provider: Annotated[
        list[str],
        typer.Option(
            "--provider",
            "-p",
            help="Provider or vendor profile to scan (repeatable; default: every one with a key).",
            autocompletion=complete.providers,
        ),
    ] = [],  # noqa: B006 - typer needs a literal default
    apply: Annotated[
        bool, typer.Option("--apply", help="Cancel and delete what is listed (default: a dry run).")
    ] = False,
    emulate: Annotated[bool, typer.Option("--emulate", help="Scan the local emulator (the emulated jobs).")] = False,
    json: JsonOpt = False,
    *,
    state: State,
) -> None:
    """List what llmbulk left at the providers: orphan batches still running, input files of ended
    batches, result files already collected, files of deleted jobs. Nothing is changed without --apply,
    and nothing is listed that llmbulk cannot prove it made. Exit code 1 if a provider could not be
    listed or a cancel or delete failed.

    Example: llmbulk gc --provider openai && llmbulk gc --provider openai --apply
    """
    from llmbulk import api, render

    report = api.gc(provider_names=provider, apply=apply, emulate=emulate, settings=state.settings())
    render.print_json(render.gc_json(report)) if json else render.gc_report(report)
    raise typer.Exit(int(ExitStatus.DONE if report.ok else ExitStatus.ERROR))
