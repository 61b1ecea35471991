"""The typer application: the command groups, `-h` as `--help`, `--version`, and click's errors
routed through the one error boundary (`llmbulk.cli.run_command`)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

try:
    from typer._click import exceptions as click_errors  # newer typer vendors its own click
except ImportError:  # pragma: no cover - older typer runs on click
    from click import exceptions as click_errors  # type: ignore[no-redef]

__all__ = ["HELP_OPTIONS", "app", "click_errors"]

HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}


class _OneLineErrors(TyperGroup):
    """Runs the command line inside `run_command`, so click's errors are one `error:` line too."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        extra["windows_expand_args"] = windows_expand_args
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        from llmbulk.cli import run_command

        # Without standalone mode click raises its errors instead of printing them, and returns
        # the exit code of a typer.Exit (130 for a Ctrl-C inside a command body).
        sys.exit(run_command(lambda: super(_OneLineErrors, self).main(args, prog_name, complete_var, False, **extra)))


app = typer.Typer(
    name="llmbulk",
    cls=_OneLineErrors,
    help="Run large LLM workloads through the providers' discounted Batch APIs.\n\n"
    "Example: llmbulk run reviews.csv --provider openai --model gpt-4o-mini "
    "--prompt 'Sentiment of: {{ text }}' --out results.csv --emulate",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    pretty_exceptions_short=True,
    add_completion=True,
    rich_markup_mode=None,
    context_settings=HELP_OPTIONS,
)


def _version(value: bool) -> None:
    if value:
        from llmbulk import __version__

        typer.echo(f"llmbulk {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Run large LLM workloads through the providers' discounted Batch APIs."""


# The command groups register themselves on `app`, in the order `--help` lists them.
for _group in ("jobs", "inspect", "gc", "limits", "prune", "cache", "emulator"):
    importlib.import_module(f"llmbulk.cli.{_group}")
