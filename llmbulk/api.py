"""The verbs as one importable surface: `llmbulk.api.submit`, `llmbulk.api.run`, …

A façade: each verb lives in its own module under `llmbulk.jobs` (and the session in
`llmbulk.session`); this module only gathers them, so `import llmbulk` and `llmbulk.api.*` keep working.
"""

from __future__ import annotations

from llmbulk.jobs.cache import cache_stats, prune_cache
from llmbulk.jobs.cancel import cancel, resume
from llmbulk.jobs.collect import collect, status
from llmbulk.jobs.doctor import doctor
from llmbulk.jobs.gc import GcReport, Leftover, ProviderScan, gc
from llmbulk.jobs.inspect import cost, items, jobs, stats
from llmbulk.jobs.limits import limits, set_limits
from llmbulk.jobs.prune import PrunedJob, PruneReport, prune
from llmbulk.jobs.retry import retry
from llmbulk.jobs.run import run, worker
from llmbulk.jobs.submit import new_job_id, submit
from llmbulk.jobs.types import (
    Check,
    CollectResult,
    CostReport,
    RetryResult,
    RunResult,
    ShardPlan,
    Stats,
    SubmitOptions,
    SubmitResult,
    WorkerResult,
)
from llmbulk.merge import check_output, default_output, resolve_output
from llmbulk.session import EMULATOR_KEY, Session, current_job
from llmbulk.views import BatchView, JobStatus

__all__ = [
    "EMULATOR_KEY",
    "BatchView",
    "Check",
    "CollectResult",
    "CostReport",
    "GcReport",
    "JobStatus",
    "Leftover",
    "ProviderScan",
    "PruneReport",
    "PrunedJob",
    "RetryResult",
    "RunResult",
    "Session",
    "ShardPlan",
    "Stats",
    "SubmitOptions",
    "SubmitResult",
    "WorkerResult",
    "cache_stats",
    "cancel",
    "check_output",
    "collect",
    "cost",
    "current_job",
    "default_output",
    "doctor",
    "gc",
    "items",
    "jobs",
    "limits",
    "new_job_id",
    "prune",
    "prune_cache",
    "resolve_output",
    "resume",
    "retry",
    "run",
    "set_limits",
    "stats",
    "status",
    "submit",
    "worker",
]
