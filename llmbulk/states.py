"""The state vocabularies of jobs, items, batches and result lines.

Kept apart from `models` (pydantic) so that the light commands (`status`, `jobs`, …), which only
name states, start without importing pydantic.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    """Life of one job."""

    PACKING = "packing"  # being packed (a job seen in this state was interrupted before its commit)
    ACTIVE = "active"  # shards to send, batches in flight, or items waiting to be retried
    DONE = "done"  # every item settled
    CANCELLED = "cancelled"  # stopped by `cancel`; `resume` makes it active again


OPEN_JOB_STATES = frozenset({JobState.PACKING, JobState.ACTIVE})


class ItemState(StrEnum):
    """Life of one item; the last four are terminal (until a retry re-queues a retryable one)."""

    PENDING = "pending"
    QUEUED = "queued"
    SUBMITTED = "submitted"
    SUCCEEDED = "succeeded"
    FAILED_RETRYABLE = "failed_retryable"
    FAILED_PERMANENT = "failed_permanent"
    DEAD = "dead"


TERMINAL_ITEM_STATES = frozenset(
    {ItemState.SUCCEEDED, ItemState.FAILED_RETRYABLE, ItemState.FAILED_PERMANENT, ItemState.DEAD}
)


class BatchState(StrEnum):
    """Provider batch states normalized into one small vocabulary (raw status kept beside it)."""

    CREATING = "creating"  # intent recorded, provider create not yet confirmed
    VALIDATING = "validating"
    RUNNING = "running"
    FINALIZING = "finalizing"
    CANCELLING = "cancelling"
    ENDED = "ended"  # finished normally; results (maybe partial) available
    FAILED = "failed"  # rejected as a whole (validation, quota); no item was processed
    EXPIRED = "expired"  # window passed; finished items have results, the rest expired
    CANCELLED = "cancelled"  # cancelled; finished items have results
    REQUEUED = "requeued"  # create refused (quota) or batch failed on quota: the shard waits to be resent

    @property
    def terminal(self) -> bool:
        return self in (
            BatchState.ENDED,
            BatchState.FAILED,
            BatchState.EXPIRED,
            BatchState.CANCELLED,
            BatchState.REQUEUED,
        )


class Outcome(StrEnum):
    """What one result line says about its item."""

    SUCCEEDED = "succeeded"
    RETRYABLE = "failed_retryable"
    PERMANENT = "failed_permanent"
