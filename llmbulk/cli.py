"""The `llmbulk` command: parse options → one api call → render. The single error boundary.

Every `LlmbulkError` becomes one line on stderr and its exit code; nothing else is caught, so a
bug still shows its traceback (without locals, so keys never appear).
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from llmbulk.errors import ExitStatus, LlmbulkError, UsageError

try:
    from typer._click import exceptions as click_errors  # newer typer vendors its own click
except ImportError:  # pragma: no cover - older typer runs on click
    from click import exceptions as click_errors  # type: ignore[no-redef]

if TYPE_CHECKING:
    from llmbulk import api
    from llmbulk.config import Settings
    from llmbulk.render import RichProgress


class _OneLineErrors(TyperGroup):
    """Click's own errors (bad option values, missing options) as one `error:` line, not its usage block."""

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
        try:
            # Without standalone mode click raises its errors instead of printing them (and returns
            # the exit code of a typer.Exit); Ctrl-C is already turned into exit 130 by typer.
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except getattr(click_errors, "NoArgsIsHelpError", ()) as exc:  # `llmbulk` alone: the help
            exc.show()
            sys.exit(exc.exit_code)
        except click_errors.ClickException as exc:
            from llmbulk import render

            message = " ".join(exc.format_message().splitlines())
            if isinstance(exc, click_errors.UsageError) and exc.ctx is not None:
                message += f" — see `{exc.ctx.command_path} --help`"
            render.error(message)
            sys.exit(exc.exit_code)
        except typer.Abort:  # click's form of a Ctrl-C outside a command body
            from llmbulk import interrupts, render

            interrupts.report(render.error)
            sys.exit(int(ExitStatus.INTERRUPTED))
        if code == ExitStatus.INTERRUPTED:  # typer's own form of a Ctrl-C outside a command body
            from llmbulk import interrupts, render

            interrupts.report(render.error)
        sys.exit(code if isinstance(code, int) else 0)


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
)
emulator_app = typer.Typer(help="The local emulator of the providers' batch APIs.", no_args_is_help=True)
app.add_typer(emulator_app, name="emulator")

