"""The verbs: submit, status, collect, retry, run, cancel, jobs.

The only module that wires several stages together: tables → tasks → shards → batches →
results → merge, with the state store recording each step. The CLI is a thin layer over this.
"""

from __future__ import annotations

import contextvars
import importlib
import os
import secrets
import shutil
import string
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from llmbulk import costs, fingerprint, providers, restore, schemas
from llmbulk.batches import (
    LIVE_STATES,
    Sending,
    cancel_batches,
    cancel_duplicates,
    next_poll_delay,
    poll_batches,
    submit_shard,
)
from llmbulk.config import Settings, ensure_private_dir, load_settings
from llmbulk.crashpoints import crashpoint
from llmbulk.errors import (
    BudgetError,
    CancelledError,
    ConfigError,
    InputError,
    LeaseError,
    LlmbulkError,
    ProviderError,
    QuotaError,
    UsageError,
)
from llmbulk.events import PROGRESS_EVERY, EventHooks, Events, every
from llmbulk.leases import JobLease
from llmbulk.merge import MergeSummary, SettledRowStream, write_output
from llmbulk.models import BatchState, ItemState, Limits
from llmbulk.params import check_params
from llmbulk.progress import NO_PROGRESS, Progress
from llmbulk.providers.base import BatchProvider, ProviderSettings
from llmbulk.results import REQUEUE_CODES, collect_batch
from llmbulk.shards import PackedShard, write_shards
from llmbulk.store import Store
from llmbulk.store.schema import Job, Shard
from llmbulk.tables import FORMATS, InputTable, check_format_matches, detect_format
from llmbulk.tasks import TaskSpec, iter_tasks
from llmbulk.views import BatchView, JobStatus, batch_view  # noqa: F401 - BatchView re-exported

EMULATOR_KEY = "llmbulk-emulator-key"
DOCTOR_TIMEOUT = 10.0  # seconds a doctor check waits for a provider
TROUBLED_ROUNDS_MAX = 10  # rounds in a row whose provider calls failed after the SDK's retries

# The job the current command works on, once known: an interrupt names it and how to continue.
current_job: contextvars.ContextVar[str | None] = contextvars.ContextVar("llmbulk_current_job", default=None)


# ---- options and results ---------------------------------------------------------------------


@dataclass(slots=True)
class SubmitOptions:
    """Everything that defines a job."""

    input: Path
    provider: str
    model: str
    prompt: str | None = None
    system: str | None = None
    id_column: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    endpoint: str | None = None
    input_format: str | None = None
    max_items_per_batch: int | None = None
    max_bytes_per_batch: int | None = None
    max_attempts: int = 3
    emulate: bool = False
    max_cost: float | None = None
    gemini_inline: bool = False
    max_active_batches: int | None = None
    max_enqueued_tokens: int | None = None
    schema: str | None = None
    prompt_source: str | None = None  # where `prompt` was read from (e.g. a file), named in template errors
    new_job: bool = False  # start a separate job even if the same command made one already


@dataclass(frozen=True, slots=True)
class ShardPlan:
    """One shard as packed."""

    shard_id: str
    n_items: int
    n_bytes: int


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """What `submit` did."""

    job_id: str
    n_items: int
    shards: list[ShardPlan]
    batch_ids: list[str]
    queued_shards: int
    dry_run: bool
    estimate: costs.Estimate | None = None
    continued: bool = False  # an earlier job with the same input and options was continued


@dataclass(frozen=True, slots=True)
class CollectResult:
    """What `collect` did."""

    job_id: str
    collected_batches: list[str]
    output: MergeSummary | None
    status: JobStatus


@dataclass(frozen=True, slots=True)
class RetryResult:
    """What `retry` did."""

    job_id: str
    n_items: int
    shards: list[ShardPlan]
    batch_ids: list[str]
    dead: int


@dataclass(frozen=True, slots=True)
class RunResult:
    """How `run` ended."""

    job_id: str
    finished: bool
    timed_out: bool
    output: MergeSummary | None
    status: JobStatus
    budget_stopped: bool = False  # retryable items left because resending them would pass --max-cost


# ---- session: settings, store, providers, emulator -------------------------------------------


class Session:
    """Open state and provider clients for one command; close it when done."""

    def __init__(
        self, settings: Settings | None = None, progress: Progress = NO_PROGRESS, hooks: EventHooks | None = None
    ) -> None:
        self.settings = settings or load_settings()
        ensure_private_dir(self.settings.home)
        self.store = Store.open(self.settings.db_url)
        self.progress = progress
        self.events = Events(hooks, self.settings.job_dir)
        self.explode: str | None = None
        self._providers: dict[str, BatchProvider] = {}
        self._emulator: Any = None

    def close(self) -> None:
        for provider in self._providers.values():
            provider.close()
        if self._emulator is not None:
            self._emulator.stop()
        self.store.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def provider(self, job: Job) -> BatchProvider:
        """The adapter for a job, pointed at the emulator if the job is emulated."""
        if job.id not in self._providers:
            inline = bool(orjson.loads(job.spec_json).get("inline"))
            self._providers[job.id] = self._make_provider(
                job.provider, job.model, job.endpoint, job.emulated, need_key=True, inline=inline
            )
        return self._providers[job.id]

    def _make_provider(
        self, name: str, model: str, endpoint: str | None, emulated: bool, need_key: bool, inline: bool = False
    ) -> BatchProvider:
        info = providers.info(name)
        base_url, api_key = None, None
        if emulated:
            base_url, api_key = getattr(self._emulator_server(), info.emulator_attr), EMULATOR_KEY
        elif need_key and not any(self.settings.env.get(var) for var in info.key_env):
            raise ConfigError(
                f"{info.key_env[0]} is not set",
                hint=f"export {info.key_env[0]}=… for the real {name} API, or add --emulate to use the local emulator",
            )
        else:
            # Keys and base URLs come from the settings' environment (a library caller's own mapping),
            # not whatever the process environment holds; bearer tokens are left to the SDK.
            env = self.settings.env
            api_key = next((env[v] for v in info.key_env if env.get(v) and not v.endswith("_TOKEN")), None)
            base_url = env.get(info.base_url_env) or None
        if inline and name != "gemini":
            raise UsageError("--gemini-inline applies to --provider gemini only")
        settings = ProviderSettings(
            model=model, endpoint=endpoint, base_url=base_url, api_key=api_key, inline=inline,
            timeout=self.settings.http_timeout,
        )  # fmt: skip
        return providers.create(name, settings)

    def _emulator_server(self) -> Any:
        if self._emulator is None:
            from llmbulk.emulator import EmulatorServer
            from llmbulk.emulator.settings import config_from_env

            self._emulator = EmulatorServer(self.settings.emulator_dir, config_from_env(self.settings.env))
            self._emulator.start()
        return self._emulator

    def job_dir(self, job_id: str) -> Path:
        return self.settings.job_dir(job_id)

    def lease(self, job_id: str, wait: float = 0.0) -> JobLease:
        """Hold the job (fenced) for this command."""
        return JobLease(self.store, job_id, ttl=self.settings.lease_ttl, wait=wait)

    def sending(self, job: Job, lease: JobLease) -> Sending:
        """What sending this job's shards needs, every provider call fenced by `lease`."""

        def emit(name: str, fields: dict[str, Any]) -> None:
            self.events.emit(name, job.id, **fields)

        return Sending(
            self.store, self.provider(job), job, self.settings.home, lease, self.settings.create_window, emit
        )


