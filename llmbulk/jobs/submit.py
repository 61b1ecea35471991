"""`submit`: a new job from an input and options, or the unfinished job the same command made."""

from __future__ import annotations

import secrets
import string
import time
from pathlib import Path
from typing import Any

import orjson

from llmbulk import costs, fingerprint, providers, schemas
from llmbulk.attachments.template import uses_attachments
from llmbulk.attachments.uploads import POLICIES, FileRef, account_of, chosen, upload_all
from llmbulk.config import Settings
from llmbulk.errors import (
    CancelledError,
    UsageError,
)
from llmbulk.jobs.pack import pack_new_job
from llmbulk.jobs.send import send_unsent
from llmbulk.jobs.types import ShardPlan, SubmitOptions, SubmitResult
from llmbulk.models import JobSpec, JobState, Limits
from llmbulk.params import check_params
from llmbulk.progress import NO_PROGRESS, Progress
from llmbulk.providers.base import BatchProvider
from llmbulk.reuse import ReuseCounts
from llmbulk.session import Session, current_job, open_session
from llmbulk.store.schema import Job
from llmbulk.tables import InputTable
from llmbulk.tasks import TaskSpec, iter_tasks


def new_job_id() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "j" + "".join(secrets.choice(alphabet) for _ in range(5))


def submit(
    options: SubmitOptions,
    *,
    dry_run: bool = False,
    settings: Settings | None = None,
    progress: Progress = NO_PROGRESS,
) -> SubmitResult:
    """Pack the input into shards and create a batch per shard; returns the job id at once."""
    with open_session(settings, progress) as session:
        return submit_in(session, options, dry_run)


def submit_in(session: Session, options: SubmitOptions, dry_run: bool) -> SubmitResult:
    table, spec = checked_input(session, options)
    job_print = fingerprint_of(options, spec, table)
    if not dry_run and not options.new_job:
        earlier = same_job(session, job_print, table)
        if earlier is not None:
            return continue_job(session, earlier)
    job = new_job(options, spec, table, job_print)
    adapter = session.make_provider(
        job.provider, job.model, job.endpoint, job.emulated and not dry_run, need_key=not dry_run,
        inline=options.gemini_inline, base_url=options.base_url, completion_window=options.completion_window,
    )  # fmt: skip
    note_unpriced(options, session.progress)
    limits = adapter.limits.narrowed(options.max_items_per_batch, options.max_bytes_per_batch)
    job.max_items, job.max_bytes = limits.max_items, limits.max_bytes
    if not dry_run:
        session.events.log(
            "job.started", job.id, provider=job.provider, model=job.model, input=job.input_path,
            spec=orjson.loads(job.spec_json), max_attempts=job.max_attempts, emulated=job.emulated,
            max_items_per_batch=limits.max_items, max_bytes_per_batch=limits.max_bytes,
        )  # fmt: skip
    refs = {} if dry_run else upload_attachments(session, job, table, spec, adapter, options.attach_upload)
    plans, estimate, reuse = pack_new_job(session, job, table, spec, adapter, limits, dry_run, options.max_cost, refs)
    report_reuse(session, reuse, spec.params)
    if dry_run:
        return SubmitResult(job.id, reuse.rows, plans, [], len(plans), True, estimate, reuse=reuse)
    session.events.emit(
        "job.submitted", job.id, provider=job.provider, model=job.model, input=job.input_path, n_items=reuse.rows,
        shards=len(plans), reuse=reuse.to_json(), emulated=job.emulated, spec=spec.to_json(),
        max_attempts=job.max_attempts,
    )  # fmt: skip
    session.use_provider(job.id, adapter)
    current_job.set(job.id)
    with session.lease(job.id) as lease:
        batch_ids, queued = send_unsent(session, session.store.get_job(job.id), lease)
    return SubmitResult(job.id, reuse.rows, plans, batch_ids, queued, False, estimate, reuse=reuse)


def upload_attachments(
    session: Session, job: Job, table: InputTable, spec: TaskSpec, adapter: BatchProvider, policy: str
) -> dict[str, FileRef]:
    """Files to send by reference, uploaded once per account (before packing: the lines name them)."""
    files = adapter.media_files
    if files is None or policy == "never" or not uses_attachments(spec.prompt, spec.attach):
        return {}
    if policy not in POLICIES:
        raise UsageError(f"--attach-upload {policy!r} is not one of {', '.join(POLICIES)}")
    parts = chosen(iter_tasks(table, spec), files, policy, job.provider)
    if not parts:
        return {}
    account = account_of(job.provider, job.spec.base_url, job.emulated)
    refs, counts = upload_all(session.store, files, account, parts)
    session.events.log(
        "attachments.referenced", job.id, referenced=counts.referenced, uploaded=counts.uploaded, adopted=counts.adopted
    )
    session.progress.note(
        f"attachments: {counts.referenced} file{'s' if counts.referenced != 1 else ''} sent by reference"
        f" ({counts.uploaded} uploaded now, {counts.referenced - counts.uploaded} already at {job.provider})"
    )
    return refs


