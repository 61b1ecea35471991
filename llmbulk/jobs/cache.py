"""`cache`: what the answers earlier jobs paid for hold and have saved, and forgetting some of them."""

from __future__ import annotations

import time
from typing import Any

from llmbulk.config import Settings
from llmbulk.errors import UsageError
from llmbulk.progress import NO_PROGRESS
from llmbulk.session import open_session


def cache_stats(*, settings: Settings | None = None) -> dict[str, Any]:
    """Entries, bytes of answer text, hits, dollars not spent, oldest and newest answer."""
    with open_session(settings, NO_PROGRESS) as session:
        stats = session.store.answer_stats()
        stats["hits"], stats["saved_usd"] = session.store.reuse_totals()
        return stats


def prune_cache(older_than: float | None = None, job_id: str | None = None, *, settings: Settings | None = None) -> int:
    """Forget answers recorded more than `older_than` seconds ago and/or sent by one job; returns how many.

    The jobs keep their results; later jobs only stop reusing them.
    """
    if older_than is None and job_id is None:
        raise UsageError("say which answers to forget", hint="pass --older-than 30d and/or --job J (or --all)")
    with open_session(settings, NO_PROGRESS) as session:
        if job_id is not None:
            session.store.get_job(job_id)  # an unknown job is an error, not "0 pruned"
        with session.store.tx() as tx:
            return tx.prune_answers(None if older_than is None else time.time() - older_than, job_id)
