"""Job and batch events: a JSON-lines log per job, and the emitter that also hands them to user hooks.

Every transition is an event. The log under the job's folder records them all; the hooks (`hooks`:
a command, a webhook) get those they asked for. Delivery failures are logged, never fatal: a dead
receiver must not break a run. This module owns the log, the emitter and reading failed deliveries
back; hook targets live in `hooks`, credential redaction in `redact` (both re-exported here).
"""

from __future__ import annotations

import contextlib
import json
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson

from llmbulk.hooks import FINAL_EVENTS, NOTIFY_GROUPS, EventHooks, check_webhook, parse_notify, webhook_request
from llmbulk.redact import REDACTED, SECRET_NAME, redact_command, redact_url, scrub, url_secrets

__all__ = [
    "FINAL_EVENTS",
    "NOTIFY_GROUPS",
    "PROGRESS_EVERY",
    "REDACTED",
    "SECRET_NAME",
    "DeliveryFailures",
    "EventHooks",
    "Events",
    "JobLog",
    "check_webhook",
    "delivery_failures",
    "dumps",
    "every",
    "parse_notify",
    "redact_command",
    "redact_url",
    "scrub",
    "url_secrets",
    "webhook_request",
]

PROGRESS_EVERY = 1_000  # items between progress lines in the job log


class JobLog:
    """Appends one JSON object per line to `<job dir>/log.jsonl`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.path, "ab") as fh:
            fh.write(orjson.dumps(record, default=str) + b"\n")


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
        for target, send in self.hooks.targets():
            if target in self._given_up and record["event"] not in FINAL_EVENTS:
                continue
            try:
                send(payload)
            except Exception as exc:  # delivery problems are reported, never fatal
                self._given_up.add(target)  # one dead receiver must not slow every later event
                reason = scrub(str(exc), self.hooks.secrets())
                message = (
                    f"event delivery to {target} failed (later events skipped this run, but for the job's end): "
                    f"{reason}"
                )
                self.hooks.failures.append(message)
                if self.hooks.warn is not None:
                    self.hooks.warn(message)
                if log is not None:
                    log.write({"event": "delivery.failed", "job_id": record["job_id"], "ts": time.time(),
                               "target": target.split(" ", 1)[0], "error": message})  # fmt: skip


@dataclass(frozen=True, slots=True)
class DeliveryFailures:
    """A job's failed hook deliveries, as its log recorded them (the last hook kind that failed)."""

    target: str  # "webhook" or "command"
    count: int
    last_at: float


def delivery_failures(log_path: Path) -> DeliveryFailures | None:
    """What the job log says of failed deliveries, or None when none failed (or there is no log)."""
    count, last = 0, None
    try:
        with open(log_path, "rb") as fh:
            for line in fh:
                if b'"delivery.failed"' not in line:  # most lines are not: skip the JSON parse
                    continue
                with contextlib.suppress(orjson.JSONDecodeError):
                    record = orjson.loads(line)
                    if isinstance(record, dict) and record.get("event") == "delivery.failed":
                        last, count = record, count + 1
    except OSError:
        return None
    if last is None:
        return None
    target = last.get("target") or ("webhook" if "to webhook" in str(last.get("error")) else "command")
    return DeliveryFailures(target, count, float(last.get("ts") or 0))


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