@contextmanager
def _logged(session: Session, job_id: str) -> Iterator[None]:
    """Errors of a command on a job go to its log with their stack trace; Ctrl-C is logged too.

    A mistake in this command's own arguments (a bad --out, say) is not the job's: it is only shown.
    """
    try:
        yield
    except KeyboardInterrupt:
        session.events.emit("job.interrupted", job_id)
        raise
    except (UsageError, InputError, LeaseError):
        raise
    except Exception as exc:
        session.events.error(job_id, exc)
        raise


@contextmanager
def _session(settings: Settings | None, progress: Progress, hooks: EventHooks | None = None) -> Iterator[Session]:
    session = Session(settings, progress, hooks)
    try:
        yield session
    finally:
        session.close()


# ---- submit ----------------------------------------------------------------------------------


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
    with _session(settings, progress) as session:
        return _submit(session, options, dry_run)


def _submit(session: Session, options: SubmitOptions, dry_run: bool) -> SubmitResult:
    limits = _limits(options)
    _check_endpoint(options.provider, options.endpoint)
    if options.max_attempts < 1:
        raise UsageError("--max-attempts must be at least 1")
    table = _input_table(options)
    params = dict(options.params)
    check_params(params, options.provider)
    if options.schema:
        params[schemas.PARAM] = schemas.load_schema(options.schema, options.provider)
    spec = TaskSpec(options.prompt, options.system, options.id_column, params, prompt_source=options.prompt_source)
    if spec.tasks_mode and table.format != "jsonl":
        raise UsageError("no --prompt given", hint="pass --prompt/--prompt-file, or a tasks JSONL with messages")
    job_print = _fingerprint(options, spec, table)
    if not dry_run and not options.new_job:
        earlier = _same_job(session, job_print, table)
        if earlier is not None:
            return _continue_job(session, earlier)
    job = Job(
        id=new_job_id(),
        created_at=time.time(),
        provider=options.provider,
        model=options.model,
        endpoint=options.endpoint,
        input_path=str(table.path.resolve()),
        input_format="tasks" if spec.tasks_mode else table.format,
        id_column=options.id_column,
        spec_json=orjson.dumps(
            {
                **spec.to_json(),
                "inline": options.gemini_inline,
                "pacing": _pacing(options),
                "max_cost": options.max_cost,
            }
        ).decode(),
        emulated=options.emulate,
        max_attempts=options.max_attempts,
        max_items=limits.max_items,
        max_bytes=limits.max_bytes,
        fingerprint=job_print,
    )
    adapter = session._make_provider(
        job.provider, job.model, job.endpoint, job.emulated and not dry_run, need_key=not dry_run,
        inline=options.gemini_inline,
    )  # fmt: skip
    limits = adapter.limits.narrowed(options.max_items_per_batch, options.max_bytes_per_batch)
    job.max_items, job.max_bytes = limits.max_items, limits.max_bytes
    if not dry_run:
        session.events.log(
            "job.started", job.id, provider=job.provider, model=job.model, input=job.input_path,
            spec=orjson.loads(job.spec_json), max_attempts=job.max_attempts, emulated=job.emulated,
            max_items_per_batch=limits.max_items, max_bytes_per_batch=limits.max_bytes,
        )  # fmt: skip
    plans, estimate = _pack_new_job(session, job, table, spec, adapter, limits, dry_run, options.max_cost)
    if not dry_run:
        session.events.emit(
            "job.submitted",
            job.id,
            provider=job.provider,
            model=job.model,
            input=job.input_path,
            n_items=sum(p.n_items for p in plans),
            shards=len(plans),
            emulated=job.emulated,
            spec=spec.to_json(),
            max_attempts=job.max_attempts,
        )
    if dry_run:
        return SubmitResult(job.id, sum(p.n_items for p in plans), plans, [], len(plans), True, estimate)
    session._providers[job.id] = adapter
    current_job.set(job.id)
    with session.lease(job.id) as lease:
        batch_ids, queued = _submit_unsent(session, session.store.get_job(job.id), lease)
    return SubmitResult(job.id, sum(p.n_items for p in plans), plans, batch_ids, queued, False, estimate)


def _fingerprint(options: SubmitOptions, spec: TaskSpec, table: InputTable) -> str:
    """The job-defining options (the input's content is compared separately, see fingerprint.py)."""
    return fingerprint.options_fingerprint(
        {
            "provider": options.provider,
            "model": options.model,
            "endpoint": options.endpoint,
            "emulated": options.emulate,
            "input_format": table.format,
            "spec": spec.to_json(),
            "inline": options.gemini_inline,
            "max_items_per_batch": options.max_items_per_batch,
            "max_bytes_per_batch": options.max_bytes_per_batch,
        }
    )


def _same_job(session: Session, job_print: str, table: InputTable) -> Job | None:
    """The newest job this command already made from the same input bytes, if any."""
    candidates = session.store.jobs_with_fingerprint(job_print)
    if not candidates:
        return None
    digest = fingerprint.input_sha256(table)
    return next((job for job in candidates if job.input_sha256 == digest), None)


