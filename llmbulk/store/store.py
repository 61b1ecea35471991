"""The store's entry point: reads, and one unit of work for every write.

    with store.tx() as tx:
        tx.add_job(job)
        tx.add_items(job.id, shard_id, items)

Every write is a named operation of an aggregate (`jobs`, `items`, `batches`, `answers`) on the unit of
work; reads open their own read-only transaction (`reports` holds the larger ones). Writes are
short transactions (`BEGIN IMMEDIATE` on SQLite); no SQLAlchemy object leaves this package.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from llmbulk.store.answers import AnswerReads, AnswerWrites
from llmbulk.store.attachments import AttachmentReads, AttachmentWrites
from llmbulk.store.batches import BatchReads, BatchWrites
from llmbulk.store.capacity import CapacityReads, CapacityWrites
from llmbulk.store.engine import open_engine
from llmbulk.store.items import ItemReads, ItemWrites
from llmbulk.store.jobs import JobReads, JobWrites
from llmbulk.store.reports import Reports


class Tx(JobWrites, ItemWrites, BatchWrites, AnswerWrites, AttachmentWrites, CapacityWrites):
    """One write transaction: every write operation of the store, committed together on exit."""


class Store(JobReads, ItemReads, BatchReads, AnswerReads, AttachmentReads, CapacityReads, Reports):
    """The state database: read methods, and `tx()` for writes."""

    @classmethod
    def open(cls, url: str) -> Store:
        return cls(open_engine(url))

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def tx(self) -> Iterator[Tx]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        with self._engine.begin() as conn:
            yield Tx(conn)
