"""SQLModel tables: jobs, items, shards, batches, attempts and the migration record.

These classes are the reference schema; `migrations.py` creates and upgrades databases to match
them (a test compares the two). Times are UNIX seconds (float) so both SQLite and PostgreSQL sort
and subtract them without dialect code.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, text
from sqlmodel import Field, SQLModel

from llmbulk.models import JobSpec
from llmbulk.store.queries import failed

_FAILED = text(failed())
_REUSED = text("reused_from IS NOT NULL")


class Job(SQLModel, table=True):
    """One user run: an input, a prompt, a provider and model, settings."""

    __tablename__ = "jobs"

    id: str = Field(primary_key=True, description="Short id such as j7f3k2.")
    created_at: float = Field(description="When the job was created.")
    provider: str = Field(description="openai, anthropic or gemini.")
    model: str = Field(description="Model name sent to the provider.")
    endpoint: str | None = Field(default=None, description="Provider endpoint, e.g. /v1/chat/completions.")
    input_path: str = Field(description="Absolute path of the input table.")
    input_format: str = Field(description="csv, jsonl, parquet or tasks.")
    input_sha256: str | None = Field(default=None, description="Hash of the input bytes at submit.")
    id_column: str | None = Field(default=None, description="Column holding item keys; None = row number.")
    spec_json: str = Field(description="Prompt, system, params, schema: what renders tasks (JSON).")
    emulated: bool = Field(default=False, description="Runs against the local emulator.")
    max_attempts: int = Field(default=3, description="Attempts per item before it is dead.")
    max_items: int = Field(description="Items per shard (provider limit, maybe lowered).")
    max_bytes: int = Field(description="Bytes per shard (provider limit, maybe lowered).")
    n_items: int = Field(default=0, description="Items in the job.")
    state: str = Field(default="packing", description="packing, active, done, cancelled.")
    out_path: str | None = Field(default=None, description="Last output table written.")
    lease_owner: str | None = Field(default=None, description="Process holding the job lease.")
    lease_until: float | None = Field(default=None, description="When that lease expires.")
    prompt_chars: int | None = Field(default=None, description="Characters of rendered prompts (for estimates).")
    estimate_json: str | None = Field(default=None, description="Cost estimate made at submit (JSON).")
    lease_gen: int = Field(
        default=0, sa_type=BigInteger, description="Fencing token: incremented by every takeover of the lease."
    )
    fingerprint: str | None = Field(
        default=None, index=True, description="Hash of the job-defining options; a rerun with it continues the job."
    )
    cancel_requested: float | None = Field(
        default=None, description="When `cancel` asked the process holding the job to cancel it."
    )

    @property
    def spec(self) -> JobSpec:
        """`spec_json`, parsed."""
        return JobSpec.from_stored(self.spec_json)


class Item(SQLModel, table=True):
    """One row of a job: the unit that succeeds or fails."""

    __tablename__ = "items"
    __table_args__ = (
        Index("ix_items_job_failed", "job_id", "state", "row_index", sqlite_where=_FAILED, postgresql_where=_FAILED),
        Index("ux_items_job_key", "job_id", "key", unique=True),
        Index("ix_items_job_shard", "job_id", "shard_id"),
    )

    job_id: str = Field(primary_key=True, description="Owning job.")
    row_index: int = Field(primary_key=True, description="0-based position in the input.")
    key: str = Field(description="User's id (id column) or the row number.")
    state: str = Field(default="queued", description="ItemState value.")
    attempts: int = Field(default=0, description="Attempts made so far (the current one included).")
    shard_id: str | None = Field(default=None, description="Shard holding the current attempt.")
    request_key: str | None = Field(default=None, description="Hash of the request it sends (reuse.py).")
    leader_row: int | None = Field(
        default=None, description="Row of the same job sending the same request: this item takes its answer."
    )


class ItemCount(SQLModel, table=True):
    """How many of a shard's items are in each state, kept by the store as it writes (read by status)."""

    __tablename__ = "item_counts"

    job_id: str = Field(primary_key=True, description="Owning job.")
    shard_id: str = Field(primary_key=True, description="Shard whose items are counted.")
    state: str = Field(primary_key=True, description="ItemState value.")
    error_code: str = Field(primary_key=True, description="Last attempt's error code (failed states), else ''.")
    n: int = Field(sa_type=BigInteger, description="Items of the shard in that state.")