def _continue_job(session: Session, job: Job) -> SubmitResult:
    """A rerun of the command that made `job`: continue it instead of paying for its items again."""
    current_job.set(job.id)
    if job.state == "cancelled":
        raise CancelledError(
            f"job {job.id} was made from the same input and options, and was cancelled",
            hint=f"`llmbulk resume {job.id}` continues it; add --new-job to start a separate job",
        )
    if job.state == "done":
        session.progress.note(
            f"job {job.id} already finished with the same input and options; nothing sent"
            " (--new-job starts a separate job)"
        )
    else:
        session.progress.note(f"continuing job {job.id} (same input and options; --new-job starts a separate job)")
    batch_ids: list[str] = []
    queued = 0
    if job.state == "active" and session.store.unsent_shards(job.id):
        with session.lease(job.id) as lease:
            batch_ids, queued = _submit_unsent(session, job, lease)
    plans = [ShardPlan(s.id, s.n_items, s.n_bytes) for s in session.store.shards(job.id)]
    return SubmitResult(job.id, job.n_items, plans, batch_ids, queued, False, None, continued=True)


def _pacing(options: SubmitOptions) -> dict[str, int]:
    pacing = {"max_active_batches": options.max_active_batches, "max_enqueued_tokens": options.max_enqueued_tokens}
    for name, value in pacing.items():
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be positive")
    return {k: v for k, v in pacing.items() if v}


def _limits(options: SubmitOptions) -> Limits:
    for name, value in (
        ("--max-items-per-batch", options.max_items_per_batch),
        ("--max-bytes-per-batch", options.max_bytes_per_batch),
    ):
        if value is not None and value < 1:
            raise UsageError(f"{name} must be positive")
    return providers.limits(options.provider).narrowed(options.max_items_per_batch, options.max_bytes_per_batch)


def _check_endpoint(provider: str, endpoint: str | None) -> None:
    """Refuse an --endpoint the provider's adapter does not offer, before anything is recorded."""
    if endpoint is None:
        return
    adapter = importlib.import_module(providers.info(provider).module)
    if hasattr(adapter, "ENDPOINTS"):  # OpenAI
        offered = tuple(adapter.ENDPOINTS)
    elif hasattr(adapter, "ENDPOINT"):  # Gemini
        offered = (adapter.ENDPOINT,)
    else:  # the adapter has no endpoint setting
        return
    if endpoint not in offered:
        raise UsageError(
            f"--endpoint {endpoint!r} is not supported by {provider}", hint=f"use one of: {', '.join(offered)}"
        )


def _input_table(options: SubmitOptions) -> InputTable:
    if not options.model:
        raise UsageError("--model is required")
    return InputTable(Path(options.input), options.input_format)


def _pack_new_job(
    session: Session,
    job: Job,
    table: InputTable,
    spec: TaskSpec,
    adapter: BatchProvider,
    limits: Limits,
    dry_run: bool,
    max_cost: float | None = None,
) -> tuple[list[ShardPlan], costs.Estimate]:
    store, home = session.store, session.settings.home
    shard_dir = session.job_dir(job.id) / "shards"
    plans: list[ShardPlan] = []
    counter = _CharCounter()
    session.progress.stage("packing")
    try:
        with store.tx() as conn:
            store.add_job(conn, job)
            tasks = every(counter.count(iter_tasks(table, spec)), PROGRESS_EVERY, _reporter(session, job.id, "pack"))

            def add_items(seq: int, items: list[tuple[int, str]]) -> None:
                store.add_items(conn, job.id, shard_id_for(job.id, seq), items)

            for packed in write_shards(tasks, adapter.encode, job.id, limits, shard_dir, add_items):
                shard = _shard_row(job.id, packed, home, round_=1)
                store.add_shard(conn, shard)
                plans.append(ShardPlan(shard.id, packed.n_items, packed.n_bytes))
                crashpoint("mid_pack")
            if not plans:
                raise InputError(f"{table.path} has no rows", hint="nothing to submit")
            n_items = sum(p.n_items for p in plans)
            estimate = _estimate(store, job, spec, counter.chars, n_items)
            _check_budget(estimate, max_cost, job)
            store.update_job_in(
                conn,
                job.id,
                n_items=n_items,
                input_sha256=table.sha256,
                state="active",
                prompt_chars=counter.chars,
                estimate_json=orjson.dumps(_estimate_json(estimate)).decode(),
            )
            if dry_run:
                raise _DryRun()
    except _DryRun:
        shutil.rmtree(session.job_dir(job.id), ignore_errors=True)
    except BaseException:
        shutil.rmtree(session.job_dir(job.id), ignore_errors=True)
        raise
    return plans, estimate


def _reporter(session: Session, job_id: str, stage: str, total: int | None = None) -> Callable[[int], None]:
    """Advances the console progress and logs a progress line, from running item counts."""
    reported = 0

    def report(done: int) -> None:
        nonlocal reported
        session.progress.advance(done - reported)
        reported = done
        session.events.progress(job_id, stage, done, total)

    return report


class _CharCounter:
    """Counts rendered prompt characters on the way through (for the cost estimate)."""

    def __init__(self) -> None:
        self.chars = 0

    def count(self, tasks: Iterator[Any]) -> Iterator[Any]:
        for task in tasks:
            messages = task.messages
            if len(messages) == 1 and type(content := messages[0].get("content")) is str:
                self.chars += len(content) + len(task.system or "")
            else:
                self.chars += sum(len(str(m.get("content", ""))) for m in messages) + len(task.system or "")
            yield task


def _estimate(store: Store, job: Job, spec: TaskSpec, chars: int, n_items: int) -> costs.Estimate:
    per_token, per_item = store.calibration(job.provider, job.model, job.emulated)
    return costs.estimate(
        job.provider,
        job.model,
        chars,
        n_items,
        spec.params.get("max_tokens"),
        chars_per_token=per_token or costs.CHARS_PER_TOKEN,
        past_output_per_item=per_item,
    )


def _estimate_json(estimate: costs.Estimate) -> dict[str, Any]:
    return {
        "input_tokens": estimate.input_tokens,
        "likely_output_tokens": estimate.likely_output_tokens,
        "max_output_tokens": estimate.max_output_tokens,
        "batch_likely_usd": estimate.batch_likely,
        "batch_upper_usd": estimate.batch_upper,
        "sync_likely_usd": estimate.sync_likely,
    }


def _check_budget(estimate: costs.Estimate, max_cost: float | None, job: Job) -> None:
    if max_cost is None:
        return
    if estimate.batch_upper is None:
        raise BudgetError(
            f"--max-cost given but {job.provider}/{job.model} has no known price",
            hint="drop --max-cost or use a model the price library knows",
        )
    if estimate.batch_upper > max_cost:
        raise BudgetError(
            f"estimated cost up to {costs.usd(estimate.batch_upper)} (likely {costs.usd(estimate.batch_likely or 0)})"
            f" is over --max-cost {costs.usd(max_cost)}; nothing was sent",
            hint="raise --max-cost, lower --max-tokens, or submit fewer rows",
        )


