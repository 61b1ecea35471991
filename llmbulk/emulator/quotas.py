"""The providers' account limits, enforced by the emulator at create (configurable per test, #21).

A fault plan's `quotas` sets them: enqueued tokens per model (OpenAI creates the batch and fails it
in validation with `token_limit_exceeded`, as the real API does; the others refuse the create with
their 429 shape), batch creations per hour and concurrent batches (429: Gemini `RESOURCE_EXHAUSTED`,
Anthropic `rate_limit_error`, OpenAI `rate_limit_exceeded`). A batch's enqueued tokens are its input
bytes at ~4 characters a token. The most tokens ever enqueued at once per model is kept in
`quota_stats.json`, for tests to compare with the limit they configured.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, Field

ANY_MODEL = "*"
ENQUEUED_PHASES = ("validating", "running", "finalizing", "cancelling")
HOUR = 3600.0
STATS = "quota_stats.json"


class QuotaPlan(BaseModel):
    """Account limits the emulator enforces (none by default)."""

    enqueued_tokens: dict[str, int] = Field(
        default_factory=dict, description="Enqueued-token limit per model ('*': every model)."
    )
    creations_per_hour: int | None = Field(default=None, description="Batch creations per rolling hour.")
    concurrent_batches: int | None = Field(default=None, description="Batches in flight at once, per provider.")
    files: int | None = Field(
        default=None, description="Azure: batch input files (with expiry) kept per resource; default 10,000."
    )


class QuotaRefused(Exception):
    """A create the account's limits refuse: answered with the provider's 429."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Admission:
    tokens: int
    token_limit: bool  # OpenAI: created, then failed in validation with token_limit_exceeded


def batch_tokens(input_path: Path | None) -> int:
    if input_path is None or not input_path.exists():
        return 0
    return math.ceil(input_path.stat().st_size / 4.0)


def admit(
    plan: QuotaPlan,
    provider: str,
    model: str,
    tokens: int,
    others: list[dict[str, Any]],
    phase: Callable[[dict[str, Any]], str],
    now: float,
    fails_in_validation: bool,
) -> Admission:
    """Whether the account takes one more batch; raises QuotaRefused with the provider's message."""
    mine = [b for b in others if b["provider"] == provider]
    live = [b for b in mine if phase(b) in ENQUEUED_PHASES and not _refused(b)]
    if plan.concurrent_batches is not None and len(live) >= plan.concurrent_batches:
        raise QuotaRefused(f"Too many concurrent batch jobs: at most {plan.concurrent_batches} may run at once.")
    made = [b for b in mine if b["created_at"] > now - HOUR]
    if plan.creations_per_hour is not None and len(made) >= plan.creations_per_hour:
        raise QuotaRefused(f"Batch creation rate limit reached: at most {plan.creations_per_hour} per hour.")
    limit = plan.enqueued_tokens.get(model, plan.enqueued_tokens.get(ANY_MODEL))
    if limit is not None:
        enqueued = sum(b.get("enqueued_tokens", 0) for b in live if _model(b) == model)
        if enqueued + tokens > limit:
            if fails_in_validation:
                return Admission(tokens, token_limit=True)
            raise QuotaRefused(f"Enqueued token limit reached for {model}: {enqueued + tokens} > {limit}.")
    return Admission(tokens, token_limit=False)


def _refused(batch: dict[str, Any]) -> bool:
    return bool(batch.get("token_limit") or batch.get("fail_validation") or batch.get("validation_errors"))


def _model(batch: dict[str, Any]) -> str:
    return str(batch.get("model") or "")


def record_enqueued(state_dir: Path, model: str, others: list[dict[str, Any]], phase: Callable[[dict[str, Any]], str],
                    added: dict[str, Any]) -> None:  # fmt: skip
    """After an accepted create (under the emulator's lock): the most tokens enqueued at once, per model."""
    live = [b for b in others if phase(b) in ENQUEUED_PHASES and not _refused(b) and _model(b) == model]
    now_enqueued = sum(b.get("enqueued_tokens", 0) for b in live) + added.get("enqueued_tokens", 0)
    stats = max_enqueued_tokens(state_dir)
    if now_enqueued > stats.get(model, 0):
        stats[model] = now_enqueued
        tmp = state_dir / f".{STATS}.{os.getpid()}.tmp"
        tmp.write_bytes(orjson.dumps(stats))
        os.replace(tmp, state_dir / STATS)


def max_enqueued_tokens(state_dir: Path) -> dict[str, int]:
    """The most tokens the emulator saw enqueued at once, per model (a batch's tokens: input bytes / 4)."""
    path = state_dir / STATS
    return dict(orjson.loads(path.read_bytes())) if path.exists() else {}
