"""Job leases: one process at a time works on a job, across processes and machines, fenced.

The lease is a row-level claim in the database with an expiry, renewed by a heartbeat thread;
a crashed holder stops renewing and its lease lapses, so nobody is blocked forever. Each takeover
increments the lease's generation (the fencing token). Every side effect at a provider is
preceded by `fenced()`: a transaction that checks this holder still has the lease and records the
side effect's intent, so a process paused past its lease (a closed laptop, a stopped container)
finds out before it touches the provider again, and stops.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from llmbulk.errors import LeaseError
from llmbulk.models import Fence
from llmbulk.store import Store

if TYPE_CHECKING:
    from llmbulk.store import Tx

DEFAULT_TTL = 60.0


def holder_is_dead(owner: str) -> bool:
    """A holder on this host whose process no longer exists (killed or crashed) holds nothing."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False  # another machine: only its lease expiry can tell
    if int(pid_text) == os.getpid():
        return False  # this very process (another lease object of ours)
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def new_owner() -> str:
    """A lease owner id naming this host and process."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class JobLease:
    """A held lease on one job, renewed in the background until released."""

    def __init__(
        self,
        store: Store,
        job_id: str,
        *,
        ttl: float = DEFAULT_TTL,
        wait: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store, self.job_id, self.ttl = store, job_id, ttl
        self.owner = new_owner()
        self.lost = False
        self._stop = threading.Event()
        self.gen = self._acquire(wait, sleep)
        self._confirm()
        self._thread = threading.Thread(target=self._heartbeat, name=f"lease-{job_id}", daemon=True)
        self._thread.start()

    def _acquire(self, wait: float, sleep: Callable[[float], None]) -> int:
        store, job_id = self.store, self.job_id
        deadline = time.monotonic() + wait
        while (gen := self._claim()) is None:
            holder = store.get_job(job_id)
            if holder.lease_owner and holder_is_dead(holder.lease_owner):
                with store.tx() as tx:
                    gen = tx.take_over_lease(job_id, holder.lease_owner, self.owner, self.ttl)
                if gen is not None:
                    return gen
                continue
            if time.monotonic() >= deadline:
                remaining = max(0, int((holder.lease_until or 0) - time.time()))
                raise LeaseError(
                    f"job {job_id} is being worked on by another llmbulk process ({holder.lease_owner}, "
                    f"lease expires in {remaining}s)",
                    hint="wait for it, or pass --wait-lock SECONDS to wait here",
                )
            sleep(min(1.0, max(0.05, deadline - time.monotonic())))
        return gen

    def _claim(self) -> int | None:
        with self.store.tx() as tx:
            return tx.claim_lease(self.job_id, self.owner, self.ttl)

    @property
    def fence(self) -> Fence:
        return Fence(self.job_id, self.owner, self.gen)

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                with self.store.tx() as tx:
                    held = tx.renew_lease(self.fence, self.ttl)
            except Exception:  # a transient database error: try again next beat
                continue
            if not held:
                self.lost = True
                return
            self._confirm()

    def check(self) -> None:
        """Raise if another process took the lease (ours lapsed)."""
        if self.lost:
            raise self._lost_error()

    def _lost_error(self) -> LeaseError:
        return LeaseError(
            f"lost the lease on job {self.job_id} to another process; stopped without touching the provider",
            hint=f"the other process carries on; `llmbulk status {self.job_id}` shows where it is",
        )

    @contextmanager
    def fenced(self) -> Iterator[Tx]:
        """A transaction that holds only while this process still holds the lease (else LeaseError).

        Record a side effect's intent in it; the provider call comes after it commits.
        """
        self.check()
        with self.store.tx() as tx:
            if not tx.renew_lease(self.fence, self.ttl):
                self.lost = True
                raise self._lost_error()
            yield tx
        self._confirm()

    def guard(self) -> None:
        """Right before a provider call: the lease is ours, confirmed in the database moments ago.

        A process paused since its last confirmation (longer than a third of the lease) checks
        the database again instead of trusting its memory.
        """
        self.check()
        if self._since_confirmed() > self.ttl / 3:
            with self.fenced():
                pass

    def _confirm(self) -> None:
        self._confirmed = (time.monotonic(), time.time())

    def _since_confirmed(self) -> float:
        """Seconds since the database last confirmed the lease, by whichever clock saw more pass.

        The monotonic clock does not advance while the machine sleeps (a closed laptop lid, a
        suspended VM); the wall clock does, but may be stepped back. Either one seeing the lease
        go stale is enough.
        """
        monotonic, wall = self._confirmed
        return max(time.monotonic() - monotonic, time.time() - wall)

    def release(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with self.store.tx() as tx:
            tx.release_lease(self.job_id, self.owner)

    def __enter__(self) -> JobLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
