"""Options shared by several commands, each group declared once as a dataclass.

A command takes a group as one parameter (`flags: SubmitFlags`); `@grouped` spreads the group's
fields into the signature typer reads, and hands the command the group built from them. So
`submit` and `run` declare their 21 shared options in one place, and every command its
`--db`/`--home` pair and its output format the same way.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, get_type_hints

import typer

from llmbulk.cli import complete
from llmbulk.errors import UsageError

if TYPE_CHECKING:
    from llmbulk import api
    from llmbulk.config import Settings
    from llmbulk.render import RichProgress

F = TypeVar("F", bound=Callable[..., Any])

JobArg = Annotated[str, typer.Argument(help="Job id (see `llmbulk jobs`).", autocompletion=complete.job_ids)]
WaitLockOpt = Annotated[
    float, typer.Option("--wait-lock", help="Wait this many seconds for another process working on the job.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
OutOpt = Annotated[
    Path | None, typer.Option("--out", "-o", help="Output table (.csv, .jsonl, .parquet; - for stdout).")
]
ExplodeOpt = Annotated[
    str | None, typer.Option("--explode", help="One output row per element of this list field of --schema.")
]
TableFormatOpt = Annotated[str | None, typer.Option("--format", help="csv, jsonl or parquet (default: from --out).")]
ProviderOpt = Annotated[
    str,
    typer.Option(
        "--provider",
        "-p",
        help="openai, anthropic, gemini, or an OpenAI-compatible vendor (azure, groq, deepinfra,"
        " doubleword, nebius, novita, openai-compatible).",
        autocompletion=complete.providers,
    ),
]
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Model name, e.g. gpt-4o-mini.")]


HomeOpt = Annotated[
    Path | None,
    typer.Option("--home", envvar="LLMBULK_HOME", help="State directory (default: nearest .llmbulk/ up from here)."),
]


@dataclass
class State:
    """Where the state database is."""

    db: Annotated[str | None, typer.Option("--db", envvar="LLMBULK_DB", help="State database URL or SQLite path.")] = (
        None
    )
    home: HomeOpt = None

    def settings(self) -> Settings:
        from llmbulk.config import load_settings

        return load_settings(home=self.home, db=self.db)


@dataclass
class Output:
    """How much to say on stderr."""

    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More detail on stderr.")] = 0
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr.")] = False

    def progress(self) -> RichProgress:
        from llmbulk.render import RichProgress

        return RichProgress(-1 if self.quiet else self.verbose)


FORMATS = ("table", "csv", "json", "jsonl")


@dataclass
class Listing:
    """How a table is printed: `--format table|csv|json|jsonl`, `--json` for `--format json`."""

    format: Annotated[
        str | None,
        typer.Option("--format", help="table (default), csv, json or jsonl.", autocompletion=complete.formats),
    ] = None
    json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False

    @property
    def kind(self) -> str:
        if self.format is not None and self.format not in FORMATS:
            raise UsageError(f"--format {self.format}: not one of {', '.join(FORMATS)}")
        if self.json and self.format not in (None, "json"):
            raise UsageError(f"--json and --format {self.format} disagree", hint="give one of them")
        return "json" if self.json else self.format or "table"


@dataclass
class SubmitFlags:
    """What `submit` and `run` both take to make a job."""

    prompt: Annotated[str | None, typer.Option("--prompt", help="Jinja2 prompt template over the row's columns.")] = (
        None
    )
    prompt_file: Annotated[Path | None, typer.Option("--prompt-file", help="File holding the prompt template.")] = None
    system: Annotated[str | None, typer.Option("--system", help="System prompt (a template too).")] = None
    id_column: Annotated[
        str | None, typer.Option("--id-column", help="Column with unique item ids (default: row number).")
    ] = None
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", help="Most output tokens per item.")] = None
    temperature: Annotated[float | None, typer.Option("--temperature", help="Sampling temperature.")] = None
    top_p: Annotated[float | None, typer.Option("--top-p", help="Nucleus sampling.")] = None
    seed: Annotated[int | None, typer.Option("--seed", help="Sampling seed, where supported.")] = None
    param: Annotated[list[str], typer.Option("--param", help="Extra model parameter NAME=JSON (repeatable).")] = field(
        default_factory=list
    )
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", help="OpenAI endpoint (default /v1/chat/completions).")
    ] = None
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            help="Where the provider's API is: an Azure resource, or the root of an OpenAI-compatible gateway"
            " (required for openai-compatible). Kept on the job for later commands.",
        ),
    ] = None
    completion_window: Annotated[
        str | None,
        typer.Option(
            "--completion-window", help="Batch window where the provider offers several, e.g. 1h (doubleword)."
        ),
    ] = None
    input_format: Annotated[
        str | None, typer.Option("--input-format", help="csv, jsonl or parquet (default: extension).")
    ] = None
    max_items_per_batch: Annotated[
        int | None, typer.Option("--max-items-per-batch", help="Lower the per-batch request cap.")
    ] = None
    max_bytes_per_batch: Annotated[
        int | None, typer.Option("--max-bytes-per-batch", help="Lower the per-batch byte cap.")
    ] = None
    max_attempts: Annotated[
        int | None, typer.Option("--max-attempts", help="Attempts per item before it is dead (default 3).")
    ] = None
    emulate: Annotated[bool, typer.Option("--emulate", help="Run on the local emulator: no keys, no cost.")] = False
    max_cost: Annotated[
        float | None,
        typer.Option("--max-cost", help="Refuse to submit when the upper-bound estimate exceeds this (USD)."),
    ] = None
    gemini_inline: Annotated[
        bool, typer.Option("--gemini-inline", help="Gemini: send requests inline (under 20 MB) instead of a file.")
    ] = False
    max_active_batches: Annotated[
        int | None, typer.Option("--max-active-batches", help="Submit gradually: at most this many batches in flight.")
    ] = None
    max_enqueued_tokens: Annotated[
        int | None,
        typer.Option("--max-enqueued-tokens", help="Submit gradually: at most this many estimated tokens in flight."),
    ] = None
    priority: Annotated[
        int, typer.Option("--priority", help="Waiting for quota, higher priorities are served first (default 0).")
    ] = 0
    schema: Annotated[
        str | None,
        typer.Option("--schema", help="Structured output: a JSON Schema file, or a Pydantic model as module.py:Class."),
    ] = None
    attach: Annotated[
        list[str] | None,
        typer.Option(
            "--attach",
            help="Attach the image or PDF this column names (a path relative to the input, an https:// URL or"
            " a data: URI) after the prompt; repeatable. In the prompt, {{ attach(row.photo) }} places one.",
        ),
    ] = None
    attach_upload: Annotated[
        str,
        typer.Option(
            "--attach-upload",
            help="auto: attachments used by several rows or over 512 KB are uploaded once and referenced;"
            " always: every one the provider can reference; never: all inline.",
        ),
    ] = "auto"
    new_job: Annotated[
        bool,
        typer.Option(
            "--new-job",
            help="Start a separate job even if this input and these options made one already (that is continued).",
        ),
    ] = False

    fresh: Annotated[
        bool,
        typer.Option(
            "--fresh",
            help="Send every row: reuse no answer an earlier job paid for, and send repeated rows each"
            " (by default an identical request is sent once and earlier answers are reused). Use it, or"
            " --sample, for several samples at temperature > 0.",
        ),
    ] = False
    reuse_max_age: Annotated[
        str | None,
        typer.Option("--reuse-max-age", help="Reuse only answers recorded within this long, e.g. 7d, 12h, 30m."),
    ] = None
    sample: Annotated[
        int | None,
        typer.Option(
            "--sample",
            help="Sample number N, part of the request key: --sample 2 gets answers of its own, not --sample 1's.",
        ),
    ] = None

    keep_files: Annotated[
        bool,
        typer.Option(
            "--keep-files",
            help="Leave the job's input and result files at the provider after collect (by default they are"
            " deleted there once collected; the raw results stay in the job's folder until `llmbulk prune`).",
        ),
    ] = False

    def options(self, input: Path, provider: str, model: str) -> api.SubmitOptions:
        """The job to submit; each refused value names its option."""
        from llmbulk import api
        from llmbulk.cli.prompts import job_params, read_prompt
        from llmbulk.reuse import parse_age

        return api.SubmitOptions(
            input=input,
            provider=provider,
            model=model,
            prompt=read_prompt(self.prompt, self.prompt_file),
            system=self.system,
            id_column=self.id_column,
            params=job_params(self.max_tokens, self.temperature, self.top_p, self.seed, self.param, provider),
            endpoint=self.endpoint,
            base_url=self.base_url,
            completion_window=self.completion_window,
            input_format=self.input_format,
            max_items_per_batch=self.max_items_per_batch,
            max_bytes_per_batch=self.max_bytes_per_batch,
            max_attempts=3 if self.max_attempts is None else self.max_attempts,
            emulate=self.emulate,
            max_cost=self.max_cost,
            gemini_inline=self.gemini_inline,
            max_active_batches=self.max_active_batches,
            max_enqueued_tokens=self.max_enqueued_tokens,
            priority=self.priority,
            schema=self.schema,
            prompt_source=None if self.prompt_file is None else str(self.prompt_file),
            new_job=self.new_job,
            fresh=self.fresh,
            reuse_max_age=None if self.reuse_max_age is None else parse_age(self.reuse_max_age, "--reuse-max-age"),
            sample=self.sample,
            attach=list(self.attach or []),
            attach_upload=self.attach_upload,
            keep_files=self.keep_files,
        )


GROUPS: tuple[type, ...] = (State, Output, Listing, SubmitFlags)


def grouped(fn: F) -> F:
    """Spread each option-group parameter of `fn` into its fields, for typer to read."""
    hints = get_type_hints(fn, include_extras=True)
    spread: dict[str, type] = {}
    parameters: list[inspect.Parameter] = []
    for name, parameter in inspect.signature(fn).parameters.items():
        kind = hints.get(name)
        if kind in GROUPS:
            spread[name] = kind
            parameters += _fields(kind)
        else:
            parameters.append(parameter.replace(annotation=kind, kind=inspect.Parameter.KEYWORD_ONLY))

    @functools.wraps(fn)
    def command(**values: Any) -> Any:
        for name, kind in spread.items():
            values[name] = kind(**{f.name: values.pop(f.name) for f in dataclasses.fields(kind)})
        return fn(**values)

    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    del command.__wrapped__  # typer must read this signature, not fn's
    return command  # type: ignore[return-value]


def _fields(kind: type) -> list[inspect.Parameter]:
    hints = get_type_hints(kind, include_extras=True)
    parameters = []
    for f in dataclasses.fields(kind):
        default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        parameters.append(
            inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=hints[f.name])
        )
    return parameters