DbOpt = Annotated[str | None, typer.Option("--db", envvar="LLMBULK_DB", help="State database URL or SQLite path.")]
HomeOpt = Annotated[
    Path | None,
    typer.Option("--home", envvar="LLMBULK_HOME", help="State directory (default: nearest .llmbulk/ up from here)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
VerboseOpt = Annotated[int, typer.Option("--verbose", "-v", count=True, help="More detail on stderr.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr.")]
OutOpt = Annotated[
    Path | None, typer.Option("--out", "-o", help="Output table (.csv, .jsonl, .parquet; - for stdout).")
]
ExplodeOpt = Annotated[
    str | None, typer.Option("--explode", help="One output row per element of this list field of --schema.")
]
WaitLockOpt = Annotated[
    float, typer.Option("--wait-lock", help="Wait this many seconds for another process working on the job.")
]
FormatOpt = Annotated[str | None, typer.Option("--format", help="csv, jsonl or parquet (default: from --out).")]


def _settings(home: Path | None, db: str | None) -> Settings:
    from llmbulk.config import load_settings

    return load_settings(home=home, db=db)


def _progress(verbose: int, quiet: bool) -> RichProgress:
    from llmbulk.render import RichProgress

    return RichProgress(-1 if quiet else verbose)


def _exit_for(status: api.JobStatus) -> ExitStatus:
    from llmbulk import exit_status

    return exit_status(status)


def _parse_params(
    max_tokens: int | None,
    temperature: float | None,
    top_p: float | None,
    seed: int | None,
    param: list[str],
    provider: str | None = None,
) -> dict[str, Any]:
    """The job's model parameters from the options; each refused value names its option."""
    from llmbulk import params as rules

    params: dict[str, Any] = {}
    given: dict[str, str] = {}  # parameter name -> the option that set it
    for name, option, value in (
        ("max_tokens", "--max-tokens", max_tokens),
        ("temperature", "--temperature", temperature),
        ("top_p", "--top-p", top_p),
        ("seed", "--seed", seed),
    ):
        if value is not None:
            rules.check_param(name, value, provider, label=f"{option} {value}")
            params[name], given[name] = value, option
    for item in param:
        name, value = rules.parse_param(item)
        if name in given:
            raise UsageError(f"--param {item}: {name} is already set by {given[name]}", hint="give each parameter once")
        rules.check_param(name, value, provider, label=f"--param {item}")
        params[name], given[name] = value, f"--param {name}=…"
    return params


def _submit_options(
    input: Path,
    provider: str,
    model: str,
    prompt: str | None,
    prompt_file: Path | None,
    system: str | None,
    id_column: str | None,
    max_tokens: int | None,
    temperature: float | None,
    top_p: float | None,
    seed: int | None,
    param: list[str],
    endpoint: str | None,
    input_format: str | None,
    max_items_per_batch: int | None,
    max_bytes_per_batch: int | None,
    max_attempts: int | None,
    emulate: bool,
    max_cost: float | None = None,
    gemini_inline: bool = False,
    max_active_batches: int | None = None,
    max_enqueued_tokens: int | None = None,
    schema: str | None = None,
) -> api.SubmitOptions:
    if prompt is not None and prompt_file is not None:
        raise UsageError("pass --prompt or --prompt-file, not both")
    if prompt is not None and not prompt.strip():
        raise UsageError("--prompt is empty", hint="give the prompt template, e.g. --prompt 'Summarise: {{ text }}'")
    if prompt_file is not None:
        from llmbulk import tables

        problem = tables.not_regular_file(prompt_file)
        if problem is not None:  # a FIFO would block the read, /dev/zero never end it
            raise UsageError(f"cannot read --prompt-file {prompt_file}: it {problem}", hint="pass a text file")
        try:
            prompt = prompt_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read --prompt-file {prompt_file}: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise UsageError(
                f"--prompt-file {prompt_file} is not valid UTF-8 (byte {exc.start})", hint="re-save it as UTF-8"
            ) from exc
        if not prompt.strip():
            raise UsageError(f"--prompt-file {prompt_file} is empty", hint="write the prompt template into it")
    from llmbulk import api

    return api.SubmitOptions(
        input=input,
        provider=provider,
        model=model,
        prompt=prompt,
        system=system,
        id_column=id_column,
        params=_parse_params(max_tokens, temperature, top_p, seed, param, provider),
        endpoint=endpoint,
        input_format=input_format,
        max_items_per_batch=max_items_per_batch,
        max_bytes_per_batch=max_bytes_per_batch,
        max_attempts=3 if max_attempts is None else max_attempts,
        emulate=emulate,
        max_cost=max_cost,
        gemini_inline=gemini_inline,
        max_active_batches=max_active_batches,
        max_enqueued_tokens=max_enqueued_tokens,
        schema=schema,
        prompt_source=None if prompt_file is None else str(prompt_file),
    )


InputArg = Annotated[Path, typer.Argument(help="Input table: .csv, .jsonl or .parquet (or a tasks JSONL).")]
ProviderOpt = Annotated[str, typer.Option("--provider", "-p", help="openai, anthropic or gemini.")]
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Model name, e.g. gpt-4o-mini.")]
PromptOpt = Annotated[str | None, typer.Option("--prompt", help="Jinja2 prompt template over the row's columns.")]
PromptFileOpt = Annotated[Path | None, typer.Option("--prompt-file", help="File holding the prompt template.")]
SystemOpt = Annotated[str | None, typer.Option("--system", help="System prompt (a template too).")]
IdColOpt = Annotated[str | None, typer.Option("--id-column", help="Column with unique item ids (default: row number).")]
MaxTokOpt = Annotated[int | None, typer.Option("--max-tokens", help="Most output tokens per item.")]
TempOpt = Annotated[float | None, typer.Option("--temperature", help="Sampling temperature.")]
TopPOpt = Annotated[float | None, typer.Option("--top-p", help="Nucleus sampling.")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Sampling seed, where supported.")]
ParamOpt = Annotated[list[str], typer.Option("--param", help="Extra model parameter NAME=JSON (repeatable).")]
EndpointOpt = Annotated[str | None, typer.Option("--endpoint", help="OpenAI endpoint (default /v1/chat/completions).")]
InFmtOpt = Annotated[str | None, typer.Option("--input-format", help="csv, jsonl or parquet (default: extension).")]
MaxItemsOpt = Annotated[int | None, typer.Option("--max-items-per-batch", help="Lower the per-batch request cap.")]
MaxBytesOpt = Annotated[int | None, typer.Option("--max-bytes-per-batch", help="Lower the per-batch byte cap.")]
AttemptsOpt = Annotated[
    int | None, typer.Option("--max-attempts", help="Attempts per item before it is dead (default 3).")
]
EmulateOpt = Annotated[bool, typer.Option("--emulate", help="Run on the local emulator: no keys, no cost.")]
ActiveOpt = Annotated[
    int | None, typer.Option("--max-active-batches", help="Submit gradually: at most this many batches in flight.")
]
EnqueuedOpt = Annotated[
    int | None,
    typer.Option("--max-enqueued-tokens", help="Submit gradually: at most this many estimated tokens in flight."),
]
SchemaOpt = Annotated[
    str | None,
    typer.Option("--schema", help="Structured output: a JSON Schema file, or a Pydantic model as module.py:Class."),
]
InlineOpt = Annotated[
    bool, typer.Option("--gemini-inline", help="Gemini: send requests inline (under 20 MB) instead of a file.")
]
NewJobOpt = Annotated[
    bool,
    typer.Option(
        "--new-job",
        help="Start a separate job even if this input and these options made one already (that is continued).",
    ),
]
MaxCostOpt = Annotated[
    float | None, typer.Option("--max-cost", help="Refuse to submit when the upper-bound estimate exceeds this (USD).")
]


# Storage trouble (disk full, file-size limit, read-only or forbidden paths) is the machine's,
# not a bug: one line. The state database's transactions roll back, so nothing half-written stays.
_STORAGE_ERRORS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def _kept_job_note(exc: LlmbulkError) -> str:
    """After a provider or setup failure, where the job the command made or continued stands."""
    from llmbulk.errors import ConfigError, ProviderError

    session = sys.modules.get("llmbulk.session")
    job_id = session.current_job.get() if session is not None else None
    if job_id is None or not isinstance(exc, ProviderError | ConfigError):
        return ""
    return (
        f" (job {job_id} is kept: once fixed, `llmbulk run {job_id}` continues it; `llmbulk cancel {job_id}` drops it)"
    )


def _guard(fn: Any) -> Any:
    """Run a command body; turn llmbulk errors into one line and an exit code."""
    from llmbulk import render

    session = sys.modules.get("llmbulk.session")
    if session is not None:  # a job named by an earlier command of this process is not this one's
        session.current_job.set(None)
    try:
        return fn()
    except LlmbulkError as exc:
        render.error(str(exc) + _kept_job_note(exc))
        raise typer.Exit(int(exc.exit_status)) from None
    except KeyboardInterrupt:
        from llmbulk import interrupts

        interrupts.report(render.error)
        raise typer.Exit(int(ExitStatus.INTERRUPTED)) from None
    except OSError as exc:
        if exc.errno not in _STORAGE_ERRORS:
            raise
        where = f" {exc.filename}" if exc.filename else ""
        render.error(f"cannot write{where}: {exc.strerror}; nothing recorded was lost")
        raise typer.Exit(int(ExitStatus.ERROR)) from None


@app.command()
def submit(
    input: InputArg,
    provider: ProviderOpt,
    model: ModelOpt,
    prompt: PromptOpt = None,
    prompt_file: PromptFileOpt = None,
    system: SystemOpt = None,
    id_column: IdColOpt = None,
    max_tokens: MaxTokOpt = None,
    temperature: TempOpt = None,
    top_p: TopPOpt = None,
    seed: SeedOpt = None,
    param: ParamOpt = [],  # noqa: B006 - typer needs a literal default
    endpoint: EndpointOpt = None,
    input_format: InFmtOpt = None,
    max_items_per_batch: MaxItemsOpt = None,
    max_bytes_per_batch: MaxBytesOpt = None,
    max_attempts: AttemptsOpt = None,
    emulate: EmulateOpt = False,
    max_cost: MaxCostOpt = None,
    gemini_inline: InlineOpt = False,
    max_active_batches: ActiveOpt = None,
    max_enqueued_tokens: EnqueuedOpt = None,
    schema: SchemaOpt = None,
    new_job: NewJobOpt = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Pack and show the shard plan; send nothing.")] = False,
    json: JsonOpt = False,
    db: DbOpt = None,
    home: HomeOpt = None,
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """Pack INPUT into batch shards and submit them; prints the job id and returns at once.

    Example: llmbulk submit reviews.csv -p openai -m gpt-4o-mini --prompt 'Sentiment: {{ text }}' --emulate
    """

    def body() -> None:
        from llmbulk import api, render

        options = _submit_options(
            input, provider, model, prompt, prompt_file, system, id_column, max_tokens, temperature, top_p,
            seed, param, endpoint, input_format, max_items_per_batch, max_bytes_per_batch, max_attempts, emulate,
            max_cost, gemini_inline, max_active_batches, max_enqueued_tokens, schema,
        )  # fmt: skip
        options.new_job = new_job
        result = api.submit(options, dry_run=dry_run, settings=_settings(home, db), progress=_progress(verbose, quiet))
        if json:
            render.print_json(
                {
                    "job_id": result.job_id,
                    "n_items": result.n_items,
                    "batch_ids": result.batch_ids,
                    "queued_shards": result.queued_shards,
                    "dry_run": result.dry_run,
                    "continued": result.continued,
                    "estimate": render.estimate_json(result.estimate),
                    "shards": [vars_(s) for s in result.shards],
                }
            )
        else:
            render.submit_result(result)

    _guard(body)


def vars_(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


@app.command()
def status(
    job: Annotated[str, typer.Argument(help="Job id (see `llmbulk jobs`).")],
    refresh: Annotated[bool, typer.Option("--refresh", "-r", help="Poll the provider before showing.")] = False,
    json: JsonOpt = False,
    db: DbOpt = None,
    home: HomeOpt = None,
) -> None:
    """Show a job's batches, item counts by state, errors and dead items.

    Reads the state database only (fast, no network) unless --refresh is given.
    Exit code: 0 done, 3 still running, 4 done with failed or dead items.

    Example: llmbulk status j7f3k2 --refresh
    """

    def body() -> ExitStatus:
        from llmbulk import read_status, render

        settings = _settings(home, db)
        result = None if refresh else read_status(settings.db_url, job)
        if result is None:  # polling, or anything the quick reader leaves to the full path
            from llmbulk import api

            result = api.status(job, refresh=refresh, settings=settings)
        render.print_json(render.status_json(result)) if json else render.job_status(result)
        return _exit_for(result)

    raise typer.Exit(int(_guard(body)))


@app.command()
def collect(
    job: Annotated[str, typer.Argument(help="Job id.")],
    out: OutOpt = None,
    format: FormatOpt = None,
    explode: ExplodeOpt = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep polling and merging as batches end, until the job ends.")
    ] = False,
    timeout: Annotated[float | None, typer.Option("--timeout", help="With --follow: stop after this long.")] = None,
    wait_lock: WaitLockOpt = 0.0,
    json: JsonOpt = False,
    db: DbOpt = None,
    home: HomeOpt = None,
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """Download finished batches' results and write the output table (input rows + outputs, in order).

    Rows whose items are not finished yet appear with their current status.
    Exit code: 0 done, 3 still running, 4 done with failed or dead items.

    Example: llmbulk collect j7f3k2 --out results.parquet
    """

    def body() -> ExitStatus:
        from llmbulk import api, render

        if follow:
            followed = api.run(
                job, None, out, format, timeout=timeout, retry_failed=False, wait_lock=wait_lock, explode=explode,
                settings=_settings(home, db), progress=_progress(verbose, quiet),
            )  # fmt: skip
            if json:
                render.print_json(render.status_json(followed.status))
            elif followed.output is None or followed.output.path is not None:
                render.run_result(followed)
            return _exit_for(followed.status)
        result = api.collect(
            job, out, format, wait_lock=wait_lock, explode=explode, settings=_settings(home, db),
            progress=_progress(verbose, quiet),
        )  # fmt: skip
        if json:
            payload = render.status_json(result.status)
            payload["collected_batches"] = result.collected_batches
            payload["output_path"] = str(result.output.path) if result.output and result.output.path else None
            render.print_json(payload)
        elif result.output is None or result.output.path is not None:
            render.collect_result(result)
        return _exit_for(result.status)

    raise typer.Exit(int(_guard(body)))


@app.command()
def retry(
    job: Annotated[str, typer.Argument(help="Job id.")],
    resume: Annotated[
        bool, typer.Option("--resume", help="Also continue a cancelled job (otherwise it stays cancelled).")
    ] = False,
    wait_lock: WaitLockOpt = 0.0,
    json: JsonOpt = False,
    db: DbOpt = None,
    home: HomeOpt = None,
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """Resubmit only the failed-retryable items (expired, rate-limited, server errors) in new batches.

    Items out of attempts become dead; permanent failures are never resubmitted.

    Example: llmbulk retry j7f3k2
    """

    def body() -> None:
        from llmbulk import api, render

        result = api.retry(
            job, resume=resume, wait_lock=wait_lock, settings=_settings(home, db), progress=_progress(verbose, quiet)
        )
        if json:
            render.print_json(
                {
                    "job_id": result.job_id,
                    "n_items": result.n_items,
                    "batch_ids": result.batch_ids,
                    "dead": result.dead,
                }
            )
        else:
            render.retry_result(result)

    _guard(body)


@app.command()
def run(
    input: Annotated[str, typer.Argument(help="Input table to submit, or the id of an existing job to continue.")],
    provider: Annotated[str | None, typer.Option("--provider", "-p", help="openai, anthropic or gemini.")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model name.")] = None,
    prompt: PromptOpt = None,
    prompt_file: PromptFileOpt = None,
    system: SystemOpt = None,
    id_column: IdColOpt = None,
    max_tokens: MaxTokOpt = None,
    temperature: TempOpt = None,
    top_p: TopPOpt = None,
    seed: SeedOpt = None,
    param: ParamOpt = [],  # noqa: B006
    endpoint: EndpointOpt = None,
    input_format: InFmtOpt = None,
    max_items_per_batch: MaxItemsOpt = None,
    max_bytes_per_batch: MaxBytesOpt = None,
    max_attempts: AttemptsOpt = None,
    emulate: EmulateOpt = False,
    max_cost: MaxCostOpt = None,
    gemini_inline: InlineOpt = False,
    max_active_batches: ActiveOpt = None,
    max_enqueued_tokens: EnqueuedOpt = None,
    schema: SchemaOpt = None,
    new_job: NewJobOpt = False,
    out: OutOpt = None,
    format: FormatOpt = None,
    explode: ExplodeOpt = None,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Stop waiting after this many seconds.")] = None,
    no_retry: Annotated[bool, typer.Option("--no-retry", help="Do not resubmit failed items.")] = False,
    wait_lock: WaitLockOpt = 0.0,
    on_event: Annotated[
        str | None, typer.Option("--on-event", help="Shell command run per event, with the event JSON on stdin.")
    ] = None,
    webhook: Annotated[str | None, typer.Option("--webhook", help="URL that each event is POSTed to.")] = None,
    notify_on: Annotated[
        str | None, typer.Option("--notify-on", help="Which events reach the hooks: done,failed,batch,timeout,all.")
    ] = None,
    json: JsonOpt = False,
    db: DbOpt = None,
    home: HomeOpt = None,
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """Submit, then poll, collect and retry until the job is done (or --timeout passes).

    Running the same command again continues the same job (nothing is paid twice); --new-job
    starts a separate one.

    Exit code: 0 done, 3 still running at timeout, 4 done with failed or dead items, 7 cancelled, 1 error.

    Example: llmbulk run reviews.csv -p openai -m gpt-4o-mini --prompt 'Sentiment: {{ text }}' --out out.csv --emulate
    """

    def body() -> ExitStatus:
        from llmbulk import api, render
        from llmbulk.events import EventHooks, parse_notify

        settings = _settings(home, db)
        options = None
        job_id: str | None = None
        if Path(input).exists() or provider or model:
            if not provider or not model:
                raise UsageError("run INPUT needs --provider and --model", hint="or pass a job id to continue a job")
            options = _submit_options(
                Path(input), provider, model, prompt, prompt_file, system, id_column, max_tokens, temperature,
                top_p, seed, param, endpoint, input_format, max_items_per_batch, max_bytes_per_batch,
                max_attempts, emulate, max_cost, gemini_inline, max_active_batches, max_enqueued_tokens, schema,
            )  # fmt: skip
            options.new_job = new_job
        else:
            job_id = input
        result = api.run(
            job_id,
            options,
            out,
            format,
            timeout=timeout,
            retry_failed=not no_retry,
            max_attempts=max_attempts if job_id is not None else None,
            max_cost=max_cost if job_id is not None else None,
            wait_lock=wait_lock,
            explode=explode,
            hooks=EventHooks(on_event=on_event, webhook=webhook, notify_on=parse_notify(notify_on)),
            settings=settings,
            progress=_progress(verbose, quiet),
        )
        if json:
            payload = render.status_json(result.status)
            payload["timed_out"] = result.timed_out
            payload["output_path"] = str(result.output.path) if result.output and result.output.path else None
            render.print_json(payload)
        else:
            render.run_result(result)
        return ExitStatus.BUDGET if result.budget_stopped else _exit_for(result.status)

    raise typer.Exit(int(_guard(body)))


@app.command()
def worker(
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to spend on each job per pass.")] = 60.0,
    loop: Annotated[bool, typer.Option("--loop", help="Keep making passes until interrupted.")] = False,
    json: JsonOpt = False,
    db: DbOpt = None,
    home: HomeOpt = None,
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """Continue every job that needs attention (for a shared PostgreSQL state on many runners).

    Jobs another runner is working on are skipped; each job gets up to --timeout seconds per pass.
    A job that cannot advance (missing key, changed input) is reported and the others go on;
    exit 1 when any could not advance, 3 when some are still running, 0 when all are done.
    Output tables go where each job last wrote them (or llmbulk-JOB.csv).

    Example: LLMBULK_DB=postgresql+psycopg://… llmbulk worker --timeout 300
    """

    def body() -> ExitStatus:
        import time as _time

        from llmbulk import api, render

        while True:
            result = api.worker(
                timeout_per_job=timeout, settings=_settings(home, db), progress=_progress(verbose, quiet)
            )
            if json:
                render.print_json({"finished": result.finished, "still_running": result.still_running,
                                   "skipped": result.skipped,
                                   "failed": [{"job_id": j, "error": e} for j, e in result.failed]})  # fmt: skip
            else:
                render.err.print(
                    f"finished {len(result.finished)}, still running {len(result.still_running)}, "
                    f"skipped (held by another runner) {len(result.skipped)}, could not advance {len(result.failed)}"
                )
            if not loop:
                if result.failed:
                    return ExitStatus.ERROR
                return ExitStatus.RUNNING if result.still_running else ExitStatus.DONE
            _time.sleep(min(timeout, 30))

    raise typer.Exit(int(_guard(body)))


@app.command()
def cancel(
    job: Annotated[str, typer.Argument(help="Job id.")],
    wait_lock: WaitLockOpt = 0.0,
    json: JsonOpt = False,
    db: DbOpt = None,
    home: HomeOpt = None,
) -> None:
    """Cancel a job's running batches; finished items keep their results (collect them afterwards).

    A cancelled job stays cancelled (retry, run and worker leave it) until `llmbulk resume JOB`.
    While another process works on the job, that process is asked to cancel it at its next step.

    Example: llmbulk cancel j7f3k2 && llmbulk collect j7f3k2
    """

    def body() -> None:
        from llmbulk import api, render

        result = api.cancel(job, wait_lock=wait_lock, settings=_settings(home, db), progress=_progress(0, False))
        render.print_json(render.status_json(result)) if json else render.job_status(result)

    _guard(body)


@app.command()
def resume(
    job: Annotated[str, typer.Argument(help="Job id of a cancelled job.")],
    wait_lock: WaitLockOpt = 0.0,
    json: JsonOpt = False,
    db: DbOpt = None,
    home: HomeOpt = None,
) -> None:
    """Make a cancelled job active again; `llmbulk run JOB` then sends what it has left.

    Example: llmbulk resume j7f3k2 && llmbulk run j7f3k2 --out results.csv
    """

    def body() -> None:
        from llmbulk import api, render

        result = api.resume(job, wait_lock=wait_lock, settings=_settings(home, db))
        render.print_json(render.status_json(result)) if json else render.job_status(result)

    _guard(body)


@app.command()
def cost(
    job: Annotated[str, typer.Argument(help="Job id.")],
    json: JsonOpt = False,
    db: DbOpt = None,
    home: HomeOpt = None,
) -> None:
    """Show a job's cost: estimate at submit vs actual so far, and the saving against synchronous calls.

    Prices come from the genai-prices library (batch rates); unknown models show as unknown, never $0.

    Example: llmbulk cost j7f3k2
    """

    def body() -> None:
        from llmbulk import api, render

        result = api.cost(job, settings=_settings(home, db))
        render.print_json(render.cost_json(result)) if json else render.cost_report(result)

    _guard(body)


@app.command()
def stats(
    job: Annotated[str | None, typer.Argument(help="Job id (default: recent jobs).")] = None,
    recent: Annotated[int, typer.Option("--recent", help="How many recent jobs when no job is given.")] = 20,
    json: JsonOpt = False,
    db: DbOpt = None,
    home: HomeOpt = None,
) -> None:
    """Batch latency, throughput, failure rate by error code, retries, dead items and cost.

    Example: llmbulk stats j7f3k2
    """

    def body() -> None:
        from llmbulk import api, render

        result = api.stats(job, recent=recent, settings=_settings(home, db))
        render.print_json(render.stats_json(result)) if json else render.stats_report(result)

    _guard(body)


@app.command()
def doctor(
    model: Annotated[
        list[str], typer.Option("--model", "-m", help="Check a model name too, as provider:model (repeatable).")
    ] = [],  # noqa: B006 - typer needs a literal default
    json: JsonOpt = False,
    db: DbOpt = None,
    home: HomeOpt = None,
) -> None:
    """Check provider keys, the state database (reachable and migrated) and the local emulator.

    Example: llmbulk doctor --model openai:gpt-4o-mini
    """

    def body() -> ExitStatus:
        from rich.markup import escape

        from llmbulk import api, render

        checks = api.doctor(settings=_settings(home, db), models=model)
        if json:
            render.print_json([{"check": c.name, "ok": c.ok, "detail": c.detail} for c in checks])
        else:
            for check in checks:
                mark = "[green]ok[/]  " if check.ok else "[yellow]--[/]  "
                render.out.print(f"{mark}{check.name}: {escape(check.detail)}")
        essential = [c for c in checks if not c.name.endswith(" key")]
        return ExitStatus.DONE if all(c.ok for c in essential) else ExitStatus.ERROR

    raise typer.Exit(int(_guard(body)))


@app.command()
def jobs(
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many jobs to list.")] = 50,
    json: JsonOpt = False,
    db: DbOpt = None,
    home: HomeOpt = None,
    verbose: VerboseOpt = 0,
) -> None:
    """List jobs, newest first (-v also says which state database is in use).

    Example: llmbulk jobs --json
    """

    def body() -> None:
        from llmbulk import api, render
        from llmbulk.events import redact_url

        settings = _settings(home, db)
        if verbose:
            render.err.print(f"state: {redact_url(settings.db_url)} (home {settings.home.resolve()})", markup=False)
        result = api.jobs(limit, settings=settings)
        render.print_json([render.job_json(j) for j in result]) if json else render.jobs_table(result)

    _guard(body)


@app.command()
def items(
    job: Annotated[str, typer.Argument(help="Job id.")],
    state: Annotated[str, typer.Option("--state", help="Item state, e.g. dead, failed_permanent.")] = "dead",
    out: OutOpt = None,
    limit: Annotated[int | None, typer.Option("--limit", "-n", help="At most this many.")] = None,
    json: JsonOpt = False,
    db: DbOpt = None,
    home: HomeOpt = None,
) -> None:
    """List or export a job's items in one state, with the error of their last attempt (the dead-letter list).

    Example: llmbulk items j7f3k2 --state dead --out dead.csv
    """

    def body() -> None:
        from llmbulk import api, render

        result = api.items(job, state, out, limit=limit, settings=_settings(home, db))
        if json:
            render.print_json(result)
        elif out is None:
            render.items_table(result)
        elif str(out) != "-":
            render.err.print(f"wrote {len(result):,} item(s) to {out}", markup=False)

    _guard(body)


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

    def body() -> None:
        from llmbulk import render
        from llmbulk.emulator.cli import serve

        serve(
            host,
            port,
            state_dir or _settings(home, None).emulator_dir,
            batch_seconds,
            faults,
            seed,
            render.out,
            api_key=api_key,
            models=models,
        )

    _guard(body)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except UsageError as exc:  # pragma: no cover - raised outside a command body
        from llmbulk import render

        render.error(str(exc))
        sys.exit(int(ExitStatus.USAGE))