def checked_input(session: Session, options: SubmitOptions) -> tuple[InputTable, TaskSpec]:
    """The input table and what renders its tasks, every option checked before anything is recorded."""
    limits_of(options)
    check_endpoint(options.provider, options.endpoint)
    providers.check_target(options.provider, options.base_url, options.completion_window)
    if options.max_attempts < 1:
        raise UsageError("--max-attempts must be at least 1")
    table = input_table_of(options)
    params = dict(options.params)
    check_params(params, options.provider)
    check_model(options, session.progress)
    schema = schemas.load_schema(options.schema, options.provider) if options.schema else None
    spec = TaskSpec(
        options.prompt, options.system, options.id_column, params, schema, tuple(options.attach),
        prompt_source=options.prompt_source,
    )  # fmt: skip
    if spec.tasks_mode and table.format != "jsonl":
        raise UsageError("no --prompt given", hint="pass --prompt/--prompt-file, or a tasks JSONL with messages")
    return table, spec


def new_job(options: SubmitOptions, spec: TaskSpec, table: InputTable, job_print: str) -> Job:
    """The job row a submit records (its shard limits are the provider's, narrowed by the options)."""
    limits = limits_of(options)
    stored = spec.job_spec(
        inline=options.gemini_inline, pacing=pacing_of(options), max_cost=options.max_cost,
        keep_files=options.keep_files, **reuse_of(options),
    ).to_stored()  # fmt: skip
    return Job(
        id=new_job_id(),
        created_at=time.time(),
        provider=options.provider,
        model=options.model,
        endpoint=options.endpoint,
        input_path=str(table.path.resolve()),
        input_format="tasks" if spec.tasks_mode else table.format,
        id_column=options.id_column,
        spec_json=with_target(stored, options),
        emulated=options.emulate,
        max_attempts=options.max_attempts,
        max_items=limits.max_items,
        max_bytes=limits.max_bytes,
        fingerprint=job_print,
    )


def fingerprint_of(options: SubmitOptions, spec: TaskSpec, table: InputTable) -> str:
    """The job-defining options (the input's content is compared separately, see fingerprint.py)."""
    return fingerprint.options_fingerprint(
        {
            "provider": options.provider,
            "model": options.model,
            "endpoint": options.endpoint,
            **target_of(options),
            "emulated": options.emulate,
            "input_format": table.format,
            "spec": spec.to_json(),
            "inline": options.gemini_inline,
            "max_items_per_batch": options.max_items_per_batch,
            "max_bytes_per_batch": options.max_bytes_per_batch,
            **({"reuse": reuse_of(options)} if any(reuse_of(options).values()) else {}),
        }
    )


def report_reuse(session: Session, reuse: ReuseCounts, params: dict[str, Any]) -> None:
    summary = reuse.summary()
    if summary is None:
        return
    session.progress.note(summary)
    temperature = params.get("temperature")
    if isinstance(temperature, int | float) and temperature > 0:
        session.progress.note(
            f"at temperature {temperature} rows with the same request share one answer;"
            " --fresh sends every row, --sample N asks for another set of samples"
        )


def reuse_of(options: SubmitOptions) -> dict[str, Any]:
    """The job's reuse settings (JobSpec fields)."""
    if options.reuse_max_age is not None and options.reuse_max_age <= 0:
        raise UsageError("--reuse-max-age must be positive")
    if options.sample is not None and options.sample < 1:
        raise UsageError("--sample must be 1 or more")
    return {"fresh": options.fresh, "reuse_max_age": options.reuse_max_age, "sample": options.sample}


def same_job(session: Session, job_print: str, table: InputTable) -> Job | None:
    """The newest job this command already made from the same input bytes, if any."""
    candidates = session.store.jobs_with_fingerprint(job_print)
    if not candidates:
        return None
    digest = fingerprint.input_sha256(table)
    return next((job for job in candidates if job.input_sha256 == digest), None)


