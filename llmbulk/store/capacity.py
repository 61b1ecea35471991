"""The capacity aggregate: scopes' limits, the room each create intent reserves, and the quota queue (#21).

A reservation is made in the fenced transaction that records the create intent, with the scope's
row locked (SQLite's `BEGIN IMMEDIATE`, PostgreSQL's `FOR UPDATE`), so runners sharing the database
never reserve the same room twice. Room is held while the intent's batch is live (creating,
validating, running, finalizing, cancelling) and given back by whatever ends it: no release step
can be missed by a crash. The policy (limits, fit, order) is `llmbulk.capacity`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from llmbulk import capacity
from llmbulk.capacity import Limits, QuotaWait, Scope
from llmbulk.store.unit import Reading, Unit

LIMIT_COLUMNS = ("enqueued_tokens", "active_batches", "creations_per_hour", "files")


@dataclass(frozen=True, slots=True)
class Reservation:
    """One shard asking for room in its scope, for the create intent `batch_id`."""

    scope: Scope
    job_id: str
    shard_id: str
    batch_id: str
    tokens: int
    priority: int
    submitted_at: float
    stale_after: float  # waits not renewed for this long are passed over (their runner is gone)
    uploads: bool = True  # the shard's input goes up as a file (counts against the scope's files limit)


@dataclass(frozen=True, slots=True)
class ScopeReport:
    """One scope as `llmbulk limits` lists it."""

    scope: Scope
    limits: Limits  # what holds now
    set_limits: Limits  # `limits set`, or the provider's defaults
    observed_tokens: int | None
    observed_batches: int | None
    usage: capacity.Usage
    queued_jobs: int
    queued_tokens: int
    blocked_until: float | None


class CapacityWrites(Unit):
    """Write operations on capacity scopes, in the unit of work."""

    def reserve_capacity(self, ask: Reservation, now: float | None = None) -> str | None:
        """Reserve room for the shard if its job is next in the scope's queue and it fits.

        Returns None when reserved, else why it waits (its place in the queue is then kept).
        """
        now, key = time.time() if now is None else now, ask.scope.key
        row = self._locked_scope(ask.scope, now)
        defaults = capacity.DEFAULTS.get(ask.scope.provider, Limits())
        count_files = ask.uploads and capacity.files_limit(row, defaults) is not None
        usage = capacity.usage_of(self._records, ask.scope.key, row.get("observed_at"), now, count_files)
        limits = capacity.effective_limits(row, defaults, usage.successes)
        ahead = self._ahead_of(ask, now)
        reason = f"{ahead} job(s) ahead in the queue" if ahead else None
        reason = reason or capacity.refusal(limits, usage, ask.tokens, row.get("blocked_until"), now, ask.uploads)
        if reason is None:
            self._run(
                "INSERT INTO capacity_grants (batch_id, scope, job_id, shard_id, tokens, granted_at)"
                " VALUES (:b, :s, :j, :sh, :t, :now)",
                {"b": ask.batch_id, "s": key, "j": ask.job_id, "sh": ask.shard_id, "t": ask.tokens, "now": now},
            )
            self._run("DELETE FROM capacity_waits WHERE scope = :s AND job_id = :j", {"s": key, "j": ask.job_id})
            return None
        self._run(
            "INSERT INTO capacity_waits (scope, job_id, shard_id, tokens, priority, submitted_at, since, seen_at)"
            " VALUES (:s, :j, :sh, :t, :p, :sub, :now, :now) ON CONFLICT (scope, job_id) DO UPDATE SET"
            " shard_id = excluded.shard_id, tokens = excluded.tokens, priority = excluded.priority,"
            " seen_at = excluded.seen_at",
            {"s": ask.scope.key, "j": ask.job_id, "sh": ask.shard_id, "t": ask.tokens, "p": ask.priority,
             "sub": ask.submitted_at, "now": now},
        )  # fmt: skip
        return reason

    def _ahead_of(self, ask: Reservation, now: float) -> int:
        """How many live waiting jobs the scope serves before this one.

        Order: higher priority, then the job served longest ago (never served first), then
        submission order: one shard per job per turn, and every job's turn comes.
        """
        last_grant = "(SELECT MAX(g.granted_at) FROM capacity_grants g WHERE g.scope = :s AND g.job_id = {job})"
        others = self._records(
            "SELECT w.job_id, w.priority, w.submitted_at, " + last_grant.format(job="w.job_id") + " AS last"
            " FROM capacity_waits w JOIN jobs j ON j.id = w.job_id WHERE w.scope = :s AND w.job_id <> :me"
            " AND w.seen_at > :fresh AND j.state = 'active' AND j.cancel_requested IS NULL",
            s=ask.scope.key, me=ask.job_id, fresh=now - ask.stale_after,
        )  # fmt: skip
        mine = self._records("SELECT " + last_grant.format(job=":me") + " AS last", s=ask.scope.key, me=ask.job_id)
        me = _turn(ask.priority, mine[0]["last"], ask.submitted_at, ask.job_id)
        return sum(1 for w in others if _turn(w["priority"], w["last"], w["submitted_at"], w["job_id"]) < me)

    def leave_capacity_queue(self, job_id: str) -> None:
        """The job waits for no quota now (its own pacing holds it, or nothing is left to send)."""
        self._run("DELETE FROM capacity_waits WHERE job_id = :j", {"j": job_id})

    def observe_quota_refusal(
        self, scope: Scope, batch_id: str, at: float, now: float | None = None, files: bool = False
    ) -> None:
        """The provider refused batch `batch_id` for quota (at its create, or in validation): lower the
        scope's observed limits to what was in flight when it was created, `at`; with nothing in flight
        then, or when it refused the upload (`files`: a file quota, which batches in flight say nothing
        about), no create is tried for a while."""
        now = time.time() if now is None else now
        self._locked_scope(scope, now)
        usage = self._records(capacity.USAGE_AT_SQL, s=scope.key, at=at, b=batch_id)[0]
        values: dict[str, Any] = {"observed_at": now, "updated_at": now}
        if usage["batches"] and not files:
            values.update(observed_tokens=int(usage["tokens"]), observed_batches=int(usage["batches"]))
        else:
            values["blocked_until"] = now + capacity.REFUSAL_BACKOFF
        sets = ", ".join(f"{k} = :{k}" for k in values)
        self._run(f"UPDATE capacity_scopes SET {sets} WHERE scope = :_s", {**values, "_s": scope.key})

    def set_capacity_limits(self, scope: Scope, limits: dict[str, int | None]) -> None:
        """`llmbulk limits set`: the given limits replace the defaults; what a refusal observed is forgotten."""
        now = time.time()
        self._locked_scope(scope, now)
        values: dict[str, Any] = {k: v for k, v in limits.items() if k in LIMIT_COLUMNS}
        values.update(observed_tokens=None, observed_batches=None, observed_at=None, blocked_until=None, updated_at=now)
        sets = ", ".join(f"{k} = :{k}" for k in values)
        self._run(f"UPDATE capacity_scopes SET {sets} WHERE scope = :_s", {**values, "_s": scope.key})

    def _locked_scope(self, scope: Scope, now: float) -> dict[str, Any]:
        self._run(
            "INSERT INTO capacity_scopes (scope, provider, account, model, updated_at)"
            " VALUES (:s, :p, :a, :m, :t) ON CONFLICT (scope) DO NOTHING",
            {"s": scope.key, "p": scope.provider, "a": scope.account, "m": scope.model, "t": now},
        )
        lock = " FOR UPDATE" if self._conn.dialect.name == "postgresql" else ""  # SQLite: BEGIN IMMEDIATE already
        return self._records(f"SELECT * FROM capacity_scopes WHERE scope = :s{lock}", s=scope.key)[0]

    def _records(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        return [dict(r) for r in self._conn.execute(text(sql), params).mappings()]


def _turn(priority: int, last_grant: float | None, submitted_at: float, job_id: str) -> tuple[Any, ...]:
    return (-int(priority), last_grant is not None, last_grant or 0.0, float(submitted_at), job_id)


def _unobserved(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "observed_tokens": None, "observed_batches": None}


class CapacityReads(Reading):
    """Reads of capacity scopes."""

    def capacity_scopes(self) -> list[ScopeReport]:
        now = time.time()
        with self._read() as conn:

            def records(sql: str, **params: Any) -> list[dict[str, Any]]:
                return [dict(r) for r in conn.execute(text(sql), params).mappings()]

            reports = []
            for row in records("SELECT * FROM capacity_scopes ORDER BY provider, account, model"):
                scope = Scope(row["provider"], row["account"], row["model"])
                defaults = capacity.DEFAULTS.get(scope.provider, Limits())
                usage = capacity.usage_of(records, scope.key, row["observed_at"], now)
                queued = records(
                    "SELECT COUNT(*) AS n, COALESCE(SUM(tokens), 0) AS t FROM capacity_waits WHERE scope = :s",
                    s=scope.key,
                )[0]
                reports.append(
                    ScopeReport(
                        scope=scope,
                        limits=capacity.effective_limits(row, defaults, usage.successes),
                        set_limits=capacity.effective_limits(_unobserved(row), defaults, 0),
                        observed_tokens=row["observed_tokens"],
                        observed_batches=row["observed_batches"],
                        usage=usage,
                        queued_jobs=int(queued["n"]),
                        queued_tokens=int(queued["t"]),
                        blocked_until=row["blocked_until"],
                    )
                )
            return reports

    def capacity_grants(self) -> list[tuple[str, float]]:
        """(job id, when) of every reservation made, oldest first."""
        with self._read() as conn:
            rows = conn.execute(text("SELECT job_id, granted_at FROM capacity_grants ORDER BY granted_at"))
            return [(str(job), float(at)) for job, at in rows]

    def waiting_for_quota(self, job_id: str) -> bool:
        with self._read() as conn:
            found = conn.execute(text("SELECT 1 FROM capacity_waits WHERE job_id = :j"), {"j": job_id}).first()
            return found is not None

    def quota_wait(self, job_id: str) -> QuotaWait | None:
        """The job's shards waiting for room in their scope, or None."""
        with self._read() as conn:

            def records(sql: str, **params: Any) -> list[dict[str, Any]]:
                return [dict(r) for r in conn.execute(text(sql), params).mappings()]

            return capacity.quota_wait(records, job_id)