class _DryRun(Exception):
    """Rolls back the packing transaction of a dry run."""


def shard_id_for(job_id: str, seq: int) -> str:
    return f"{job_id}-s{seq:04d}"


def _shard_row(job_id: str, packed: PackedShard, home: Path, round_: int) -> Shard:
    return Shard(
        id=shard_id_for(job_id, packed.seq),
        job_id=job_id,
        seq=packed.seq,
        round=round_,
        path=str(packed.path.relative_to(home)) if packed.path.is_relative_to(home) else str(packed.path),
        sha256=packed.sha256,
        n_items=packed.n_items,
        n_bytes=packed.n_bytes,
        created_at=time.time(),
    )


def _submit_unsent(session: Session, job: Job, lease: JobLease) -> tuple[list[str], int]:
    """Create batches for every shard without one; stops at a quota refusal or a cancel request.

    Returns the created batch ids and how many shards still wait (pacing, quota, or another
    holder's create that may still be in flight).
    """
    ctx = session.sending(job, lease)
    created: list[str] = []
    unsent = session.store.unsent_shards(job.id)
    pacing = orjson.loads(job.spec_json).get("pacing") or {}
    session.progress.stage("submitting", len(unsent))
    waiting = 0
    for index, shard in enumerate(unsent):
        if session.store.get_job(job.id).cancel_requested:
            return created, len(unsent) - index
        if not _room_for(session.store, job, shard, pacing):
            session.progress.note(f"{len(unsent) - index} shard(s) wait for earlier batches (pacing limits)")
            return created, len(unsent) - index + waiting
        try:
            batch = submit_shard(ctx, shard)
        except ProviderError as exc:
            if not exc.retryable:
                raise
            # A quota refusal, or a create whose answer was lost (reconciled before the next try).
            name = "batch.requeued" if isinstance(exc, QuotaError) else "batch.create_unconfirmed"
            session.events.emit(name, job.id, shard_id=shard.id, reason=exc.message)
            session.progress.note(f"{exc.message}; {len(unsent) - index} shard(s) stay queued")
            return created, len(unsent) - index + waiting
        if batch is None:  # another holder's create may be in flight, or a found batch is not yet proven
            waiting += 1
            continue
        provider_id = _provider_id(session.store, batch.id, job.id)
        created.append(provider_id)
        session.events.emit("batch.created", job.id, batch_id=provider_id, shard_id=shard.id, n_items=shard.n_items)
        session.progress.advance()
    return created, waiting


def _room_for(store: Store, job: Job, shard: Shard, pacing: dict[str, Any]) -> bool:
    """Whether submitting this shard now stays within --max-active-batches and --max-enqueued-tokens."""
    if not pacing:
        return True
    # An open intent of this very shard is the shard itself, not another batch in flight.
    live = [b for b in store.batches(job.id, [*LIVE_STATES, BatchState.CREATING.value]) if b.shard_id != shard.id]
    if pacing.get("max_active_batches") and len(live) >= pacing["max_active_batches"]:
        return False
    limit = pacing.get("max_enqueued_tokens")
    if limit:
        # The provider's queue limit is per model, whichever job the batches belong to.
        in_flight = store.enqueued_bytes(job.provider, job.model, [*LIVE_STATES, BatchState.CREATING.value])
        if in_flight and (in_flight + shard.n_bytes) / costs.CHARS_PER_TOKEN > limit:
            return False
    return True


def _provider_id(store: Store, batch_id: str, job_id: str) -> str:
    return next(b.provider_batch_id or b.id for b in store.batches(job_id) if b.id == batch_id)


# ---- status, collect -------------------------------------------------------------------------


def status(
    job_id: str, *, refresh: bool = False, settings: Settings | None = None, progress: Progress = NO_PROGRESS
) -> JobStatus:
    """The job's item counts and batches from the state database (`refresh` polls the provider first)."""
    with _session(settings, progress) as session:
        job = session.store.get_job(job_id)
        if refresh:
            _poll(session, job)
        return _job_status(session.store, job)


def _job_status(store: Store, job: Job) -> JobStatus:
    counts_live = providers.limits(job.provider).counts_live
    views = [batch_view(b, counts_live) for b in store.batches(job.id)]
    return JobStatus(
        job=store.get_job(job.id),
        counts=store.item_counts(job.id),
        batches=views,
        errors=store.error_counts(job.id),
        usage=store.usage_totals(job.id),
        dead=store.items_in_state(job.id, ItemState.DEAD.value, limit=20),
        unsent_shards=len(store.unsent_shards(job.id)),
    )


def default_output(job: Job, fmt: str | None) -> tuple[Path, str]:
    if job.out_path:
        path = Path(job.out_path)
        return path, fmt or detect_format(path)
    fmt = fmt or "csv"
    return Path(f"llmbulk-{job.id}.{fmt}"), fmt


def resolve_output(job: Job, out: Path | None, fmt: str | None) -> tuple[Path | None, str]:
    """Where and in what format to write the output table (`-` = stdout, JSONL)."""
    check_output(out, fmt)
    if out is None:
        return default_output(job, fmt)
    if str(out) == "-":
        return None, "jsonl"
    return out, fmt or detect_format(out)


