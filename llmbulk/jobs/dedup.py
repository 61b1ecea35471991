"""While a job is packed: fold repeated requests into one, and answer requests earlier jobs paid for.

Tasks arrive in input order and are looked at in chunks: each chunk's request keys are matched
against the keys this job already sends (`KeyTable` in memory, bounded; past its bound a scratch
table of the packing transaction) and, set-wise and indexed, against the answers table. A task
whose request an earlier row sends becomes that row's follower (it takes the answer when it comes);
one with a usable earlier answer is recorded as succeeded at once; only the rest go on to the
shards. Memory stays bounded: one chunk of tasks and a key table of at most 24 MB.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

from llmbulk import schemas
from llmbulk.errors import StateError
from llmbulk.models import Task
from llmbulk.reuse import RequestKeys, ReuseCounts, ReusePolicy
from llmbulk.store.answers import ReusedAnswer, ReusedItem
from llmbulk.store.store import Tx

CHUNK = 5_000  # keys per lookup: under SQLite's 32,766 and PostgreSQL's 65,535 parameters
TABLE_BITS = 21  # slots of the in-memory key table: 2^21 x 12 bytes = 24 MB at most, whatever the input
IN_MEMORY_LEADERS = (1 << TABLE_BITS) * 7 // 10  # keys held in memory (~1.47M) before the rest are spilled
_INT32_MAX = (1 << 31) - 1
_HALF = 1 << 63


def _collision(row: int) -> StateError:
    # Two different requests share the first 64 bits of their hash: about 1 in 10^8 per 1M-row job.
    return StateError(
        f"row {row + 1} and another row have request keys too alike to tell apart",
        hint="pack this job with --fresh (every row sent); nothing was recorded",
    )


def prefix(request_key: str) -> int:
    """The first 64 bits of a request key as a nonzero signed integer (what the leaders are keyed by).

    0 marks an empty slot of the key table, so the one key that would be 0 shares 1 with another: a
    prefix collision like any other, caught when the followers' full keys are compared."""
    return int(request_key[:16], 16) - _HALF or 1


Price = Callable[[int | None, int | None, int | None], float | None]


