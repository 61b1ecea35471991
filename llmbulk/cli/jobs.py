"""Commands that make and advance jobs: submit, run, collect, retry, cancel, resume, worker."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmbulk.cli import complete
from llmbulk.cli.options import (
    ExplodeOpt,
    JobArg,
    JsonOpt,
    ModelOpt,
    OutOpt,
    Output,
    ProviderOpt,
    State,
    SubmitFlags,
    TableFormatOpt,
    WaitLockOpt,
    grouped,
)
from llmbulk.cli.root import app
from llmbulk.errors import ExitStatus, UsageError

InputArg = Annotated[Path, typer.Argument(help="Input table: .csv, .jsonl or .parquet (or a tasks JSONL).")]


@app.command()
@grouped
def submit(
    input: InputArg,
    provider: ProviderOpt,
    model: ModelOpt,
    flags: SubmitFlags,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Pack and show the shard plan; send nothing.")] = False,
    json: JsonOpt = False,
    *,
    state: State,
    output: Output,
) -> None:
    """Pack INPUT into batch shards and submit them; prints the job id and returns at once.

    Example: llmbulk submit reviews.csv -p openai -m gpt-4o-mini --prompt 'Sentiment: {{ text }}' --emulate
    """
    from llmbulk import api, render

    options = flags.options(input, provider, model)
    result = api.submit(options, dry_run=dry_run, settings=state.settings(), progress=output.progress())
    render.print_json(render.submit_json(result)) if json else render.submit_result(result)


@app.command()
@grouped
def run(
    input: Annotated[str, typer.Argument(help="Input table to submit, or the id of an existing job to continue.")],
    flags: SubmitFlags,
    provider: Annotated[
        str | None,
        typer.Option(
            "--provider",
            "-p",
            help="openai, anthropic, gemini or an OpenAI-compatible vendor (see README).",
            autocompletion=complete.providers,
        ),
    ] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model name.")] = None,
    out: OutOpt = None,
    format: TableFormatOpt = None,
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
    *,
    state: State,
    output: Output,
) -> None:
    """Submit, then poll, collect and retry until the job is done (or --timeout passes).

    Running the same command again continues the same job (nothing is paid twice); --new-job
    starts a separate one.

    Exit code: 0 done, 3 still running at timeout, 4 done with failed or dead items, 7 cancelled, 1 error.

    Example: llmbulk run reviews.csv -p openai -m gpt-4o-mini --prompt 'Sentiment: {{ text }}' --out out.csv --emulate
    """
    from llmbulk import api, exit_status, render
    from llmbulk.events import EventHooks, parse_notify

    settings = state.settings()
    options, job_id = None, None
    if Path(input).exists() or provider or model:
        if not provider or not model:
            raise UsageError("run INPUT needs --provider and --model", hint="or pass a job id to continue a job")
        options = flags.options(Path(input), provider, model)
    else:
        job_id = input
    hooks = EventHooks(on_event=on_event, webhook=webhook, notify_on=parse_notify(notify_on), warn=render.warning)
    result = api.run(
        job_id, options, out, format, timeout=timeout, retry_failed=not no_retry,
        max_attempts=flags.max_attempts if job_id is not None else None,
        max_cost=flags.max_cost if job_id is not None else None, keep_files=flags.keep_files,
        wait_lock=wait_lock, explode=explode, hooks=hooks, settings=settings, progress=output.progress(),
    )  # fmt: skip
    render.print_json(render.run_json(result)) if json else render.run_result(result)
    raise typer.Exit(int(ExitStatus.BUDGET if result.budget_stopped else exit_status(result.status)))


@app.command()
@grouped
def collect(
    job: JobArg,
    out: OutOpt = None,
    format: TableFormatOpt = None,
    explode: ExplodeOpt = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep polling and merging as batches end, until the job ends.")
    ] = False,
    timeout: Annotated[float | None, typer.Option("--timeout", help="With --follow: stop after this long.")] = None,
    wait_lock: WaitLockOpt = 0.0,
    keep_files: Annotated[
        bool,
        typer.Option(
            "--keep-files",
            help="Leave input and result files at the provider (kept with the job; by default they are deleted"
            " there once collected, and the raw results stay in the job's folder until `llmbulk prune`).",
        ),
    ] = False,
    json: JsonOpt = False,
    *,
    state: State,
    output: Output,
) -> None:
    """Download finished batches' results and write the output table (input rows + outputs, in order).

    Rows whose items are not finished yet appear with their current status. Once collected, a batch's
    input and result files are deleted at the provider (not with --keep-files).
    Exit code: 0 done, 3 still running, 4 done with failed or dead items.

    Example: llmbulk collect j7f3k2 --out results.parquet
    """
    from llmbulk import api, exit_status, render

    if follow:
        followed = api.run(
            job, None, out, format, timeout=timeout, retry_failed=False, wait_lock=wait_lock, explode=explode,
            keep_files=keep_files, settings=state.settings(), progress=output.progress(),
        )  # fmt: skip
        if json:
            render.print_json(render.status_json(followed.status))
        elif followed.output is None or followed.output.path is not None:
            render.run_result(followed)
        raise typer.Exit(int(exit_status(followed.status)))
    result = api.collect(
        job, out, format, wait_lock=wait_lock, explode=explode, keep_files=keep_files, settings=state.settings(),
        progress=output.progress(),
    )  # fmt: skip
    if json:
        render.print_json(render.collect_json(result))
    elif result.output is None or result.output.path is not None:
        render.collect_result(result)
    render.expiry_notice(result.status)
    raise typer.Exit(int(exit_status(result.status)))


@app.command()
@grouped
def retry(
    job: JobArg,
    resume: Annotated[
        bool, typer.Option("--resume", help="Also continue a cancelled job (otherwise it stays cancelled).")
    ] = False,
    wait_lock: WaitLockOpt = 0.0,
    json: JsonOpt = False,
    *,
    state: State,
    output: Output,
) -> None:
    """Resubmit only the failed-retryable items (expired, rate-limited, server errors) in new batches.

    Items out of attempts become dead; permanent failures are never resubmitted.

    Example: llmbulk retry j7f3k2
    """
    from llmbulk import api, render

    result = api.retry(job, resume=resume, wait_lock=wait_lock, settings=state.settings(), progress=output.progress())
    render.print_json(render.retry_json(result)) if json else render.retry_result(result)


@app.command()
@grouped
def worker(
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to spend on each job per pass.")] = 60.0,
    loop: Annotated[bool, typer.Option("--loop", help="Keep making passes until interrupted.")] = False,
    json: JsonOpt = False,
    *,
    state: State,
    output: Output,
) -> None:
    """Continue every job that needs attention (for a shared PostgreSQL state on many runners).

    Jobs another runner is working on are skipped; each job gets up to --timeout seconds per pass.
    A job that cannot advance (missing key, changed input) is reported and the others go on;
    exit 1 when any could not advance, 3 when some are still running, 0 when all are done.
    Output tables go where each job last wrote them (or llmbulk-JOB.csv).

    Example: LLMBULK_DB=postgresql+psycopg://… llmbulk worker --timeout 300
    """
    import time

    from llmbulk import api, render

    while True:
        result = api.worker(timeout_per_job=timeout, settings=state.settings(), progress=output.progress())
        render.print_json(render.worker_json(result)) if json else render.worker_summary(result)
        if not loop:
            if result.failed:
                raise typer.Exit(int(ExitStatus.ERROR))
            raise typer.Exit(int(ExitStatus.RUNNING if result.still_running else ExitStatus.DONE))
        time.sleep(min(timeout, 30))


@app.command()
@grouped
def cancel(job: JobArg, wait_lock: WaitLockOpt = 0.0, json: JsonOpt = False, *, state: State) -> None:
    """Cancel a job's running batches; finished items keep their results (collect them afterwards).

    A cancelled job stays cancelled (retry, run and worker leave it) until `llmbulk resume JOB`.
    While another process works on the job, that process is asked to cancel it at its next step.

    Example: llmbulk cancel j7f3k2 && llmbulk collect j7f3k2
    """
    from llmbulk import api, render

    result = api.cancel(job, wait_lock=wait_lock, settings=state.settings(), progress=Output().progress())
    render.print_json(render.status_json(result)) if json else render.job_status(result)


@app.command()
@grouped
def resume(
    job: Annotated[str, typer.Argument(help="Job id of a cancelled job.", autocompletion=complete.job_ids)],
    wait_lock: WaitLockOpt = 0.0,
    json: JsonOpt = False,
    *,
    state: State,
) -> None:
    """Make a cancelled job active again; `llmbulk run JOB` then sends what it has left.

    Example: llmbulk resume j7f3k2 && llmbulk run j7f3k2 --out results.csv
    """
    from llmbulk import api, render

    result = api.resume(job, wait_lock=wait_lock, settings=state.settings())
    render.print_json(render.status_json(result)) if json else render.job_status(result)
