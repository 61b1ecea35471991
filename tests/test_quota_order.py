"""The quota queue's order (#21), on the store's own operations over a real database (SQLite, PostgreSQL):
priority first, then the job served longest ago, then submission order; a wait whose runner is gone
is passed over; room comes back whenever a batch leaves the live states."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llmbulk.batch_polling import requeue_batch
from llmbulk.capacity import Scope
from llmbulk.models import BatchState, BatchStatus
from llmbulk.store import Store
from llmbulk.store.capacity import Reservation
from llmbulk.store.schema import Batch, Job

SCOPE = Scope("openai", "default", "gpt-4o-mini")


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = Store.open(store_url)
    with opened.tx() as tx:
        tx.set_capacity_limits(SCOPE, {"active_batches": 1})
        for n, job in enumerate(("j1", "j2", "j3", "j4"), start=1):
            tx.add_job(
                Job(id=job, created_at=float(n), provider="openai", model="gpt-4o-mini", input_path="in",
                    input_format="csv", spec_json="{}", max_items=10, max_bytes=1000, state="active")
            )  # fmt: skip
    yield opened
    opened.close()


PRIORITY = {"j4": 5}  # --priority 5


def _ask(store: Store, job: str, shard: int, now: float) -> str | None:
    """One create intent asking for room; recorded as a `creating` batch when it gets it."""
    shard_id, batch_id = f"{job}-s{shard}", f"{job}-s{shard}-b1"
    submitted = float(job[1:])
    ask = Reservation(SCOPE, job, shard_id, batch_id, 100, PRIORITY.get(job, 0), submitted, stale_after=60.0)
    with store.tx() as tx:
        waits = tx.reserve_capacity(ask, now=now)
        if waits is None:
            tx.add_batch(Batch(id=batch_id, job_id=job, shard_id=shard_id, state="creating", intent_at=now))
    return waits


def _end(store: Store, job: str, shard: int, now: float, state: BatchState = BatchState.ENDED) -> None:
    """A poll recording the batch's end."""
    batch_id = f"{job}-s{shard}-b1"
    with store.tx() as tx:
        tx.record_poll(batch_id, BatchStatus(batch_id=batch_id, state=state, raw_status=state.value, ended_at=now), now)


def test_priority_then_the_job_served_longest_ago_then_submission_order(store: Store) -> None:
    assert _ask(store, "j1", 1, now=100) is None  # room: served at once
    assert _ask(store, "j3", 1, now=101) == "1 of 1 batches in flight"
    assert _ask(store, "j2", 1, now=102) is not None  # submitted before j3: ahead of it from now on
    assert _ask(store, "j4", 1, now=103) is not None
    assert _ask(store, "j1", 2, now=104) is not None
    _end(store, "j1", 1, now=110)
    served = []
    for now in range(111, 160):  # every waiting job's runner asks in turn; one slot at a time
        for job, shard in (("j1", 2), ("j2", 1), ("j3", 1), ("j4", 1)):
            if f"{job}-s{shard}" not in served and _ask(store, job, shard, now=float(now)) is None:
                served.append(f"{job}-s{shard}")
                _end(store, job, shard, now=now + 0.5)
    # j4 by priority; j2 and j3 never served, in submission order; j1, served already, last.
    assert served == ["j4-s1", "j2-s1", "j3-s1", "j1-s2"]


def test_a_wait_whose_runner_is_gone_is_passed_over(store: Store) -> None:
    assert _ask(store, "j1", 1, now=100) is None
    assert _ask(store, "j2", 1, now=101) is not None  # j2 waits, then its runner dies
    assert _ask(store, "j3", 1, now=102) is not None
    _end(store, "j1", 1, now=103)
    assert _ask(store, "j3", 1, now=130) == "1 job(s) ahead in the queue"  # j2 still counts
    assert _ask(store, "j3", 1, now=170) is None  # j2 not seen for 69 s > 60 s: passed over
    assert store.quota_wait("j3") is None


def test_room_comes_back_when_a_batch_is_refused_or_cancelled(store: Store) -> None:
    assert _ask(store, "j1", 1, now=100) is None
    assert _ask(store, "j2", 1, now=101) is not None
    with store.tx() as tx:
        tx.refuse_intent("j1-s1-b1", "429", error_code="quota")  # a create the provider refused
    assert _ask(store, "j2", 1, now=102) is None
    _end(store, "j2", 1, now=102.5, state=BatchState.CANCELLED)
    assert _ask(store, "j3", 1, now=103) is None


def test_a_refusal_counts_what_was_in_flight_by_our_clock_not_the_providers_whole_seconds(store: Store) -> None:
    # OpenAI's created_at is whole seconds: a batch created at 100.7 says 100, before the grants of the
    # two batches in flight (100.5, 100.6). The observed limit must still be what those two hold.
    with store.tx() as tx:
        tx.set_capacity_limits(SCOPE, {"active_batches": 10})
    for shard, now in ((1, 100.5), (2, 100.6), (3, 100.7)):
        assert _ask(store, "j1", shard, now=now) is None
    refused = next(b for b in store.batches("j1") if b.id == "j1-s3-b1")
    refused.created_at = 100.0
    requeue_batch(store, refused)
    (scope,) = store.capacity_scopes()
    assert scope.observed_tokens == 200 and scope.observed_batches == 2
    assert scope.blocked_until is None  # something was in flight: a lower limit, not a pause


def test_input_files_count_against_the_whole_account_and_come_back_when_deleted(store: Store) -> None:
    # An Azure resource keeps a number of input files whatever the deployment (model) they were for.
    other = Scope(SCOPE.provider, SCOPE.account, "gpt-4o")
    with store.tx() as tx:
        tx.set_capacity_limits(SCOPE, {"active_batches": 10, "files": 2})
        tx.set_capacity_limits(other, {"active_batches": 10})
    for job, shard, scope in (("j1", 1, other), ("j2", 1, SCOPE)):
        ask = Reservation(scope, job, f"{job}-s{shard}", f"{job}-s{shard}-b1", 100, 0, 1.0, stale_after=60.0)
        with store.tx() as tx:
            assert tx.reserve_capacity(ask, now=100.0) is None
            tx.add_batch(Batch(id=ask.batch_id, job_id=job, shard_id=ask.shard_id, state="creating", intent_at=100.0))
            tx.set_input_file(ask.batch_id, f"file-{job}")
    assert (
        _ask(store, "j3", 1, now=101) == "2 of 2 input files at the provider (collect deletes them; so does gc --apply)"
    )
    with store.tx() as tx:
        tx.mark_files_deleted(["j1-s1-b1"])  # the other model's job collected, its input deleted
    assert _ask(store, "j3", 1, now=102) is None