class Deduplicator:
    """Filters a job's tasks down to the requests to send, recording the others in the transaction."""

    def __init__(
        self,
        tx: Tx,
        job_id: str,
        keys: RequestKeys,
        policy: ReusePolicy,
        *,
        now: float,
        output_schema: dict[str, Any] | None,
        price: Price,
    ) -> None:
        self._tx, self._job_id, self._keys, self._policy = tx, job_id, keys, policy
        self._oldest = policy.oldest(now)
        self._checker = schemas.OutputChecker(output_schema) if output_schema is not None else None
        self._price = price
        self.counts = ReuseCounts()
        self._leaders = _Leaders(tx)
        # Answers are recorded only when results are collected: a database with none has nothing to reuse.
        self._lookup = not policy.fresh and tx.has_answers()

    def sendable(self, tasks: Iterator[Task]) -> Iterator[Task]:
        """The tasks to send, in input order; followers and reused rows are recorded on the way.

        `finish` must follow once the tasks sent are recorded (their shards written).
        """
        tasks = iter(tasks)
        while chunk := list(islice(tasks, CHUNK)):
            yield from self._chunk(chunk)

    def _chunk(self, chunk: list[Task]) -> list[Task]:
        key = self._keys.key
        request_keys = []
        for task in chunk:
            task.request_key = request_key = key(task)
            request_keys.append(request_key)
        self.counts.rows += len(chunk)
        if self._policy.fresh:
            self.counts.sent += len(chunk)
            return chunk
        if not self._lookup:  # nothing to reuse: one pass over the key table finds repeats and adds leaders
            repeats = self._leaders.claim([prefix(k) for k in request_keys], [task.row_index for task in chunk])
            if repeats is not None:
                return self._fold(chunk, request_keys, repeats)
        unique = list(dict.fromkeys(request_keys))
        prefixes = {k: prefix(k) for k in unique}
        earlier = self._leaders.of(list(prefixes.values()))
        wanted = [k for k in unique if prefixes[k] not in earlier] if self._lookup else []
        answers = self._usable(self._tx.find_answers(wanted, self._oldest)) if wanted else {}
        if not earlier and not answers and len(unique) == len(chunk):  # the common chunk: every row new
            self._add_leaders(prefixes, dict(zip(request_keys, (task.row_index for task in chunk), strict=True)))
            self.counts.sent += len(chunk)
            return chunk
        leaders: dict[str, int] = {}
        send: list[Task] = []
        followers: list[tuple[int, str, str, int]] = []
        reused: list[ReusedItem] = []
        for task, request_key in zip(chunk, request_keys, strict=True):
            answer = answers.get(request_key)
            if answer is not None:
                reused.append(ReusedItem(task.row_index, task.key, request_key, answer))
                continue
            leader = leaders.get(request_key)
            if leader is None:
                leader = earlier.get(prefixes[request_key])
            if leader is not None:
                followers.append((task.row_index, task.key, request_key, leader))
                continue
            leaders[request_key] = task.row_index
            send.append(task)
        self._add_leaders(prefixes, leaders)
        if followers:
            self._tx.add_followers(self._job_id, followers)
        if reused:
            self._record_reused(reused)
        self.counts.sent += len(send)
        self.counts.repeats += len(followers)
        return send

    def _fold(self, chunk: list[Task], request_keys: list[str], repeats: list[tuple[int, int]]) -> list[Task]:
        """The chunk less its repeats ((position, leader row), from `claim`), which become followers."""
        self.counts.sent += len(chunk) - len(repeats)
        if not repeats:
            return chunk
        followers = [(chunk[at].row_index, chunk[at].key, request_keys[at], leader) for at, leader in repeats]
        self._tx.add_followers(self._job_id, followers)
        self.counts.repeats += len(repeats)
        repeated = {position for position, _ in repeats}
        return [task for position, task in enumerate(chunk) if position not in repeated]

    def _add_leaders(self, prefixes: dict[str, int], leaders: dict[str, int]) -> None:
        """Remember the rows sending these requests; two requests sharing a prefix stop the pack."""
        added = {prefixes[k]: row for k, row in leaders.items()}
        if len(added) < len(leaders):
            raise _collision(next(row for k, row in leaders.items() if added[prefixes[k]] != row))
        self._leaders.add(added)

    def _usable(self, answers: dict[str, ReusedAnswer]) -> dict[str, ReusedAnswer]:
        """Answers that pass this job's schema check, like a fresh answer would have to."""
        if self._checker is None:
            return answers
        checker = self._checker
        return {k: a for k, a in answers.items() if checker.problem(a.output) is None}

    def _record_reused(self, reused: list[ReusedItem]) -> None:
        self._tx.add_reused(self._job_id, reused)
        price = self._price
        for item in reused:
            answer = item.answer
            cost = price(answer.input_tokens, answer.output_tokens, answer.cached_tokens)
            if cost is None:
                self.counts.saved_known = False
            else:
                self.counts.saved_usd += cost
        self.counts.reused += len(reused)

    def finish(self) -> None:
        """Followers join their leaders' shards (recorded by now); the scratch table goes."""
        self._leaders.close()
        if self.counts.repeats:
            collided = self._tx.mismatched_followers(self._job_id)
            if collided:
                raise _collision(collided[0])
        if self.counts.repeats or self.counts.reused:
            self._tx.place_followers(self._job_id)  # also recounts the job's items


