"""The jobs aggregate: job rows, their settings and state, and the lease with its fencing token.

Taking the lease from anyone else increments its generation (the fencing token); `renew_lease`
is the fence check, run in the same transaction that records a side effect's intent.
"""

from __future__ import annotations

import time

from sqlalchemy import text

from llmbulk.errors import NotFoundError
from llmbulk.models import Fence, JobSpec, JobState
from llmbulk.store import queries
from llmbulk.store.schema import Job
from llmbulk.store.unit import Reading, Unit, insert_sql

_JOB_COLUMNS = list(Job.model_fields)


class JobWrites(Unit):
    """Write operations on jobs and their leases, in the unit of work."""

    def add_job(self, job: Job) -> None:
        """Insert a job row."""
        self._run(insert_sql("jobs", _JOB_COLUMNS), job.model_dump())

    def record_pack(
        self, job_id: str, *, n_items: int, input_sha256: str | None, prompt_chars: int, estimate_json: str
    ) -> None:
        """What packing found: the item count, the input's hash, its prompt size and the cost estimate."""
        self._set_job(
            job_id, n_items=n_items, input_sha256=input_sha256, prompt_chars=prompt_chars, estimate_json=estimate_json
        )

    def set_job_state(self, job_id: str, state: JobState) -> None:
        self._set_job(job_id, state=JobState(state).value)  # the plain value: drivers bind str, not enums

    def set_max_attempts(self, job_id: str, max_attempts: int) -> None:
        self._set_job(job_id, max_attempts=max_attempts)

    def set_job_spec(self, job_id: str, spec: JobSpec) -> None:
        self._set_job(job_id, spec_json=spec.to_stored())

    def set_out_path(self, job_id: str, out_path: str) -> None:
        self._set_job(job_id, out_path=out_path)

    def request_cancel(self, job_id: str) -> None:
        """Ask whichever process holds the job to cancel it at its next step."""
        self._set_job(job_id, cancel_requested=time.time())

    def clear_cancel_request(self, job_id: str) -> None:
        self._set_job(job_id, cancel_requested=None)

    def _set_job(self, job_id: str, **values: object) -> None:
        sets = ", ".join(f"{k} = :{k}" for k in values)
        self._run(f"UPDATE jobs SET {sets} WHERE id = :_id", {**values, "_id": job_id})

    def delete_job(self, job_id: str) -> None:
        """Remove a job that never got past packing (nothing was sent)."""
        for table in ("attempts", "batches", "shards", "items"):
            self._run(f"DELETE FROM {table} WHERE job_id = :j", {"j": job_id})
        self._run("DELETE FROM jobs WHERE id = :j", {"j": job_id})

    def claim_lease(self, job_id: str, owner: str, ttl: float) -> int | None:
        """Take or renew the job's lease if it is free, expired or already ours; returns its generation.

        Taking it from anyone else (an expired holder included) increments the generation, the
        fencing token every side effect is checked against; renewing our own keeps it.
        """
        now = time.time()
        result = self._run(
            "UPDATE jobs SET lease_gen = CASE WHEN lease_owner = :o THEN lease_gen ELSE lease_gen + 1 END,"
            " lease_owner = :o, lease_until = :u WHERE id = :j"
            " AND (lease_owner IS NULL OR lease_until < :now OR lease_owner = :o)",
            {"o": owner, "u": now + ttl, "j": job_id, "now": now},
        )
        return self._lease_gen(job_id) if (result.rowcount or 0) == 1 else None

    def take_over_lease(self, job_id: str, dead_owner: str, owner: str, ttl: float) -> int | None:
        """Take a lease from a holder known to be dead (atomic: only if it is still theirs)."""
        result = self._run(
            "UPDATE jobs SET lease_owner = :o, lease_until = :u, lease_gen = lease_gen + 1"
            " WHERE id = :j AND lease_owner = :d",
            {"o": owner, "u": time.time() + ttl, "j": job_id, "d": dead_owner},
        )
        return self._lease_gen(job_id) if (result.rowcount or 0) == 1 else None

    def _lease_gen(self, job_id: str) -> int:
        return int(self._run("SELECT lease_gen FROM jobs WHERE id = :j", {"j": job_id}).scalar_one())

    def renew_lease(self, fence: Fence, ttl: float) -> bool:
        """Extend the lease if this holder (owner and generation) still has it: the fence check.

        Run in the transaction that records a side effect's intent, so the intent is written only
        while the lease is ours; a takeover in between waits for this transaction or wins before it.
        """
        result = self._run(
            "UPDATE jobs SET lease_until = :u WHERE id = :j AND lease_owner = :o AND lease_gen = :g",
            {"u": time.time() + ttl, "j": fence.job_id, "o": fence.owner, "g": fence.gen},
        )
        return (result.rowcount or 0) == 1

    def release_lease(self, job_id: str, owner: str) -> None:
        """Give the job up; this holder's calls have all returned, so none of its intents is in flight."""
        self._run(
            "UPDATE batches SET owner = NULL WHERE job_id = :j AND owner = :o AND state = 'creating'",
            {"j": job_id, "o": owner},
        )
        self._run(
            "UPDATE jobs SET lease_owner = NULL, lease_until = NULL WHERE id = :j AND lease_owner = :o",
            {"j": job_id, "o": owner},
        )


class JobReads(Reading):
    """Reads of job rows."""

    def get_job(self, job_id: str) -> Job:
        with self._read() as conn:
            row = conn.execute(text(queries.JOB), {"j": job_id}).mappings().first()
        if row is None:
            raise NotFoundError(f"no job {job_id!r} in this state database", hint="see `llmbulk jobs`")
        return Job.model_validate(dict(row))

    def list_jobs(self, limit: int = 50) -> list[Job]:
        return self._jobs(queries.JOBS, {"n": limit})

    def provider_jobs(self, provider: str, emulated: bool) -> list[Job]:
        """Every job on this provider, run against the emulator or not (for `gc`)."""
        return self._jobs(
            "SELECT * FROM jobs WHERE provider = :p AND emulated = :e ORDER BY created_at",
            {"p": provider, "e": emulated},
        )

    def provider_names(self, emulated: bool) -> list[str]:
        """The providers this database's jobs (emulated or real) ran on."""
        with self._read() as conn:
            sql = text("SELECT DISTINCT provider FROM jobs WHERE emulated = :e ORDER BY provider")
            return [str(p) for p in conn.execute(sql, {"e": emulated}).scalars()]

    def jobs_with_fingerprint(self, fingerprint: str) -> list[Job]:
        """Jobs made by the same command (same options fingerprint), newest first."""
        return self._jobs(
            "SELECT * FROM jobs WHERE fingerprint = :f ORDER BY created_at DESC, id DESC", {"f": fingerprint}
        )

    def _jobs(self, sql: str, params: dict[str, object]) -> list[Job]:
        with self._read() as conn:
            return [Job.model_validate(dict(r)) for r in conn.execute(text(sql), params).mappings()]