class Shard(SQLModel, table=True):
    """One provider-native JSONL file within the provider's limits."""

    __tablename__ = "shards"
    __table_args__ = (Index("ix_shards_job", "job_id", "seq"),)

    id: str = Field(primary_key=True, description="job id + sequence, e.g. j7f3k2-s0003.")
    job_id: str = Field(description="Owning job.")
    seq: int = Field(description="Order of creation within the job.")
    round: int = Field(default=1, description="1 for the first submission, 2+ for retries.")
    path: str = Field(description="Path of the JSONL file, relative to LLMBULK_HOME.")
    sha256: str = Field(description="Hash of the file as written.")
    n_items: int = Field(description="Requests in the shard.")
    n_bytes: int = Field(description="Bytes of the file.")
    created_at: float = Field(description="When it was packed.")


class Batch(SQLModel, table=True):
    """One provider batch created from one shard, with normalized and raw state."""

    __tablename__ = "batches"
    __table_args__ = (
        Index("ix_batches_job_state", "job_id", "state"),
        Index("ix_batches_shard", "shard_id"),
        Index("ix_batches_provider_id", "provider_batch_id"),
        Index("ix_batches_input_file", "input_file_id"),
    )

    id: str = Field(primary_key=True, description="Local id: the shard id + '-b' + attempt at creating.")
    job_id: str = Field(description="Owning job.")
    shard_id: str = Field(description="Shard this batch was created from.")
    provider_batch_id: str | None = Field(default=None, description="batch_…, msgbatch_…, batches/….")
    input_file_id: str | None = Field(default=None, description="Uploaded input file, if any.")
    state: str = Field(description="BatchState value.")
    raw_status: str | None = Field(default=None, description="Provider's own status string.")
    total: int | None = Field(default=None, description="Requests in the batch.")
    completed: int | None = Field(default=None, description="Requests finished so far, if known.")
    failed: int | None = Field(default=None, description="Requests failed so far, if known.")
    error: str | None = Field(default=None, description="Why the batch failed as a whole.")
    error_code: str | None = Field(default=None, description="Provider code for that failure.")
    result_refs_json: str | None = Field(default=None, description="Handles of result files (JSON).")
    intent_at: float = Field(description="When the create intent was recorded.")
    created_at: float | None = Field(default=None, description="When the provider confirmed creation.")
    ended_at: float | None = Field(default=None, description="When it reached a terminal state.")
    polled_at: float | None = Field(default=None, description="Last poll.")
    collected_at: float | None = Field(default=None, description="When its results were recorded.")
    raw_json: str | None = Field(default=None, description="Last raw provider payload (JSON).")
    input_tokens: int | None = Field(default=None, description="Input tokens of its attempts, once collected.")
    output_tokens: int | None = Field(default=None, description="Output tokens of its attempts, once collected.")
    attempts_recorded: int | None = Field(default=None, description="Attempts it settled, once collected.")
    cached_tokens: int | None = Field(
        default=None, sa_type=BigInteger, description="Cached input tokens of its attempts, once collected."
    )
    usage_attempts: int | None = Field(
        default=None, sa_type=BigInteger, description="How many of its attempts reported usage, once collected."
    )
    owner: str | None = Field(default=None, description="Lease holder that recorded the create intent.")
    files_deleted_at: float | None = Field(
        default=None, description="When its files at the provider (input, results) were deleted after use (or none)."
    )


class Attempt(SQLModel, table=True):
    """One try of one item inside one batch, with its outcome."""

    __tablename__ = "attempts"
    __table_args__ = (
        Index("ix_attempts_batch", "batch_id"),
        Index("ix_attempts_reused", "job_id", sqlite_where=_REUSED, postgresql_where=_REUSED),
    )

    job_id: str = Field(primary_key=True, description="Owning job.")
    row_index: int = Field(primary_key=True, description="Item row.")
    attempt: int = Field(primary_key=True, description="1-based attempt number.")
    batch_id: str = Field(description="Local batch id that produced this outcome.")
    outcome: str = Field(description="Outcome value: succeeded, failed_retryable, failed_permanent.")
    output: str | None = Field(default=None, description="Response text (or JSON) on success.")
    finish_reason: str | None = Field(default=None, description="stop, length, …")
    input_tokens: int | None = Field(default=None, description="Prompt tokens billed.")
    output_tokens: int | None = Field(default=None, description="Completion tokens billed.")
    cached_tokens: int | None = Field(default=None, description="Prompt tokens served from cache.")
    reasoning_tokens: int | None = Field(default=None, description="Reasoning tokens (part of output).")
    error_type: str | None = Field(default=None, description="Provider error type.")
    error_code: str | None = Field(default=None, description="Provider error code or HTTP status.")
    error_message: str | None = Field(default=None, description="Provider error message.")
    recorded_at: float = Field(description="When the outcome was recorded.")
    reused_from: str | None = Field(
        default=None,
        description="Not sent: the answer of another item (its key; job/key from another job). Not billed.",
    )


