"""What sending one job's shards works with: the `Sending` context, a batch's labels, a shard as input.

Every fenced call of the send path (`batches`, `batch_copies`) goes through one `Sending`: the
job's state, its provider, the lease each side effect is fenced by and the event emitter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmbulk.leases import JobLease
from llmbulk.providers.base import BatchProvider, ShardInput
from llmbulk.store import Store
from llmbulk.store.schema import Job, Shard

Emit = Callable[[str, dict[str, Any]], None]


def labels_for(job_id: str, shard_id: str) -> dict[str, str]:
    """Labels stamped on every batch so a crashed run can find it again."""
    return {"llmbulk_job": job_id, "llmbulk_shard": shard_id}


def shard_input(home: Path, shard: Shard) -> ShardInput:
    return ShardInput(shard.id, home / shard.path, shard.n_items, shard.n_bytes, shard.sha256)


@dataclass(frozen=True, slots=True)
class Upload:
    """One shard upload a send round made: its copies the SDK may have retried are swept at the round's end."""

    shard: Shard
    labels: dict[str, str]
    since: float  # the create intent's time: no copy of this upload is older
    file_id: str  # the copy the intent recorded


@dataclass(frozen=True, slots=True)
class Sending:
    """What sending one job's shards needs: its state, its provider, the lease every call is fenced by."""

    store: Store
    provider: BatchProvider
    job: Job
    home: Path
    lease: JobLease
    inflight_window: float  # how long another holder's create may still be in flight
    emit: Emit
    uploads: list[Upload] = field(default_factory=list)  # this round's, swept for stray copies at its end