def check_output(out: Path | None, fmt: str | None, input_path: Path | None = None) -> None:
    """Refuse a bad --format or --out before anything is sent; needs no job, so it can run first.

    The output must be in a known format that agrees with its extension, must not be the input,
    and its folder must exist and be writable.
    """
    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
    if out is None:
        return
    if str(out) == "-":
        if fmt not in (None, "jsonl"):
            raise UsageError("only --format jsonl can be written to stdout")
        return
    if fmt is None:
        detect_format(out)
    check_format_matches(out, fmt)
    if input_path is not None and out.resolve() == input_path.resolve():
        raise UsageError(f"--out {out} is the input file", hint="write the output to another file")
    folder = out.resolve().parent
    if out.is_dir():
        raise UsageError(f"--out {out} is a directory", hint="name a file, e.g. results.csv")
    if not folder.is_dir():
        raise UsageError(f"cannot write --out {out}: folder {folder} does not exist", hint="create it first")
    if not os.access(folder, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise UsageError(f"cannot write --out {out}: permission denied", hint="choose a writable location")


def collect(
    job_id: str,
    out: Path | None = None,
    fmt: str | None = None,
    *,
    refresh: bool = True,
    wait_lock: float = 0.0,
    explode: str | None = None,
    settings: Settings | None = None,
    progress: Progress = NO_PROGRESS,
) -> CollectResult:
    """Poll, record the results of every finished batch, and write the output table."""
    with _session(settings, progress) as session:
        session.explode = explode
        job = session.store.get_job(job_id)
        current_job.set(job.id)
        path, fmt = resolve_output(job, out, fmt)
        with session.lease(job.id, wait=wait_lock) as lease, _logged(session, job.id):
            collected = _poll_and_collect(session, job, refresh, lease)
            summary = _write(session, job, path, fmt)
        return CollectResult(job.id, collected, summary, _job_status(session.store, job))


def _poll_and_collect(session: Session, job: Job, refresh: bool, lease: JobLease) -> list[str]:
    store = session.store
    cancel_duplicates(session.sending(job, lease))
    pending = [
        b for b in store.batches(job.id) if b.collected_at is None and b.state not in (BatchState.CREATING.value,)
    ]
    if not pending:
        return []
    provider = session.provider(job)
    if refresh and any(b.state in LIVE_STATES for b in pending):
        _poll(session, job)
    collected: list[str] = []
    finished = [b for b in store.batches(job.id) if b.collected_at is None and BatchState(b.state).terminal]
    for batch in finished:
        if batch.state == BatchState.REQUEUED.value:
            continue
        session.progress.stage(f"collecting {batch.provider_batch_id}", batch.total)
        report = _reporter(session, job.id, f"collect {batch.provider_batch_id}", batch.total)
        lines = collect_batch(store, provider, job, batch, session.job_dir(job.id), report)
        collected.append(batch.provider_batch_id or batch.id)
        session.events.emit("batch.collected", job.id, batch_id=batch.provider_batch_id, state=batch.state, **lines)
    if collected:
        session.events.emit("job.progress", job.id, counts=store.item_counts(job.id))
    return collected


def _poll(session: Session, job: Job) -> None:
    """Poll live batches and emit an event for every state change."""
    for before, status in poll_batches(session.store, session.provider(job), job):
        name = "ended" if status.state is BatchState.ENDED else status.state.value
        if status.state is BatchState.FAILED and status.error_code in REQUEUE_CODES:
            name = "requeued"  # a quota refusal: the shard goes back to the queue, no item failed
        latency = (status.ended_at - before.created_at) if status.ended_at and before.created_at else None
        session.events.emit(
            f"batch.{name}",
            job.id,
            batch_id=before.provider_batch_id,
            previous=before.state,
            raw_status=status.raw_status,
            total=status.total,
            error=status.error,
            latency_seconds=latency,
        )


def _write(session: Session, job: Job, path: Path | None, fmt: str, explode: str | None = None) -> MergeSummary:
    session.progress.stage("writing output", job.n_items)
    summary = write_output(session.store, job, path, fmt, explode or session.explode)
    if path is not None:
        session.store.update_job(job.id, out_path=str(path.resolve()))
    return summary


# ---- retry, cancel, jobs ---------------------------------------------------------------------


def retry(
    job_id: str,
    *,
    resume: bool = False,
    wait_lock: float = 0.0,
    settings: Settings | None = None,
    progress: Progress = NO_PROGRESS,
) -> RetryResult:
    """Resubmit only the failed-retryable items with attempts left; the rest become dead.

    A cancelled job stays cancelled unless `resume` says to continue it.
    """
    with _session(settings, progress) as session:
        job = session.store.get_job(job_id)
        current_job.set(job.id)
        with session.lease(job.id, wait=wait_lock) as lease, _logged(session, job.id):
            job = session.store.get_job(job_id)
            if job.state == "cancelled":
                if not resume:
                    raise _cancelled(job.id, "retry does not reactivate it")
                _reactivate(session, job.id)
            return _retry(session, session.store.get_job(job_id), lease)


def resume(
    job_id: str, *, wait_lock: float = 0.0, settings: Settings | None = None, progress: Progress = NO_PROGRESS
) -> JobStatus:
    """Make a cancelled job active again; `run JOB` (or `worker`) then sends what it has left."""
    with _session(settings, progress) as session:
        job = session.store.get_job(job_id)
        current_job.set(job.id)
        with session.lease(job.id, wait=wait_lock), _logged(session, job.id):
            job = session.store.get_job(job_id)
            if job.state != "cancelled":
                raise UsageError(f"job {job.id} is not cancelled (it is {job.state})", hint=f"`llmbulk run {job.id}`")
            _reactivate(session, job.id)
        return _job_status(session.store, job)


def _reactivate(session: Session, job_id: str) -> None:
    session.store.update_job(job_id, state="active", cancel_requested=None)
    session.events.emit("job.resumed", job_id)


def _cancelled(job_id: str, what: str) -> CancelledError:
    return CancelledError(
        f"job {job_id} is cancelled; {what}",
        hint=f"`llmbulk resume {job_id}` continues it, then `llmbulk run {job_id}`",
    )


def _retry(session: Session, job: Job, lease: JobLease) -> RetryResult:
    store = session.store
    dead = store.mark_dead(job.id, job.max_attempts)
    rows = list(store.retryable_rows(job.id))
    if not rows:
        batch_ids, _ = _submit_unsent(session, job, lease) if store.unsent_shards(job.id) else ([], 0)
        return RetryResult(job.id, 0, [], batch_ids, dead)
    attempts = store.item_attempts(job.id, rows)
    wanted = set(rows)
    provider = session.provider(job)
    table = restore.input_table(job)
    spec = TaskSpec.from_json(orjson.loads(job.spec_json))
    limits = Limits(max_items=job.max_items, max_bytes=job.max_bytes)
    shard_dir = session.job_dir(job.id) / "shards"
    plans: list[ShardPlan] = []
    session.progress.stage("packing retries", len(rows))
    with store.tx() as conn:
        first_seq = store.next_shard_seq(conn, job.id)
        round_ = 1 + max((s.round for s in store.shards(job.id)), default=1)

        def requeue(seq: int, items: list[tuple[int, str]]) -> None:
            store.requeue_items(conn, job.id, shard_id_for(job.id, seq), [row for row, _ in items])

        packed_iter = write_shards(
            iter_tasks(table, spec, only_rows=wanted),
            provider.encode,
            job.id,
            limits,
            shard_dir,
            requeue,
            first_seq=first_seq,
            attempt_of=lambda row: attempts[row] + 1,
        )
        for packed in packed_iter:
            shard = _shard_row(job.id, packed, session.settings.home, round_)
            store.add_shard(conn, shard)
            plans.append(ShardPlan(shard.id, packed.n_items, packed.n_bytes))
        if job.input_sha256 and table.sha256 and table.sha256 != job.input_sha256:
            raise InputError(
                f"input {job.input_path} changed since job {job.id} was submitted",
                hint="restore the original file to retry its items",
            )
    batch_ids, _ = _submit_unsent(session, store.get_job(job.id), lease)
    return RetryResult(job.id, len(rows), plans, batch_ids, dead)


def cancel(
    job_id: str, *, wait_lock: float = 0.0, settings: Settings | None = None, progress: Progress = NO_PROGRESS
) -> JobStatus:
    """Cancel every live batch of a job; finished items keep their results.

    A finished job is left as it is. While another process holds the job, it is asked to cancel
    the job at its next step instead.
    """
    with _session(settings, progress) as session:
        job = session.store.get_job(job_id)
        current_job.set(job.id)
        if job.state in ("done", "cancelled"):
            word = "finished" if job.state == "done" else "cancelled"
            session.progress.note(f"job {job.id} is already {word}; nothing to cancel")
            return _job_status(session.store, job)
        provider = session.provider(job)
        try:
            lease = session.lease(job.id, wait=wait_lock)
        except LeaseError:
            session.store.request_cancel(job.id)
            session.events.emit("job.cancel_requested", job.id)
            session.progress.note(
                f"job {job.id} is being worked on by another process; asked it to cancel the job at its next step"
            )
            return _job_status(session.store, job)
        with lease, _logged(session, job.id):
            _cancel_job(session, job, provider, lease)
            # Batches that ended before the cancel reached them (409) are harvested like the rest.
            _poll_and_collect(session, session.store.get_job(job.id), True, lease)
        return _job_status(session.store, job)


def _cancel_job(session: Session, job: Job, provider: BatchProvider, lease: JobLease) -> None:
    cancel_batches(session.store, provider, job, lease)
    session.store.update_job(job.id, state="cancelled", cancel_requested=None)
    session.events.emit("job.cancelled", job.id)


def items(
    job_id: str, state: str, out: Path | None = None, *, limit: int | None = None, settings: Settings | None = None
) -> list[dict[str, Any]]:
    """Items of a job in one state (e.g. the dead-letter list) with the error of their last attempt."""
    if state not in {s.value for s in ItemState}:
        raise UsageError(f"unknown item state {state!r}", hint=", ".join(s.value for s in ItemState))
    with _session(settings, NO_PROGRESS) as session:
        session.store.get_job(job_id)
        rows = session.store.items_in_state(job_id, state, limit)
    if out is not None:
        from llmbulk.tables import TableWriter

        columns = ["key", "row_index", "state", "attempts", "error_type", "error_code", "error_message"]
        writer = TableWriter(
            None if str(out) == "-" else out, detect_format(out) if str(out) != "-" else "jsonl", columns
        )
        for row in rows:
            writer.write(row)
        writer.close()
    return rows


@dataclass(frozen=True, slots=True)
class CostReport:
    """Estimate at submit vs actual spend so far, at batch and synchronous prices."""

    job_id: str
    estimate: dict[str, Any] | None
    tokens: dict[str, int]
    actual_usd: float | None
    sync_usd: float | None

    @property
    def saving_usd(self) -> float | None:
        return None if self.actual_usd is None or self.sync_usd is None else self.sync_usd - self.actual_usd


def cost(job_id: str, *, settings: Settings | None = None) -> CostReport:
    """What a job was estimated to cost, what it has cost so far, and the saving against synchronous calls."""
    with _session(settings, NO_PROGRESS) as session:
        job = session.store.get_job(job_id)
        tokens = session.store.token_totals(job_id)
    batch = costs.job_rates(job.provider, job.model, tokens, True)
    sync = costs.job_rates(job.provider, job.model, tokens, False)
    usage = (tokens["input_tokens"], tokens["output_tokens"], tokens["cached_tokens"])
    return CostReport(
        job.id,
        orjson.loads(job.estimate_json) if job.estimate_json else None,
        tokens,
        batch.cost(*usage) if batch else None,
        sync.cost(*usage) if sync else None,
    )


@dataclass(frozen=True, slots=True)
class Stats:
    """Operational figures for one job or recent jobs."""

    job_ids: list[str]
    batches_ended: int
    latency_seconds: dict[str, float]
    items_per_hour: float | None
    attempts: int
    failure_rate: float | None
    failures_by_code: list[tuple[str, str, int]]
    retries: int
    states: dict[str, int]
    actual_usd: float | None


def stats(job_id: str | None = None, *, recent: int = 20, settings: Settings | None = None) -> Stats:
    """Batch latency distribution, throughput, failure rate by error code, retries, dead items, cost."""
    with _session(settings, NO_PROGRESS) as session:
        selected = [session.store.get_job(job_id)] if job_id else session.store.list_jobs(recent)
        raw = session.store.stats_rows([j.id for j in selected])
        spend: list[float] = []
        for job in selected:
            tokens = session.store.token_totals(job.id)
            found = costs.job_rates(job.provider, job.model, tokens)
            if found is not None:
                spend.append(found.cost(tokens["input_tokens"], tokens["output_tokens"], tokens["cached_tokens"]))
    latencies = sorted(raw["latencies"])
    attempts = sum(n for _, _, n in raw["outcomes"])
    failed = sum(n for o, _, n in raw["outcomes"] if o != "succeeded")
    settled = sum(n for o, _, n in raw["outcomes"] if o == "succeeded")
    start, end = raw["span"]
    hours = (end - start) / 3600 if start and end and end > start else None
    n_items = sum(j.n_items for j in selected)
    return Stats(
        job_ids=[j.id for j in selected],
        batches_ended=len(latencies),
        latency_seconds=_percentiles(latencies),
        items_per_hour=settled / hours if hours else None,
        attempts=attempts,
        failure_rate=failed / attempts if attempts else None,
        failures_by_code=[(o, c, n) for o, c, n in raw["outcomes"] if o != "succeeded"],
        retries=max(0, attempts - n_items) if attempts else 0,
        states=raw["states"],
        actual_usd=sum(spend) if spend else None,
    )


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    pick = lambda q: values[min(len(values) - 1, int(q * (len(values) - 1) + 0.5))]  # noqa: E731
    return {"min": values[0], "p50": pick(0.5), "p90": pick(0.9), "max": values[-1]}


@dataclass(frozen=True, slots=True)
class Check:
    """One `doctor` finding."""

    name: str
    ok: bool
    detail: str


def doctor(*, settings: Settings | None = None, emulator: bool = True) -> list[Check]:
    """Check keys, that each keyed provider's batch API answers, the state database, and the emulator."""
    settings = settings or load_settings()
    checks: list[Check] = []
    keyed: list[str] = []
    for name, info in sorted(providers.REGISTRY.items()):
        present = [var for var in info.key_env if settings.env.get(var)]
        detail = f"{present[0]} is set" if present else f"no key ({' or '.join(info.key_env)}); --emulate still works"
        checks.append(Check(f"{name} key", bool(present), detail))
        if present:
            keyed.append(name)
    try:
        with _session(replace(settings, http_timeout=DOCTOR_TIMEOUT), NO_PROGRESS) as session:
            n_jobs = len(session.store.list_jobs(1000))
            checks.append(Check("state database", True, f"{_redacted(settings.db_url)} migrated, {n_jobs} job(s)"))
            checks.extend(_check_provider(session, name) for name in keyed)
    except Exception as exc:
        checks.append(Check("state database", False, str(exc)))
    if emulator:
        checks.append(_check_emulator(settings))
    return checks


def _check_provider(session: Session, name: str) -> Check:
    """One listing call on the provider's batch API (read-only, nothing is created)."""
    label = f"{name} batch API"
    try:
        adapter = session._make_provider(name, "doctor", None, emulated=False, need_key=True)
        try:
            adapter.find({"llmbulk_job": "doctor", "llmbulk_shard": "doctor"}, datetime.now(UTC), 0)
        finally:
            adapter.close()
    except LlmbulkError as exc:
        return Check(label, False, exc.message)
    return Check(label, True, "answers a batch listing with this key")


def _check_emulator(settings: Settings) -> Check:
    try:
        import openai

        from llmbulk.emulator import EmulatorServer
        from llmbulk.emulator.settings import config_from_env

        with EmulatorServer(settings.emulator_dir, config_from_env(settings.env)) as server:
            client = openai.OpenAI(api_key=EMULATOR_KEY, base_url=server.openai_base_url, max_retries=0)
            client.batches.list(limit=1)
            client.close()
        return Check("emulator", True, "starts on 127.0.0.1 and answers the OpenAI SDK")
    except Exception as exc:
        return Check("emulator", False, f"{exc.__class__.__name__}: {exc}")


def _redacted(url: str) -> str:
    from llmbulk.store.engine import _redact

    return _redact(url)


def jobs(limit: int = 50, *, settings: Settings | None = None) -> list[Job]:
    """Jobs in this state database, newest first."""
    with _session(settings, NO_PROGRESS) as session:
        return session.store.list_jobs(limit)


# ---- run -------------------------------------------------------------------------------------


def run(
    job_id: str | None = None,
    options: SubmitOptions | None = None,
    out: Path | None = None,
    fmt: str | None = None,
    *,
    timeout: float | None = None,
    retry_failed: bool = True,
    max_attempts: int | None = None,
    max_cost: float | None = None,
    wait_lock: float = 0.0,
    explode: str | None = None,
    hooks: EventHooks | None = None,
    settings: Settings | None = None,
    progress: Progress = NO_PROGRESS,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> RunResult:
    """Submit (or continue) a job and poll, collect and retry until it is done or `timeout` passes.

    Results are merged into the output table as each batch ends, not when the last one does. A
    cancelled job is only harvested: what its batches finished is collected, nothing is sent.
    """
    if (job_id is None) == (options is None):
        raise UsageError("run needs either a job id or an input to submit")
    # Before submitting: a bad --out must not leave a job behind.
    check_output(out, fmt, None if options is None else Path(options.input))
    started = clock()
    with _session(settings, progress, hooks) as session:
        session.explode = explode
        if options is not None:
            job_id = _submit(session, options, dry_run=False).job_id
        assert job_id is not None
        job = session.store.get_job(job_id)
        current_job.set(job.id)
        _apply_run_policies(session, job, max_attempts, max_cost)
        path, fmt = resolve_output(job, out, fmt)
        with session.lease(job.id, wait=wait_lock) as lease, _logged(session, job.id):
            runner = _Runner(session, lease, job.id, path, fmt, retry_failed, started, sleep, clock)
            return runner.run(timeout)


def _apply_run_policies(session: Session, job: Job, max_attempts: int | None, max_cost: float | None) -> None:
    if max_attempts is not None:
        if max_attempts < 1:
            raise UsageError("--max-attempts must be at least 1")
        session.store.update_job(job.id, max_attempts=max_attempts)
    if max_cost is not None:
        spec = orjson.loads(job.spec_json)
        spec["max_cost"] = max_cost
        session.store.update_job(job.id, spec_json=orjson.dumps(spec).decode())


class _Runner:
    """The run loop: each round sends what is unsent, collects what finished, retries what failed."""

    def __init__(
        self,
        session: Session,
        lease: JobLease,
        job_id: str,
        path: Path | None,
        fmt: str,
        retry_failed: bool,
        started: float,
        sleep: Callable[[float], None],
        clock: Callable[[], float],
    ) -> None:
        self.session, self.store, self.lease, self.job_id = session, session.store, lease, job_id
        self.path, self.fmt, self.retry_failed = path, fmt, retry_failed
        self.started, self.sleep, self.clock = started, sleep, clock
        self.delay: float | None = None
        self.bounds = _poll_bounds(session.settings, self.store.get_job(job_id))
        self.summary: MergeSummary | None = None
        # On stdout a table cannot be rewritten as batches end: rows go out once, as they settle.
        self.stream = SettledRowStream(self.store.get_job(job_id).n_items) if path is None else None
        self.budget_stopped = False
        self.troubled_rounds = 0

    def run(self, timeout: float | None) -> RunResult:
        while True:
            self.lease.check()
            job = self.store.get_job(self.job_id)
            job = self.honour_cancel_request(job)
            self.send_unsent(job)
            self.collect_finished(job)
            state = _job_status(self.store, job)
            if self.retry_failed_items(job, state):
                continue
            if (result := self.finished(job, state)) is not None:
                return result
            self.delay = next_poll_delay(self.delay, *self.bounds)
            if timeout is not None and self.clock() - self.started + self.delay > timeout:
                seconds = self.clock() - self.started
                self.session.events.emit("job.timeout", job.id, counts=state.counts, seconds=seconds)
                return RunResult(job.id, False, True, self.summary, state)
            self.sleep(self.delay)

    def honour_cancel_request(self, job: Job) -> Job:
        """`llmbulk cancel` from another process asked this holder to cancel the job."""
        if job.cancel_requested is None or job.state == "cancelled":
            return job
        _cancel_job(self.session, job, self.session.provider(job), self.lease)
        return self.store.get_job(job.id)

    def send_unsent(self, job: Job) -> None:
        if job.state == "cancelled" or not self.store.unsent_shards(job.id):
            return
        created, _waiting = _submit_unsent(self.session, job, self.lease)
        if created:
            self.delay = None  # new batches: watch them closely at first

    def collect_finished(self, job: Job) -> None:
        # A batch ending does not reset the interval: the others run on their own clocks, and
        # polling all of them from 30 s again at each end would cost ~5 extra polls per batch.
        try:
            if _poll_and_collect(self.session, job, refresh=True, lease=self.lease):
                self.summary = self.write(job)
            self.troubled_rounds = 0
        except ProviderError as exc:
            # The SDK has already retried the call; an outage longer than that is waited out
            # (the job's state is intact: whatever was not recorded is asked again next round).
            self.troubled_rounds += 1
            if not exc.retryable or self.troubled_rounds > TROUBLED_ROUNDS_MAX:
                raise
            self.session.events.emit("job.provider_trouble", job.id, error=exc.message, round=self.troubled_rounds)
            self.session.progress.note(f"{exc.message}; trying again ({self.troubled_rounds}/{TROUBLED_ROUNDS_MAX})")

    def retry_failed_items(self, job: Job, state: JobStatus) -> bool:
        """Resend retryable items (within --max-cost); True when something was resent."""
        retryable = state.counts.get(ItemState.FAILED_RETRYABLE.value, 0)
        if not (self.retry_failed and job.state == "active" and retryable and not self.budget_stopped):
            return False
        if _within_budget(self.session, job, retryable):
            _retry(self.session, job, self.lease)
            self.delay = None
            return True
        self.budget_stopped = True
        return False

    def finished(self, job: Job, state: JobStatus) -> RunResult | None:
        """The result once nothing is in flight (and, for an active job, nothing is left to send)."""
        live = any(
            b.state in LIVE_STATES
            or b.state == BatchState.CREATING.value
            or (not b.collected and b.state != BatchState.REQUEUED.value)  # ended, results not yet fetched
            for b in state.batches
        )
        cancelled = job.state == "cancelled"
        if live or (state.unsent_shards and not cancelled):
            return None
        if self.budget_stopped and not cancelled:
            # The job stays active: `run JOB --max-cost MORE` (or `retry`) resends what is left.
            return RunResult(job.id, False, False, self.summary, state, budget_stopped=True)
        return self.finish(job)

    def finish(self, job: Job) -> RunResult:
        store, events = self.store, self.session.events
        store.mark_dead(job.id, job.max_attempts)
        if job.state != "cancelled":
            store.update_job(job.id, state="done")
        self.summary = self.write(job, final=True)
        final = _job_status(store, job)
        failed = final.counts.get("failed_permanent", 0) + final.counts.get("dead", 0)
        events.emit(
            "job.done_with_failures" if failed else "job.done",
            job.id,
            counts=final.counts,
            seconds=self.clock() - self.started,
            job_seconds=time.time() - job.created_at,
            usage=final.usage,
            cost_usd=_spent(store, job),
            output=str(self.path) if self.path else None,
        )
        return RunResult(job.id, True, False, self.summary, final)

    def write(self, job: Job, final: bool = False) -> MergeSummary:
        if self.stream is not None:
            return self.stream.emit(self.store, job, self.session.explode, final=final)
        return _write(self.session, job, self.path, self.fmt)


@dataclass(frozen=True, slots=True)
class WorkerResult:
    """What one `worker` pass did."""

    finished: list[str]
    still_running: list[str]
    skipped: list[str]  # held by another runner
    failed: list[tuple[str, str]] = field(default_factory=list)  # (job, why): left for a person to fix


def worker(
    *,
    timeout_per_job: float | None = 60.0,
    settings: Settings | None = None,
    progress: Progress = NO_PROGRESS,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> WorkerResult:
    """One pass over every active job, oldest first.

    Jobs another runner holds are skipped; a job that cannot advance (a missing key, a changed
    input) is logged in its job log and reported, and the pass goes on with the others.
    """
    finished: list[str] = []
    running: list[str] = []
    skipped: list[str] = []
    failed: list[tuple[str, str]] = []
    with _session(settings, progress) as session:
        active = [j for j in reversed(session.store.list_jobs(10_000)) if j.state == "active"]
    for job in active:
        try:
            result = run(job.id, None, timeout=timeout_per_job, settings=settings, progress=progress, sleep=sleep,
                         clock=clock)  # fmt: skip
        except LeaseError:
            skipped.append(job.id)
            continue
        except LlmbulkError as exc:
            failed.append((job.id, str(exc)))
            progress.note(f"job {job.id} skipped: {exc}")
            continue
        (finished if result.finished else running).append(job.id)
    return WorkerResult(finished, running, skipped, failed)


def _spent(store: Store, job: Job) -> float | None:
    """Actual batch spend of the job so far (every attempt billed), or None for an unpriced model."""
    tokens = store.token_totals(job.id)
    rates = costs.job_rates(job.provider, job.model, tokens)
    return rates.cost(tokens["input_tokens"], tokens["output_tokens"], tokens["cached_tokens"]) if rates else None


def _within_budget(session: Session, job: Job, n_retry: int) -> bool:
    """Whether resubmitting `n_retry` items keeps spend (actual + their share of the estimate) under --max-cost."""
    max_cost = orjson.loads(job.spec_json).get("max_cost")
    if max_cost is None or not job.n_items:
        return True
    tokens = session.store.token_totals(job.id)
    rates = costs.job_rates(job.provider, job.model, tokens)
    if rates is None:
        return True
    spent = rates.cost(tokens["input_tokens"], tokens["output_tokens"], tokens["cached_tokens"])
    upper = (orjson.loads(job.estimate_json or "{}").get("batch_upper_usd") or 0.0) * n_retry / job.n_items
    if spent + upper <= max_cost:
        return True
    session.events.emit("job.budget_reached", job.id, spent_usd=spent, retry_items=n_retry, max_cost=max_cost)
    session.progress.note(f"not retrying {n_retry} item(s): spend {costs.usd(spent)} + retries would pass --max-cost")
    return False


def _poll_bounds(settings: Settings, job: Job) -> tuple[float, float]:
    if job.emulated:
        return settings.emulated_poll_initial, settings.emulated_poll_max
    return settings.poll_initial, settings.poll_max