class _Leaders:
    """The requests this pack sends so far (64-bit key prefix -> row sending it): a fixed-size table in
    memory up to `IN_MEMORY_LEADERS` keys, the rest in the transaction's scratch table, so memory stays
    bounded whatever the input's size."""

    def __init__(self, tx: Tx) -> None:
        self._tx = tx
        self._memory: KeyTable | None = None
        self._spilled = False

    def of(self, prefixes: list[int]) -> dict[int, int]:
        found = self._memory.found(prefixes) if self._memory is not None else {}
        if self._spilled:
            found.update(self._tx.leaders_of([p for p in prefixes if p not in found]))
        return found

    def claim(self, prefixes: list[int], rows: list[int]) -> list[tuple[int, int]] | None:
        """`KeyTable.claim` while every leader is in memory and the chunk fits there too (None: use
        `of` and `add`)."""
        table = None if self._spilled else self._table_for(len(prefixes), max(rows, default=0))
        return None if table is None else table.claim(prefixes, rows)

    def add(self, leaders: dict[int, int]) -> None:
        if not leaders:
            return
        table = self._table_for(len(leaders), max(leaders.values()))
        if table is not None:
            table.put_all(leaders)
            return
        if not self._spilled:
            self._tx.start_pack_keys()
            self._spilled = True
        self._tx.add_leaders(sorted(leaders.items()))  # in key order: one sweep of the B-tree per chunk

    def _table_for(self, n: int, largest_row: int) -> KeyTable | None:
        """The in-memory table, if `n` more keys with rows up to `largest_row` fit in it."""
        if self._memory is None:
            self._memory = KeyTable(TABLE_BITS)
        if self._memory.size + n > IN_MEMORY_LEADERS or largest_row > _INT32_MAX:
            return None
        return self._memory

    def close(self) -> None:
        if self._memory is not None:
            self._memory.close()
            self._memory = None
        if self._spilled:
            self._tx.drop_pack_keys()


class KeyTable:
    """Distinct nonzero 64-bit keys -> rows (0 <= row < 2^31): open addressing with linear probing over
    two flat arrays, 12 bytes a slot. A dict of a million such keys takes ~100 MB (an int object per
    key and per row) and SQLite's B-tree ~3 us a key; this takes 24 MB for up to 1.47M keys and about
    what a dict does per key. The arrays live in an anonymous mapping, so the OS provides pages only
    as keys land on them: a small job's table stays small.
    """

    def __init__(self, bits: int) -> None:
        slots = 1 << bits
        self._mask = slots - 1
        self._map = mmap.mmap(-1, 12 * slots)
        view = memoryview(self._map)
        self._keys = view[: 8 * slots].cast("q")
        self._rows = view[8 * slots :].cast("i")
        self.size = 0

    def found(self, keys: list[int]) -> dict[int, int]:
        """Of these keys, those in the table, with their rows."""
        table, rows, mask = self._keys, self._rows, self._mask
        out: dict[int, int] = {}
        for key in keys:
            slot = key & mask
            while True:
                held = table[slot]
                if held == key:
                    out[key] = rows[slot]
                    break
                if held == 0:
                    break
                slot = (slot + 1) & mask
        return out

    def claim(self, keys: list[int], rows: list[int]) -> list[tuple[int, int]]:
        """Add each key not in the table with its row; returns (position, row held) for the keys that
        were there already (an earlier key of the same list included), in order."""
        table, held_rows, mask = self._keys, self._rows, self._mask
        if self.size + len(keys) > mask:
            raise OverflowError("key table full")
        present: list[tuple[int, int]] = []
        added = 0
        for position, key in enumerate(keys):
            if key == 0:
                raise ValueError("0 marks an empty slot")
            slot = key & mask
            while True:
                held = table[slot]
                if held == 0:
                    table[slot] = key
                    held_rows[slot] = rows[position]
                    added += 1
                    break
                if held == key:
                    present.append((position, held_rows[slot]))
                    break
                slot = (slot + 1) & mask
        self.size += added
        return present

    def put_all(self, entries: dict[int, int]) -> None:
        """Add keys not in the table yet (the caller looked them up first)."""
        table, rows, mask = self._keys, self._rows, self._mask
        if self.size + len(entries) > mask:
            raise OverflowError("key table full")
        for key, row in entries.items():
            if key == 0:
                raise ValueError("0 marks an empty slot")
            slot = key & mask
            while table[slot] != 0:
                slot = (slot + 1) & mask
            table[slot] = key
            rows[slot] = row
        self.size += len(entries)

    def close(self) -> None:
        self._keys.release()
        self._rows.release()
        self._map.close()