def continue_job(session: Session, job: Job) -> SubmitResult:
    """A rerun of the command that made `job`: continue it instead of paying for its items again."""
    current_job.set(job.id)
    if job.state == JobState.CANCELLED:
        raise CancelledError(
            f"job {job.id} was made from the same input and options, and was cancelled",
            hint=f"`llmbulk resume {job.id}` continues it; add --new-job to start a separate job",
        )
    if job.state == JobState.DONE:
        session.progress.note(
            f"job {job.id} already finished with the same input and options; nothing sent"
            " (--new-job starts a separate job)"
        )
    else:
        session.progress.note(f"continuing job {job.id} (same input and options; --new-job starts a separate job)")
    batch_ids: list[str] = []
    queued = 0
    if job.state == JobState.ACTIVE and session.store.unsent_shards(job.id):
        with session.lease(job.id) as lease:
            batch_ids, queued = send_unsent(session, job, lease)
    plans = [ShardPlan(s.id, s.n_items, s.n_bytes) for s in session.store.shards(job.id)]
    return SubmitResult(job.id, job.n_items, plans, batch_ids, queued, False, None, continued=True, reuse=packed(job))


def packed(job: Job) -> ReuseCounts | None:
    """What packing the job did with its rows (kept with its estimate), for a rerun's report."""
    stored = orjson.loads(job.estimate_json).get("reuse") if job.estimate_json else None
    return ReuseCounts.from_json(stored) if isinstance(stored, dict) else None


def target_of(options: SubmitOptions) -> dict[str, str]:
    """--base-url and --completion-window, when given (a job without them keeps its old fingerprint)."""
    target = {"base_url": options.base_url, "completion_window": options.completion_window}
    return {k: v for k, v in target.items() if v}


def with_target(spec_json: str, options: SubmitOptions) -> str:
    """The stored spec with the job's base URL and window, so later commands reach the same place."""
    target = target_of(options)
    return JobSpec.from_stored(spec_json).model_copy(update=target).to_stored() if target else spec_json


def pacing_of(options: SubmitOptions) -> dict[str, int]:
    pacing = {"max_active_batches": options.max_active_batches, "max_enqueued_tokens": options.max_enqueued_tokens}
    for name, value in pacing.items():
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be positive")
    kept: dict[str, int] = {k: v for k, v in pacing.items() if v}
    if options.priority:
        kept["priority"] = options.priority
    return kept


def limits_of(options: SubmitOptions) -> Limits:
    for name, value in (
        ("--max-items-per-batch", options.max_items_per_batch),
        ("--max-bytes-per-batch", options.max_bytes_per_batch),
    ):
        if value is not None and value < 1:
            raise UsageError(f"{name} must be positive")
    return providers.limits(options.provider).narrowed(options.max_items_per_batch, options.max_bytes_per_batch)


def check_endpoint(provider: str, endpoint: str | None) -> None:
    """Refuse an --endpoint the provider's adapter does not offer, before anything is recorded."""
    offered = providers.limits(provider).endpoints
    if endpoint is not None and endpoint not in offered:
        raise UsageError(
            f"--endpoint {endpoint!r} is not supported by {provider}", hint=f"use one of: {', '.join(offered)}"
        )


def note_unpriced(options: SubmitOptions, progress: Progress) -> None:
    """Say why the job's batch cost will show as unknown (model or vendor not priced, no known discount)."""
    reason = costs.unknown_reason(options.provider, options.model)
    if reason is not None:
        progress.note(f"cost unknown: {reason}")


def input_table_of(options: SubmitOptions) -> InputTable:
    if not options.model:
        raise UsageError("--model is required")
    media = uses_attachments(options.prompt, options.attach)
    return InputTable(Path(options.input), options.input_format, media)


def check_model(options: SubmitOptions, progress: Progress) -> None:
    """Refuse a model the provider's catalogue says cannot serve the endpoint, or a --max-tokens over
    its output limit, before anything is paid for; a model llmbulk does not know is sent as given."""
    from llmbulk import catalog

    endpoint = options.endpoint or catalog.DEFAULT_ENDPOINT.get(options.provider)
    if endpoint is None:
        return
    known = catalog.default_catalog().endpoints(options.provider, options.model)
    if known is None:
        progress.note(
            f"{options.provider} model {options.model!r} is not in llmbulk's model list; sending it as given"
            " (check the name: the provider fails every request of an unknown model)"
        )
    elif endpoint not in known:
        raise UsageError(
            f"{options.provider} model {options.model!r} does not serve {endpoint}",
            hint=f"it serves {', '.join(sorted(known))}; pick another --model or --endpoint",
        )
    limit = catalog.output_limit(options.provider, options.model)
    max_tokens = options.params.get("max_tokens")
    if limit is not None and isinstance(max_tokens, int) and max_tokens > limit:
        raise UsageError(
            f"--max-tokens {max_tokens} is over {options.model}'s output limit of {limit:,} tokens",
            hint=f"use --max-tokens {limit} or less",
        )
