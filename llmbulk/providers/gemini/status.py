"""Gemini batch job states → llmbulk's normalized `BatchStatus` (pure: the SDK object in, no calls).

The SDK's `done` misses PARTIALLY_SUCCEEDED, so llmbulk maps every state itself; an unknown state
is an error, never a guess.
"""

from __future__ import annotations

from typing import Any

from llmbulk.errors import ProviderError
from llmbulk.models import BatchState, BatchStatus

FINALIZE_GRACE_SECONDS = 1800.0  # SUCCEEDED without a visible output for this long is reported as FAILED

# PENDING/QUEUED mean "accepted, not started": the same VALIDATING state llmbulk records right
# after create. PAUSED/UPDATING are Vertex states of a job that resumes, so they count as RUNNING.
_JOB_STATES: dict[str, BatchState] = {
    "QUEUED": BatchState.VALIDATING,
    "PENDING": BatchState.VALIDATING,
    "RUNNING": BatchState.RUNNING,
    "PAUSED": BatchState.RUNNING,
    "UPDATING": BatchState.RUNNING,
    "SUCCEEDED": BatchState.ENDED,
    "PARTIALLY_SUCCEEDED": BatchState.ENDED,
    "FAILED": BatchState.FAILED,
    "CANCELLING": BatchState.CANCELLING,
    "CANCELLED": BatchState.CANCELLED,
    "EXPIRED": BatchState.EXPIRED,
}
# SDK `JobState` values, and the wire's `BATCH_STATE_*` (the SDK renames six of them and passes
# the others through verbatim, with a UserWarning).
STATES: dict[str, BatchState] = {
    f"{prefix}_STATE_{name}": state for prefix in ("JOB", "BATCH") for name, state in _JOB_STATES.items()
}
UNSPECIFIED_STATES = frozenset({"JOB_STATE_UNSPECIFIED", "BATCH_STATE_UNSPECIFIED"})
RESULT_STATES = frozenset({BatchState.ENDED, BatchState.EXPIRED, BatchState.CANCELLED})


def batch_status(job: Any, now: float, batch_id: str | None = None) -> BatchStatus:
    """An SDK `BatchJob` → a normalized status (pure; an unknown state is an error, never a guess).

    A FAILED job's reason is not in the SDK's object (the adapter reads it from the raw operation).
    `now` decides whether a SUCCEEDED job without a visible output is still finalizing.
    """
    name = job.name or batch_id or "?"
    raw_status = _state_value(job.state)
    if raw_status is None or raw_status in UNSPECIFIED_STATES:
        raise ProviderError(f"Gemini reports no state for batch {name} ({raw_status})", retryable=True)
    state = STATES.get(raw_status)
    if state is None:
        raise ProviderError(f"Gemini batch {name} has unknown state {raw_status!r}", hint="upgrade llmbulk")
    dest = job.dest
    refs: dict[str, str] = {}
    if dest is not None and dest.file_name:
        refs["file_name"] = dest.file_name
    elif dest is not None and dest.inlined_responses is not None:
        refs["inline"] = "1"
    ended = job.end_time or job.update_time
    ended_at = ended.timestamp() if ended else None
    error = error_code = None
    if state is BatchState.ENDED and not refs:
        if ended_at is None or now - ended_at < FINALIZE_GRACE_SECONDS:
            state = BatchState.FINALIZING  # output not visible yet: keep polling
        else:
            state = BatchState.FAILED
            error_code = "no_output"
            error = (
                f"Gemini reports the batch {raw_status} but no output appeared within "
                f"{FINALIZE_GRACE_SECONDS / 60:.0f} minutes"
            )
    raw = job.model_dump(
        mode="json",
        exclude_none=True,
        exclude={"dest": {"inlined_responses", "inlined_embed_content_responses"}},
    )
    return BatchStatus(
        batch_id=name,
        state=state,
        raw_status=raw_status,
        counts_known=False,  # the SDK drops metadata.batchStats
        result_refs=refs,
        error=error,
        error_code=error_code,
        ended_at=ended_at if state.terminal else None,
        raw=raw,
    )


def listing_complete(job: Any) -> bool:
    """Whether a job as the batch listing shows it has everything a poll needs.

    The listing leaves out inlined responses (providers.md §3.1), so an inline job that ended (or
    expired, or was cancelled, keeping what finished) appears without its output there; a get shows
    it whole. A file job lists its `responsesFile`.
    """
    if STATES.get(_state_value(job.state) or "") not in RESULT_STATES:
        return True
    return job.dest is not None and bool(job.dest.file_name)


def _state_value(state: Any) -> str | None:
    if state is None:
        return None
    return str(getattr(state, "value", state))
