"""Capacity scopes: what a batch counts against at its provider, and whether a shard may go now (#21).

A scope is one provider account (provider, base URL) and model. Its limits are the provider's
published defaults (`DEFAULTS`, data with sources), overridden per database by `llmbulk limits set`,
and lowered to what was in use when the provider refused a create for quota (the observed limit,
which recovers a quarter per batch that succeeds after it). Every runner of the database reserves
room in the scope in the transaction that records its create intent (`store/capacity.py`); a shard
that does not fit waits in the scope's queue, served one shard per job per turn, highest priority
first, then the job served longest ago, then submission order.

Only the standard library here: `status` reads the queue through the quick reader too.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

CHARS_PER_TOKEN = 4.0  # as costs.CHARS_PER_TOKEN (not imported: that module is heavier)
LIVE = "('creating', 'validating', 'running', 'finalizing', 'cancelling')"
HOUR = 3600.0
RECOVERY_PER_SUCCESS = 0.25  # the observed limit regains a quarter for each batch that ends well
REFUSAL_BACKOFF = 30.0  # seconds no create is tried after a refusal with nothing of ours in flight
STALE_WAIT = 120.0  # a wait its runner has not renewed for this long (plus the poll interval) is passed over
# Every input llmbulk uploads expires within this (profiles' upload_expiry; Gemini's files live 48 h).
FILE_LIFETIME = 14 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Limits:
    """Limits of one scope; None: no limit known."""

    enqueued_tokens: int | None = None
    active_batches: int | None = None
    creations_per_hour: int | None = None
    files: int | None = None  # input files kept at the provider account (every model of it counts)


# Published limits per provider. Enqueued-token limits depend on the model and the account's tier and
# are shown only in the account's settings, so none is assumed: set them with `llmbulk limits set`.
DEFAULTS: dict[str, Limits] = {
    # platform.openai.com/docs/guides/batch#rate-limits: enqueued prompt tokens per model, per tier
    # (platform settings page), no published cap on creations (providers.md, "Rate limits on creation").
    "openai": Limits(),
    # docs.anthropic.com/en/api/rate-limits#message-batches-api: the queue limit counts requests, not
    # tokens or batches; not modelled here.
    "anthropic": Limits(),
    # ai.google.dev/gemini-api/docs/rate-limits (Batch API): "Concurrent batch requests: 100"; the
    # enqueued-token limits per model and tier are not modelled (providers.md marks them unverified).
    "gemini": Limits(active_batches=100),
    # Azure OpenAI, includes/global-batch-limits.md: 500 batch input files per resource without expiry,
    # 10,000 with expiry set; llmbulk's Azure uploads always set it (profiles.py).
    "azure": Limits(files=10_000),
}


@dataclass(frozen=True, slots=True)
class Scope:
    provider: str
    account: str
    model: str

    @property
    def key(self) -> str:
        return f"{self.provider}|{self.account}|{self.model}"


def scope_for(provider: str, model: str, base_url: str | None, emulated: bool) -> Scope:
    """The scope a job's batches count against (the account is its base URL; the key is never used)."""
    account = base_url.rstrip("/") if base_url else ("emulator" if emulated else "default")
    return Scope(provider, account, model)


def scope_of(job: Any) -> Scope:
    """The scope of a job (the store's row: provider, model, spec.base_url, emulated)."""
    return scope_for(job.provider, job.model, job.spec.base_url, job.emulated)