class Answer(SQLModel, table=True):
    """The reusable answer of one request key: a pointer to the succeeded attempt that holds it."""

    __tablename__ = "answers"
    __table_args__ = (Index("ix_answers_job", "job_id"),)

    request_key: str = Field(primary_key=True, description="Hash of the request (reuse.py).")
    job_id: str = Field(description="Job of the attempt holding the answer.")
    row_index: int = Field(description="Its item's row.")
    attempt: int = Field(description="Its attempt number.")
    created_at: float = Field(description="When the answer was recorded.")
    item_key: str | None = Field(default=None, description="Key of the item that was sent (reused_from names it).")


class AttachmentFile(SQLModel, table=True):
    """An attachment uploaded once to a provider account's Files API, referenced by every request sending it."""

    __tablename__ = "attachment_files"

    account: str = Field(primary_key=True, description="Provider, base URL and emulated or not: whose files.")
    sha256: str = Field(primary_key=True, description="Hash of the file's bytes (it is named after it too).")
    media_type: str = Field(description="image/png, application/pdf, …")
    size: int = Field(sa_type=BigInteger, description="Bytes of the file.")
    file_id: str | None = Field(default=None, description="The provider's file id, once the upload is confirmed.")
    file_uri: str | None = Field(default=None, description="What requests reference where not the id (Gemini).")
    expires_at: float | None = Field(default=None, description="When the provider deletes it (None: never).")
    intent_at: float = Field(description="When the upload intent was recorded.")
    owner: str = Field(description="Process that recorded the intent (and may be uploading).")
    uploaded_at: float | None = Field(default=None, description="When the upload was confirmed.")
    used_at: float | None = Field(default=None, description="When a job last packed a request referencing it.")


class CapacityScope(SQLModel, table=True):
    """Limits of one provider account and model, shared by every runner (NULL: the provider's default)."""

    __tablename__ = "capacity_scopes"

    scope: str = Field(primary_key=True, description="provider|account|model.")
    provider: str = Field(description="Provider (or OpenAI-compatible vendor) name.")
    account: str = Field(description="Base URL of the account, or 'default'.")
    model: str = Field(description="Model the limits apply to.")
    enqueued_tokens: int | None = Field(default=None, sa_type=BigInteger, description="Set enqueued-token limit.")
    active_batches: int | None = Field(default=None, description="Set limit of batches in flight.")
    creations_per_hour: int | None = Field(default=None, description="Set limit of batch creations per hour.")
    files: int | None = Field(default=None, description="Set limit of files at the provider.")
    observed_tokens: int | None = Field(default=None, sa_type=BigInteger, description="Lowered by a quota refusal.")
    observed_batches: int | None = Field(default=None, description="Lowered by a quota refusal.")
    observed_at: float | None = Field(default=None, description="When the observed limits were last lowered.")
    blocked_until: float | None = Field(default=None, description="No create before this.")
    updated_at: float = Field(description="Last change.")


class CapacityGrant(SQLModel, table=True):
    """The room one create intent reserved in its scope; held while its batch is live."""

    __tablename__ = "capacity_grants"
    __table_args__ = (Index("ix_capacity_grants_scope", "scope", "job_id"),)

    batch_id: str = Field(primary_key=True, description="The intent's local batch id.")
    scope: str = Field(description="Its capacity scope.")
    job_id: str = Field(description="Owning job.")
    shard_id: str = Field(description="The shard sent.")
    tokens: int = Field(sa_type=BigInteger, description="Estimated enqueued tokens.")
    granted_at: float = Field(description="When the room was reserved (counts toward creations per hour).")


class CapacityWait(SQLModel, table=True):
    """A job's next shard waiting for room in a scope: the durable quota queue."""

    __tablename__ = "capacity_waits"

    scope: str = Field(primary_key=True, description="The scope waited on.")
    job_id: str = Field(primary_key=True, description="The waiting job.")
    shard_id: str = Field(description="Its next shard.")
    tokens: int = Field(sa_type=BigInteger, description="That shard's estimated tokens.")
    priority: int = Field(description="Higher first (--priority).")
    submitted_at: float = Field(description="The job's creation time: submission order.")
    since: float = Field(description="When the job started waiting.")
    seen_at: float = Field(description="Last time its runner asked; stale waits are passed over.")


class SchemaMigration(SQLModel, table=True):
    """Named migrations applied to this database."""

    __tablename__ = "schema_migrations"

    name: str = Field(primary_key=True, description="Migration name, e.g. 0001_initial.")
    applied_at: float = Field(description="When it was applied.")
