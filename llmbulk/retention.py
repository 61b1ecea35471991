"""How long each provider keeps an ended batch's results, and the warning when uncollected ones near that end.

Light: `status` shows the warning on its quick path, so nothing heavy is imported here.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from llmbulk.views import BatchView, JobStatus

HOUR = 3600
DAY = 24 * HOUR
WARN_WITHIN = 72 * HOUR  # warn when results at the provider expire within this long

# provider → (the time the clock starts from, seconds the results are kept after it)
RETENTION: dict[str, tuple[str, int]] = {
    # Output and error files: llmbulk sets output_expires_after 30 days (profiles.py; the openai SDK 3.57
    # docstring: anchored at the file's creation, i.e. when the batch ends). 30 days is also the
    # default for batch files (providers.md, "purpose=batch files expire after 30 days by default").
    "openai": ("ended", 30 * DAY),
    # Message Batches results "are available for 29 days after creation" (docs.anthropic.com,
    # batch processing; providers.md "Result retention": 29 days after creation, then archived_at).
    "anthropic": ("created", 29 * DAY),
    # The result file is a Files API file, made when the batch ends: "Files are stored for 48 hours"
    # (ai.google.dev, Files API; providers.md "Result retention": File API files 48 h).
    "gemini": ("ended", 2 * DAY),
}
# Vendors of the OpenAI adapter other than OpenAI itself publish no retention llmbulk could verify:
# no warning is made for them rather than a wrong one.


def expires_at(provider: str, batch: BatchView) -> float | None:
    """When this batch's results expire at the provider, if the provider says and the batch has them."""
    rule = RETENTION.get(provider)
    if rule is None:
        return None
    start = batch.ended_at if rule[0] == "ended" else batch.created_at
    return None if start is None else start + rule[1]


def uncollected_expiring(status: JobStatus, now: float | None = None) -> list[tuple[BatchView, float]]:
    """Ended batches whose results are not collected yet and expire at the provider within `WARN_WITHIN`."""
    now = time.time() if now is None else now
    found: list[tuple[BatchView, float]] = []
    for batch in status.batches:
        if batch.collected or batch.state not in ("ended", "expired", "cancelled"):
            continue  # failed and requeued batches have no results to lose
        when = expires_at(status.job.provider, batch)
        if when is not None and when - now <= WARN_WITHIN:
            found.append((batch, when))
    return sorted(found, key=lambda pair: pair[1])


def expiry_warning(status: JobStatus, now: float | None = None) -> str | None:
    """One line naming how many ended batches' results expire soon at the provider, and what to run."""
    now = time.time() if now is None else now
    expiring = uncollected_expiring(status, now)
    if not expiring:
        return None
    first = expiring[0][1]
    left = first - now
    when = datetime.fromtimestamp(first, UTC).strftime("%Y-%m-%d %H:%M UTC")
    due = "have expired" if left <= 0 else f"expire in {left / HOUR:.0f} h"
    return (
        f"{len(expiring)} ended batch(es) of job {status.job.id} are not collected and their results at"
        f" {status.job.provider} {due} (first at {when}): run `llmbulk collect {status.job.id}`"
    )