class QueuedForQuota(Exception):
    """The shard's scope has no room for it now (or other jobs are ahead): it waits in the queue."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def shard_tokens(n_bytes: int) -> int:
    """Estimated enqueued tokens of a shard: its request bytes at ~4 characters a token (an upper bound
    for the prompt, which is only part of each request line)."""
    return math.ceil(n_bytes / CHARS_PER_TOKEN)


@dataclass(frozen=True, slots=True)
class Usage:
    """What a scope has in flight now."""

    tokens: int
    batches: int
    creations: int  # in the last hour
    oldest_creation: float | None
    successes: int  # batches ended well since the observed limit was last lowered
    oldest_live: float | None
    mean_duration: float | None  # of the scope's batches that ended well
    files: int = 0  # input files llmbulk has at the provider (uploaded or about to be), not yet deleted or expired


def effective_limits(row: dict[str, Any], defaults: Limits, successes: int) -> Limits:
    """The limits that hold now: the set ones (or the defaults), lowered to the recovering observed ones."""
    tokens = _pick(row.get("enqueued_tokens"), defaults.enqueued_tokens)
    batches = _pick(row.get("active_batches"), defaults.active_batches)
    return Limits(
        enqueued_tokens=_lowered(tokens, row.get("observed_tokens"), successes),
        active_batches=_lowered(batches, row.get("observed_batches"), successes),
        creations_per_hour=_pick(row.get("creations_per_hour"), defaults.creations_per_hour),
        files=files_limit(row, defaults),
    )


def files_limit(row: dict[str, Any], defaults: Limits) -> int | None:
    """The scope's files limit, set or the provider's default (no refusal ever lowers it)."""
    return _pick(row.get("files"), defaults.files)


def _pick(value: Any, default: int | None) -> int | None:
    return default if value is None else int(value)


def _lowered(ceiling: int | None, observed: Any, successes: int) -> int | None:
    if observed is None:
        return ceiling
    recovered = int(int(observed) * (1 + RECOVERY_PER_SUCCESS * successes))
    return recovered if ceiling is None else min(ceiling, recovered)


def refusal(
    limits: Limits, usage: Usage, tokens: int, blocked_until: float | None, now: float, uploads: bool = True
) -> str | None:
    """Why a shard of `tokens` (with an input file to upload, if `uploads`) cannot be created now, or None.

    A shard larger than the whole token limit still goes once nothing else is in flight: waiting
    would never make room for it, and the provider decides.
    """
    if blocked_until is not None and now < blocked_until:
        return "the provider refused a create moments ago"
    if limits.active_batches is not None and usage.batches + 1 > limits.active_batches:
        return f"{usage.batches} of {limits.active_batches} batches in flight"
    if limits.creations_per_hour is not None and usage.creations + 1 > limits.creations_per_hour:
        return f"{usage.creations} of {limits.creations_per_hour} creations in the last hour"
    if uploads and limits.files is not None and usage.files + 1 > limits.files:
        return f"{usage.files} of {limits.files} input files at the provider (collect deletes them; so does gc --apply)"
    if limits.enqueued_tokens is not None and usage.tokens and usage.tokens + tokens > limits.enqueued_tokens:
        return f"{usage.tokens:,} + {tokens:,} tokens over the {limits.enqueued_tokens:,} enqueued-token limit"
    return None


def next_slot(limits: Limits, usage: Usage, blocked_until: float | None, now: float) -> float | None:
    """When room is likely (epoch seconds), from the creations window and how long batches take; None: unknown."""
    candidates = [blocked_until or now]
    if limits.creations_per_hour is not None and usage.creations >= limits.creations_per_hour:
        candidates.append((usage.oldest_creation or now) + HOUR)
    full = (
        (limits.active_batches is not None and usage.batches >= limits.active_batches)
        or (limits.enqueued_tokens is not None and usage.tokens > 0)
        or (limits.files is not None and usage.files >= limits.files)
    )
    if full:
        if usage.oldest_live is None or usage.mean_duration is None:
            return None if len(candidates) == 1 else max(candidates)
        candidates.append(usage.oldest_live + usage.mean_duration)
    return max(max(candidates), now)


# ---- the queue as `status` shows it ----------------------------------------------------------------

Records = Callable[..., list[dict[str, Any]]]  # (sql, **params) -> rows as dicts

USAGE_SQL = (
    "SELECT COALESCE(SUM(g.tokens), 0) AS tokens, COUNT(*) AS batches, MIN(b.created_at) AS oldest_live"
    f" FROM capacity_grants g JOIN batches b ON b.id = g.batch_id WHERE g.scope = :s AND b.state IN {LIVE}"
)
CREATIONS_SQL = (
    "SELECT COUNT(*) AS n, MIN(g.granted_at) AS oldest FROM capacity_grants g JOIN batches b ON b.id = g.batch_id"
    " WHERE g.scope = :s AND g.granted_at > :since AND (b.provider_batch_id IS NOT NULL OR b.state = 'creating')"
)
ENDED_SQL = (
    "SELECT COUNT(*) AS n, AVG(b.ended_at - b.created_at) AS mean FROM capacity_grants g"
    " JOIN batches b ON b.id = g.batch_id WHERE g.scope = :s AND b.state = 'ended' AND b.ended_at > :since"
)
# Input files at the provider: uploaded and not yet deleted (collect, gc) nor expired, and the live
# intents that may still upload one; a file shared by a shard's retried intents counts once. Files
# belong to the account (an Azure resource), not to one model: every scope of the account counts.
# The account's scopes are the key range [provider|account|, provider|account}) of the grants' index
# ('}' follows '|'), and only grants younger than an upload's lifetime can hold a file still there.
FILES_SQL = (
    "SELECT COUNT(DISTINCT b.input_file_id) AS kept, COUNT(DISTINCT CASE WHEN b.input_file_id IS NULL"
    " AND b.state = 'creating' THEN b.id END) AS coming FROM capacity_grants g JOIN batches b ON b.id = g.batch_id"
    " WHERE g.scope >= :account AND g.scope < :after AND g.granted_at > :expired AND b.files_deleted_at IS NULL"
)
# In flight at a past moment `at` (when a refused batch was created), the refused ones apart.
USAGE_AT_SQL = (
    "SELECT COALESCE(SUM(g.tokens), 0) AS tokens, COUNT(*) AS batches FROM capacity_grants g"
    " JOIN batches b ON b.id = g.batch_id WHERE g.scope = :s AND g.granted_at <= :at AND b.id <> :b"
    f" AND b.state NOT IN ('requeued', 'failed') AND (b.state IN {LIVE} OR b.ended_at > :at)"
)
WAIT_SQL = "SELECT * FROM capacity_waits WHERE job_id = :j"
SCOPE_SQL = "SELECT * FROM capacity_scopes WHERE scope = :s"
UNSENT_TOKENS_SQL = (
    "SELECT COUNT(*) AS n, COALESCE(SUM(s.n_bytes), 0) AS bytes FROM shards s WHERE s.job_id = :j AND NOT EXISTS ("
    " SELECT 1 FROM batches b WHERE b.shard_id = s.id AND b.state NOT IN ('requeued', 'creating'))"
)


def usage_of(records: Records, scope: str, observed_at: float | None, now: float, count_files: bool = True) -> Usage:
    """What the scope has in use; its account's input files are counted only if `count_files` (a
    files limit applies), as that query reads the account's grants of the last two weeks."""
    live = records(USAGE_SQL, s=scope)[0]
    made = records(CREATIONS_SQL, s=scope, since=now - HOUR)[0]
    ended_since = records(ENDED_SQL, s=scope, since=observed_at or now)[0]
    ended_ever = records(ENDED_SQL, s=scope, since=0.0)[0]
    files = {"kept": 0, "coming": 0}
    if count_files:
        account = scope.rsplit("|", 1)[0]  # provider|account of provider|account|model
        files = records(FILES_SQL, account=account + "|", after=account + "}", expired=now - FILE_LIFETIME)[0]
    return Usage(
        tokens=int(live["tokens"] or 0),
        batches=int(live["batches"] or 0),
        creations=int(made["n"] or 0),
        oldest_creation=made["oldest"],
        successes=int(ended_since["n"] or 0) if observed_at is not None else 0,
        oldest_live=live["oldest_live"],
        mean_duration=None if ended_ever["mean"] is None else float(ended_ever["mean"]),
        files=int(files["kept"] or 0) + int(files["coming"] or 0),
    )


