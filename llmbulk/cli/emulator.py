"""`llmbulk emulator …`: the local emulator of the providers' batch APIs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmbulk.cli.options import HomeOpt, State
from llmbulk.cli.root import HELP_OPTIONS, app

emulator_app = typer.Typer(
    help="The local emulator of the providers' batch APIs.", no_args_is_help=True, context_settings=HELP_OPTIONS
)
app.add_typer(emulator_app, name="emulator")


@emulator_app.command("serve")
def emulator_serve(
    host: Annotated[str, typer.Option("--host", help="Loopback address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port (0 = any free port).")] = 8765,
    state_dir: Annotated[
        Path | None, typer.Option("--state-dir", help="Where emulated files and batches live.")
    ] = None,
    batch_seconds: Annotated[float, typer.Option("--batch-seconds", help="How long an emulated batch runs.")] = 2.0,
    faults: Annotated[Path | None, typer.Option("--faults", help="Fault plan JSON file.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed for deterministic faults and responses.")] = 0,
    api_key: Annotated[str | None, typer.Option("--api-key", help="Accept only this key (default: any key).")] = None,
    models: Annotated[
        str | None,
        typer.Option("--models", help="Extra models the emulator serves: provider:model[@endpoint],…"),
    ] = None,
    home: HomeOpt = None,
) -> None:
    """Serve the local emulator of the OpenAI, Anthropic and Gemini batch APIs in the foreground.

    Exits 8 when the port is in use (checked before anything is printed).

    Example: llmbulk emulator serve --port 8765   (then export the printed variables)
    """
    from llmbulk import render
    from llmbulk.emulator.cli import serve

    directory = state_dir or State(home=home).settings().emulator_dir
    serve(host, port, directory, batch_seconds, faults, seed, render.out, api_key=api_key, models=models)
