"""What the verbs take and give back: submit options and each verb's result."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmbulk import costs
from llmbulk.views import JobStatus

if TYPE_CHECKING:  # annotations only: `cost` and `items` import this module on their light path
    from llmbulk.merge import MergeSummary
    from llmbulk.reuse import ReuseCounts


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
    priority: int = 0  # served before lower priorities in a shared capacity scope's queue
    schema: str | None = None
    prompt_source: str | None = None  # where `prompt` was read from (e.g. a file), named in template errors
    new_job: bool = False  # start a separate job even if the same command made one already
    fresh: bool = False  # send every row: reuse no earlier answer, fold no repeated rows
    reuse_max_age: float | None = None  # seconds: reuse only answers recorded this recently
    sample: int | None = None  # sample number, part of the request key (several samples of one prompt)
    base_url: str | None = None  # the gateway or resource to send to (kept on the job)
    completion_window: str | None = None  # where the provider offers several windows
    attach: list[str] = field(default_factory=list)  # columns whose files (images, PDFs) go with the prompt
    attach_upload: str = "auto"  # auto: files used by several rows or large go by reference; always; never
    keep_files: bool = False  # leave input and result files at the provider after collect (kept with the job)


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
    reuse: ReuseCounts | None = None  # rows sent, answered from earlier jobs, repeating other rows


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


@dataclass(frozen=True, slots=True)
class CostReport:
    """Estimate at submit vs actual spend so far, at batch and synchronous prices."""

    job_id: str
    estimate: dict[str, Any] | None
    tokens: dict[str, int]
    actual_usd: float | None
    sync_usd: float | None
    reused: dict[str, int] = field(default_factory=dict)  # items answered without sending, and their tokens
    reused_usd: float | None = None  # what those answers would have cost at the batch rate (not spent)

    @property
    def saving_usd(self) -> float | None:
        return None if self.actual_usd is None or self.sync_usd is None else self.sync_usd - self.actual_usd


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


@dataclass(frozen=True, slots=True)
class Check:
    """One `doctor` finding."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class WorkerResult:
    """What one `worker` pass did."""

    finished: list[str]
    still_running: list[str]
    skipped: list[str]  # held by another runner
    failed: list[tuple[str, str]] = field(default_factory=list)  # (job, why): left for a person to fix