@dataclass(frozen=True, slots=True)
class QuotaWait:
    """A job's shards waiting for room in their scope, as `status` shows them."""

    scope: str
    shards: int
    tokens: int
    since: float
    next_slot: float | None  # epoch seconds; None: when a batch in flight ends
    reason: str | None

    def line(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        when = "when a batch in flight ends" if self.next_slot is None else f"~{_span(self.next_slot - now)}"
        return f"queued for quota: {self.shards} shard(s), {_tokens(self.tokens)} tokens, next slot {when}"

    def as_json(self) -> dict[str, Any]:
        return {
            "scope": self.scope, "shards": self.shards, "tokens": self.tokens, "since": self.since,
            "next_slot": self.next_slot, "reason": self.reason,
        }  # fmt: skip


def quota_wait(records: Records, job_id: str, now: float | None = None) -> QuotaWait | None:
    """The job's place in its scope's queue, or None when it waits for no quota."""
    now = time.time() if now is None else now
    waits = records(WAIT_SQL, j=job_id)
    if not waits:
        return None
    wait = waits[0]
    rows = records(SCOPE_SQL, s=wait["scope"])
    row = rows[0] if rows else {}
    defaults = DEFAULTS.get(str(row.get("provider")), Limits())
    usage = usage_of(records, wait["scope"], row.get("observed_at"), now, files_limit(row, defaults) is not None)
    limits = effective_limits(row, defaults, usage.successes)
    unsent = records(UNSENT_TOKENS_SQL, j=job_id)[0]
    if not unsent["n"]:
        return None
    return QuotaWait(
        scope=wait["scope"],
        shards=int(unsent["n"]),
        tokens=shard_tokens(int(unsent["bytes"])),
        since=float(wait["since"]),
        next_slot=next_slot(limits, usage, row.get("blocked_until"), now),
        reason=refusal(limits, usage, int(wait["tokens"]), row.get("blocked_until"), now),
    )


def _tokens(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    return f"{n / 1000:.1f}K" if n >= 1000 else str(n)


def _span(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
