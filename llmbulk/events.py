"""Job and batch events: a JSON-lines log per job, plus user hooks (a command, a webhook).

Every transition is an event. The log under the job's folder records them all; `--on-event CMD`
gets each one as JSON on stdin and `--webhook URL` gets it POSTed. Delivery failures are
logged, never fatal: a dead receiver must not break a run.
"""

from __future__ import annotations

import json
import subprocess
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson

from llmbulk.errors import UsageError

PROGRESS_EVERY = 1_000  # items between progress lines in the job log

# Which events `--notify-on` names select; the log always gets everything.
NOTIFY_GROUPS: dict[str, tuple[str, ...]] = {
    "done": ("job.done",),
    "failed": ("job.done_with_failures", "job.error", "batch.failed", "batch.expired"),
    "batch": ("batch.*",),  # every batch transition, requeues and state changes included
    "timeout": ("job.timeout",),
    "all": (),
}
# Events that end a run: always attempted, even at a target that failed earlier in the run, so a
# receiver that was down for a moment still hears how the job ended.
FINAL_EVENTS = frozenset(("job.done", "job.done_with_failures", "job.error", "job.timeout", "job.budget_reached"))


class JobLog:
    """Appends one JSON object per line to `<job dir>/log.jsonl`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.path, "ab") as fh:
            fh.write(orjson.dumps(record, default=str) + b"\n")


@dataclass
class EventHooks:
    """Where events go besides the job log."""

    on_event: str | None = None
    webhook: str | None = None
    notify_on: tuple[str, ...] = ()
    timeout: float = 5.0
    attempts: int = 3
    sleep: Callable[[float], None] = time.sleep
    failures: list[str] = field(default_factory=list)

    def wants(self, name: str) -> bool:
        if not self.notify_on or "all" in self.notify_on:
            return True
        return any(_matches(name, NOTIFY_GROUPS.get(group, (group,))) for group in self.notify_on)


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(name == p or (p.endswith(".*") and name.startswith(p[:-1])) for p in patterns)


class Events:
    """Emits events to the job log and the configured hooks."""

    def __init__(self, hooks: EventHooks | None = None, log_dir: Callable[[str], Path] | None = None) -> None:
        self.hooks = hooks or EventHooks()
        self._log_dir = log_dir
        self._given_up: set[str] = set()

    def emit(self, name: str, job_id: str, **data: Any) -> None:
        record = {"event": name, "job_id": job_id, "ts": time.time(), **data}
        log = self._log(job_id)
        if log is not None:
            log.write(record)
        if self.hooks.wants(name):
            self._deliver(record, log)

    def log(self, name: str, job_id: str, **data: Any) -> None:
        """A record for the job log only: hooks hear transitions, not a line per 1,000 items."""
        log = self._log(job_id)
        if log is not None:
            log.write({"event": name, "job_id": job_id, "ts": time.time(), **data})

    def progress(self, job_id: str, stage: str, done: int, total: int | None) -> None:
        self.log("progress", job_id, stage=stage, done=done, total=total)

    def error(self, job_id: str, exc: BaseException) -> None:
        """Log an error with its stack trace (the console shows one line)."""
        log = self._log(job_id)
        record = {"event": "job.error", "job_id": job_id, "ts": time.time(), "error": str(exc)}
        if log is not None:
            log.write({**record, "traceback": "".join(traceback.format_exception(exc))})
        if self.hooks.wants("job.error"):
            self._deliver(record, log)

    def _log(self, job_id: str) -> JobLog | None:
        return JobLog(self._log_dir(job_id) / "log.jsonl") if self._log_dir else None

    def _deliver(self, record: dict[str, Any], log: JobLog | None) -> None:
        payload = orjson.dumps(record, default=str)
        for target, send in self._targets():
            if target in self._given_up and record["event"] not in FINAL_EVENTS:
                continue
            try:
                send(payload)
            except Exception as exc:  # delivery problems are reported, never fatal
                self._given_up.add(target)  # one dead receiver must not slow every later event
                message = (
                    f"event delivery to {target} failed (later events skipped this run, but for the job's end): {exc}"
                )
                self.hooks.failures.append(message)
                if log is not None:
                    log.write(
                        {"event": "delivery.failed", "job_id": record["job_id"], "ts": time.time(), "error": message}
                    )

    def _targets(self) -> Iterable[tuple[str, Callable[[bytes], None]]]:
        if self.hooks.on_event:
            yield f"command {self.hooks.on_event!r}", self._run_command
        if self.hooks.webhook:
            yield f"webhook {self.hooks.webhook}", self._post

    def _run_command(self, payload: bytes) -> None:
        result = subprocess.run(
            self.hooks.on_event or "", shell=True, input=payload, capture_output=True, timeout=self.hooks.timeout * 6
        )
        if result.returncode != 0:
            raise RuntimeError(f"exit code {result.returncode}")

    def _post(self, payload: bytes) -> None:
        last: Exception | None = None
        for attempt in range(self.hooks.attempts):
            request = urllib.request.Request(
                self.hooks.webhook or "", data=payload, headers={"Content-Type": "application/json"}, method="POST"
            )
            try:
                with urllib.request.urlopen(request, timeout=self.hooks.timeout) as response:
                    if response.status < 300:
                        return
                    last = RuntimeError(f"HTTP {response.status}")
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                last = exc
            if attempt + 1 < self.hooks.attempts:  # no pause after the last try
                self.hooks.sleep(0.25 * 2**attempt)
        raise RuntimeError(str(last))


def parse_notify(value: str | None) -> tuple[str, ...]:
    """`done,failed` → ('done', 'failed'); each is a group or an event name such as `job.done`."""
    names = tuple(v.strip() for v in value.split(",") if v.strip()) if value else ()
    for name in names:
        if name not in NOTIFY_GROUPS and "." not in name:
            raise UsageError(
                f"--notify-on {name!r} is not an event group",
                hint=f"use one or more of {','.join(NOTIFY_GROUPS)}, or event names such as job.done",
            )
    return names


def dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, default=str)


T = TypeVar("T")


def every(items: Iterable[T], n: int, report: Callable[[int], None]) -> Iterator[T]:
    """Pass items through, calling `report(count so far)` every `n` items and once at the end."""
    count = 0
    for item in items:
        yield item
        count += 1
        if count % n == 0:
            report(count)
    if count % n:
        report(count)
