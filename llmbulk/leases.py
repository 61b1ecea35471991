"""Job leases: one process at a time works on a job, across processes and machines.

The lease is a row-level claim in the database with an expiry, renewed by a heartbeat thread;
a crashed holder stops renewing and its lease lapses, so nobody is blocked forever.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

from llmbulk.errors import LeaseError
from llmbulk.store import Store

DEFAULT_TTL = 60.0


def _holder_is_dead(owner: str) -> bool:
    """A holder on this host whose process no longer exists (killed or crashed) holds nothing."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False  # another machine: only its lease expiry can tell
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
        deadline = time.monotonic() + wait
        while not store.claim_lease(job_id, self.owner, ttl):
            holder = store.get_job(job_id)
            if holder.lease_owner and _holder_is_dead(holder.lease_owner):
                if store.take_over_lease(job_id, holder.lease_owner, self.owner, ttl):
                    break
                continue
            if time.monotonic() >= deadline:
                remaining = max(0, int((holder.lease_until or 0) - time.time()))
                raise LeaseError(
                    f"job {job_id} is being worked on by another llmbulk process ({holder.lease_owner}, "
                    f"lease expires in {remaining}s)",
                    hint="wait for it, or pass --wait-lock SECONDS to wait here",
                )
            sleep(min(1.0, max(0.05, deadline - time.monotonic())))
        self._thread = threading.Thread(target=self._heartbeat, name=f"lease-{job_id}", daemon=True)
        self._thread.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                if not self.store.claim_lease(self.job_id, self.owner, self.ttl):
                    self.lost = True
                    return
            except Exception:  # a transient database error: try again next beat
                continue

    def check(self) -> None:
        """Raise if another process took the lease (ours lapsed)."""
        if self.lost:
            raise LeaseError(f"lost the lease on job {self.job_id} to another process", hint="rerun the command")

    def release(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.store.release_lease(self.job_id, self.owner)

    def __enter__(self) -> JobLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
