"""Packing a new job: tasks into shards, items and shards recorded in one transaction, the estimate."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from llmbulk import costs, interrupts
from llmbulk.attachments.uploads import FileRef, with_refs
from llmbulk.crashpoints import crashpoint
from llmbulk.errors import (
    InputError,
)
from llmbulk.events import PROGRESS_EVERY, every
from llmbulk.jobs.budget import check_budget, estimate_for, estimate_json
from llmbulk.jobs.dedup import Deduplicator
from llmbulk.jobs.types import ShardPlan
from llmbulk.models import JobState, Limits
from llmbulk.providers.base import BatchProvider
from llmbulk.reuse import RequestKeys, ReuseCounts, ReusePolicy
from llmbulk.session import Session, current_job
from llmbulk.shards import PackedShard, write_shards
from llmbulk.store.schema import Job, Shard
from llmbulk.store.store import Tx
from llmbulk.tables import InputTable
from llmbulk.tasks import TaskSpec, iter_tasks


def pack_new_job(
    session: Session,
    job: Job,
    table: InputTable,
    spec: TaskSpec,
    adapter: BatchProvider,
    limits: Limits,
    dry_run: bool,
    max_cost: float | None = None,
    refs: dict[str, FileRef] | None = None,
) -> tuple[list[ShardPlan], costs.Estimate, ReuseCounts]:
    store, home = session.store, session.settings.home
    shard_dir = session.job_dir(job.id) / "shards"
    plans: list[ShardPlan] = []
    counter = CharCounter()
    session.progress.stage("packing")
    committed = False
    naming = interrupts.Deferral()  # from the commit until the job is named, an interrupt waits
    try:
        with store.tx() as tx:
            tx.add_job(job)
            dedup = deduplicator(tx, job, spec)
            rendered = iter_tasks(table, spec) if not refs else with_refs(iter_tasks(table, spec), refs)
            rows = every(rendered, PROGRESS_EVERY, reporter(session, job.id, "pack"))
            tasks = counter.count(dedup.sendable(rows))

            def add_items(seq: int, items: list[tuple[int, str, str | None]]) -> None:
                tx.add_items(job.id, shard_id_for(job.id, seq), items)

            for packed in write_shards(tasks, adapter.encode, job.id, limits, shard_dir, add_items):
                shard = shard_row(job.id, packed, home, round_=1)
                tx.add_shard(shard)
                plans.append(ShardPlan(shard.id, packed.n_items, packed.n_bytes))
                crashpoint("mid_pack")
            dedup.finish()
            counts = dedup.counts
            if not counts.rows:
                raise InputError(f"{table.path} has no rows", hint="nothing to submit")
            n_items = counts.rows
            estimate = estimate_for(store, job, spec, counter.chars, counts.sent)
            check_budget(estimate, max_cost, job)
            tx.record_pack(
                job.id,
                n_items=n_items,
                input_sha256=table.sha256,
                prompt_chars=counter.chars,
                estimate_json=orjson.dumps(
                    {**estimate_json(estimate), "requests": counts.sent, "reuse": counts.to_json()}
                ).decode(),
            )
            tx.set_job_state(job.id, JobState.ACTIVE)
            if dry_run:
                raise DryRun()
            naming.start()
            crashpoint("job_commit")
        committed = True
        current_job.set(job.id)
    except DryRun:
        shutil.rmtree(session.job_dir(job.id), ignore_errors=True)
    except BaseException:
        if not committed:  # a committed job keeps its shard files
            shutil.rmtree(session.job_dir(job.id), ignore_errors=True)
        raise
    finally:
        naming.end()
    return plans, estimate, counts


def deduplicator(tx: Tx, job: Job, spec: TaskSpec) -> Deduplicator:
    stored = job.spec
    keys = RequestKeys(
        job.provider, job.model, job.endpoint, emulated=job.emulated, output_schema=spec.output_schema,
        sample=stored.sample, params=spec.params, base_url=stored.base_url,
    )  # fmt: skip
    policy = ReusePolicy(fresh=stored.fresh, max_age=stored.reuse_max_age)
    price = costs.pricer(job.provider, job.model)
    return Deduplicator(tx, job.id, keys, policy, now=time.time(), output_schema=spec.output_schema, price=price)


def reporter(session: Session, job_id: str, stage: str, total: int | None = None) -> Callable[[int], None]:
    """Advances the console progress and logs a progress line, from running item counts."""
    reported = 0

    def report(done: int) -> None:
        nonlocal reported
        session.progress.advance(done - reported)
        reported = done
        session.events.progress(job_id, stage, done, total)

    return report


class CharCounter:
    """Counts rendered prompt characters on the way through (for the cost estimate)."""

    def __init__(self) -> None:
        self.chars = 0

    def count(self, tasks: Iterator[Any]) -> Iterator[Any]:
        for task in tasks:
            messages = task.messages
            if len(messages) == 1 and type(content := messages[0].get("content")) is str:
                self.chars += len(content) + len(task.system or "")
            else:
                self.chars += sum(_chars(m.get("content", "")) for m in messages) + len(task.system or "")
            yield task


def _chars(content: Any) -> int:
    """A message's prompt characters: its text parts only (an attachment part's source, e.g. a whole
    data: URI, is not prompt text)."""
    if type(content) is not list:
        return len(str(content))
    return sum(len(str(p.get("text") or "")) if isinstance(p, dict) else len(str(p)) for p in content)


class DryRun(Exception):
    """Rolls back the packing transaction of a dry run."""


def shard_id_for(job_id: str, seq: int) -> str:
    return f"{job_id}-s{seq:04d}"


def shard_row(job_id: str, packed: PackedShard, home: Path, round_: int) -> Shard:
    return Shard(
        id=shard_id_for(job_id, packed.seq),
        job_id=job_id,
        seq=packed.seq,
        round=round_,
        path=str(packed.path.relative_to(home)) if packed.path.is_relative_to(home) else str(packed.path),
        sha256=packed.sha256,
        n_items=packed.n_items,
        n_bytes=packed.n_bytes,
        created_at=time.time(),
    )
