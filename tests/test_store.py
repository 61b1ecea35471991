"""The state store's named operations, on SQLite and on a real PostgreSQL server.

The PostgreSQL leg runs when LLMBULK_TEST_POSTGRES_URL is set (`.ci/run` sets it after starting
the server); each test gets its own schema, dropped afterwards.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from llmbulk.errors import InputError
from llmbulk.leases import JobLease
from llmbulk.models import ItemOutcome, Outcome, make_custom_id
from llmbulk.store import Store
from llmbulk.store.schema import Batch, Job, Shard


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = Store.open(store_url)
    yield opened
    # Whatever the test did, the counts `status` reads were kept in step with the items.
    with opened._read() as conn:
        counted = conn.execute(text("SELECT job_id, state, COUNT(*) FROM items GROUP BY job_id, state")).all()
        kept = conn.execute(
            text("SELECT job_id, state, SUM(n) FROM item_counts GROUP BY job_id, state HAVING SUM(n) > 0")
        ).all()
        errors = conn.execute(
            text(
                "SELECT i.job_id, i.state, COALESCE(a.error_code, a.error_type, ''), COUNT(*) FROM items i"
                " JOIN attempts a ON a.job_id = i.job_id AND a.row_index = i.row_index AND a.attempt = i.attempts"
                " WHERE i.state IN ('failed_retryable', 'failed_permanent', 'dead') GROUP BY 1, 2, 3"
            )
        ).all()
        kept_errors = conn.execute(
            text(
                "SELECT job_id, state, error_code, SUM(n) FROM item_counts WHERE state IN"
                " ('failed_retryable', 'failed_permanent', 'dead') GROUP BY 1, 2, 3 HAVING SUM(n) > 0"
            )
        ).all()
    assert sorted((j, s, int(n)) for j, s, n in kept) == sorted((j, s, int(n)) for j, s, n in counted)
    assert sorted((*r[:3], int(r[3])) for r in kept_errors) == sorted((*r[:3], int(r[3])) for r in errors)
    opened.close()


def _job(job_id: str = "jtest1", max_attempts: int = 2) -> Job:
    return Job(
        id=job_id,
        created_at=time.time(),
        provider="openai",
        model="m",
        input_path="/in.csv",
        input_format="csv",
        spec_json="{}",
        max_attempts=max_attempts,
        max_items=100,
        max_bytes=10**6,
        n_items=4,
        state="active",
    )


def _shard(job_id: str, seq: int, n: int) -> Shard:
    return Shard(
        id=f"{job_id}-s{seq:04d}",
        job_id=job_id,
        seq=seq,
        path=f"jobs/{job_id}/shards/{seq:05d}.jsonl",
        sha256="0" * 64,
        n_items=n,
        n_bytes=1,
        created_at=time.time(),
    )


def _record(store: Store, job_id: str, batch: Batch, outcomes: list[ItemOutcome], max_attempts: int) -> dict[str, int]:
    with store.tx() as tx:
        counts = tx.add_outcomes(job_id, batch, outcomes)
        tx.settle_batch(job_id, batch, max_attempts)
    return counts


def _claim(store: Store, job_id: str, owner: str, ttl: float) -> int | None:
    with store.tx() as tx:
        return tx.claim_lease(job_id, owner, ttl)


def _release(store: Store, job_id: str, owner: str) -> None:
    with store.tx() as tx:
        tx.release_lease(job_id, owner)


def _setup(store: Store, job: Job) -> tuple[Shard, Batch]:
    shard = _shard(job.id, 1, 4)
    with store.tx() as tx:
        tx.add_job(job)
        tx.add_items(job.id, shard.id, [(i, f"k{i}", None) for i in range(4)])
        tx.add_shard(shard)
    batch = Batch(id=f"{shard.id}-b1", job_id=job.id, shard_id=shard.id, state="creating", intent_at=time.time())
    with store.tx() as tx:
        tx.add_batch(batch)
        tx.mark_submitted(batch.id, shard.id, job.id, provider_batch_id="batch_1", created_at=time.time())
    return shard, batch


def test_items_are_added_and_counted(store: Store) -> None:
    _setup(store, _job())
    assert store.item_counts("jtest1") == {"submitted": 4}
    assert [j.id for j in store.list_jobs()] == ["jtest1"]


def test_submitting_shifts_a_shards_counts_even_where_none_were_kept(store: Store) -> None:
    job = _job()
    shards = [_shard(job.id, seq, 3) for seq in (1, 2)]
    with store.tx() as tx:
        tx.add_job(job)
        for shard in shards:
            tx.add_items(job.id, shard.id, [(3 * shard.seq + i, f"k{shard.seq}-{i}", None) for i in range(3)])
            tx.add_shard(shard)
    with store.tx() as tx:  # as a database written by something else might hold them
        tx._conn.execute(text("DELETE FROM item_counts WHERE shard_id = :sh"), {"sh": shards[1].id})
    for shard in shards:
        batch = Batch(id=f"{shard.id}-b1", job_id=job.id, shard_id=shard.id, state="creating", intent_at=time.time())
        with store.tx() as tx:
            tx.add_batch(batch)
            tx.mark_submitted(batch.id, shard.id, job.id, provider_batch_id=f"b{shard.seq}", created_at=time.time())
    assert store.item_counts(job.id) == {"submitted": 6}  # and no count goes below zero (the fixture checks)


def test_duplicate_keys_name_both_rows(store: Store) -> None:
    job = _job()
    with pytest.raises(InputError, match=r"duplicate id 'k1' at rows 2 and 4"), store.tx() as tx:
        tx.add_job(job)
        tx.add_items(
            job.id, _shard(job.id, 1, 4).id, [(0, "k0", None), (1, "k1", None), (2, "k2", None), (3, "k1", None)]
        )
    assert store.list_jobs() == []  # the whole pack rolled back


def test_outcomes_settle_items_and_missing_lines_become_retryable(store: Store) -> None:
    job = _job()
    _shard_row, batch = _setup(store, job)
    outcomes = [
        ItemOutcome(make_custom_id(job.id, 0, 1), Outcome.SUCCEEDED, output="yes", input_tokens=3, output_tokens=1),
        ItemOutcome(make_custom_id(job.id, 1, 1), Outcome.PERMANENT, error_code="400", error_message="bad"),
        ItemOutcome(make_custom_id(job.id, 2, 1), Outcome.RETRYABLE, error_code="429"),
        ItemOutcome(make_custom_id("jother", 3, 1), Outcome.SUCCEEDED, output="not ours"),
    ]
    counts = _record(store, job.id, batch, outcomes, job.max_attempts)
    assert counts == {"lines": 4, "foreign": 1}
    assert store.item_counts(job.id) == {"succeeded": 1, "failed_permanent": 1, "failed_retryable": 2}
    missing = store.items_in_state(job.id, "failed_retryable")
    assert [(m["row_index"], m["error_code"]) for m in missing] == [(2, "429"), (3, "missing_result")]
    again = _record(store, job.id, batch, outcomes, job.max_attempts)  # re-collect: idempotent
    assert again["lines"] == 4
    assert store.item_counts(job.id) == {"succeeded": 1, "failed_permanent": 1, "failed_retryable": 2}
    rows = list(store.merged_rows(job.id))
    assert [r[0] for r in rows] == [0, 1, 2, 3] and rows[0][4] == "yes"


def test_retry_counts_attempts_and_dead_after_the_last(store: Store) -> None:
    job = _job(max_attempts=2)
    _setup(store, job)
    batch = store.batches(job.id)[0]
    _record(store, job.id, batch, [], job.max_attempts)  # every item missing → retryable
    rows = list(store.retryable_rows(job.id))
    assert rows == [0, 1, 2, 3]
    retry_shard = _shard(job.id, 2, 2)
    with store.tx() as tx:
        tx.add_shard(retry_shard)
        tx.requeue_items(job.id, retry_shard.id, [1, 3])
    assert store.item_attempts(job.id, [1, 3]) == {1: 2, 3: 2}
    assert store.shard_rows(retry_shard.id) == [1, 3]
    retry_batch = Batch(id="b2", job_id=job.id, shard_id=retry_shard.id, state="ended", intent_at=time.time())
    with store.tx() as tx:
        tx.add_batch(retry_batch)
    _record(store, job.id, retry_batch, [], job.max_attempts)
    assert store.item_counts(job.id) == {"failed_retryable": 2, "dead": 2}


def test_requeued_batch_puts_items_back_in_the_queue(store: Store) -> None:
    job = _job()
    shard, batch = _setup(store, job)
    with store.tx() as tx:
        tx.requeue_batch(batch.id, job.id, shard.id)
    assert store.item_counts(job.id) == {"queued": 4}
    assert [s.id for s in store.unsent_shards(job.id)] == [shard.id]


def test_lease_excludes_others_until_released_or_expired(store: Store) -> None:
    _setup(store, _job())
    assert _claim(store, "jtest1", "a", ttl=30)
    assert not _claim(store, "jtest1", "b", ttl=30)
    assert _claim(store, "jtest1", "a", ttl=30)  # renewal by the holder
    _release(store, "jtest1", "a")
    assert _claim(store, "jtest1", "b", ttl=0.2)
    time.sleep(0.3)
    assert _claim(store, "jtest1", "c", ttl=30)  # b's lease lapsed (crashed holder)


def test_concurrent_lease_claims_have_exactly_one_winner(store: Store) -> None:
    _setup(store, _job())
    winners: list[str] = []
    barrier = threading.Barrier(6)

    def claim(name: str) -> None:
        barrier.wait()
        if _claim(store, "jtest1", name, ttl=30):
            winners.append(name)

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1


def test_job_lease_heartbeat_keeps_it(store: Store) -> None:
    _setup(store, _job())
    with JobLease(store, "jtest1", ttl=0.3) as lease:
        time.sleep(0.7)  # longer than the ttl: only the heartbeat keeps it
        assert not _claim(store, "jtest1", "intruder", ttl=30)
        lease.check()
    assert _claim(store, "jtest1", "next", ttl=30)


def test_lease_of_a_dead_process_on_this_host_is_taken_over_at_once(store: Store) -> None:
    import socket

    _setup(store, _job())
    dead = f"{socket.gethostname()}:999999999:deadbeef"
    assert _claim(store, "jtest1", dead, ttl=3600)
    with JobLease(store, "jtest1", wait=0) as lease:
        assert store.get_job("jtest1").lease_owner == lease.owner
    other_host = "some-other-host:1:x"
    assert _claim(store, "jtest1", other_host, ttl=3600)
    with pytest.raises(Exception, match="another llmbulk process"):
        JobLease(store, "jtest1", wait=0)
