"""Job and batch events: a JSON-lines log per job, plus user hooks (a command, a webhook).

Every transition is an event. The log under the job's folder records them all; `--on-event CMD`
gets each one as JSON on stdin and `--webhook URL` gets it POSTed. Delivery failures are
logged, never fatal: a dead receiver must not break a run.

Hook targets carry credentials (`https://user:pw@host/hook?token=…`, `curl -u user:pw …`): a
webhook's userinfo becomes HTTP Basic auth (the URL is sent without it), redirects are not
followed (they would carry the credentials elsewhere), and every URL or command line that is
logged or printed goes through `redact_url` / `redact_command` first.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import subprocess
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

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


# ---- credentials in URLs and command lines -------------------------------------------------------

REDACTED = "***"
# A query (or fragment) parameter, header or option whose name contains one of these holds a secret.
SECRET_NAME = re.compile(r"token|key|pass|pwd|secret|sig|auth|credential|session|cookie", re.IGNORECASE)
_URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_VALUE = r"(?:'[^']*'|\"[^\"]*\"|[^\s'\"]+)"
_SECRET_WORD = rf"[\w.-]*(?:{SECRET_NAME.pattern})[\w.-]*"
_COMMAND_SECRETS = (
    # NAME=value: an environment assignment or --option=value
    re.compile(rf"(?i)(?<![\w-])(-{{0,2}}{_SECRET_WORD}=){_VALUE}"),
    # --option value / -u user:pw (curl, wget, httpie)
    re.compile(rf"(?i)(?<![\w-])((?:--?{_SECRET_WORD}|-u|--user|--proxy-user)\s+){_VALUE}"),
    # a header such as 'Authorization: Bearer …' or 'X-Api-Key: …'
    re.compile(rf"(?i)({_SECRET_WORD}:\s*)[^'\"\n]+"),
)


def _looks_like_token(segment: str) -> bool:
    """A path segment that is a credential (Slack and Discord put the webhook's secret in the path)."""
    return len(segment) >= 16 and any(c.isalpha() for c in segment) and any(c.isdigit() for c in segment)


def _redact_params(text: str, found: list[str]) -> str:
    pairs = []
    for pair in text.split("&"):
        name, eq, value = pair.partition("=")
        if eq and value and SECRET_NAME.search(unquote(name)):
            found.append(value)
            found.append(unquote(value))
            value = REDACTED
        pairs.append(f"{name}{eq}{value}")
    return "&".join(pairs)


def _redacted_parts(url: str, keep_user: bool, keep_path: bool = False) -> tuple[str, list[str]]:
    """The URL with its secrets replaced, and the secrets themselves (raw and decoded)."""
    found: list[str] = []
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket: show no more than the scheme
        scheme = url.split("://", 1)[0] if "://" in url else ""
        return (f"{scheme}://{REDACTED}" if scheme else REDACTED), [url]
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, colon, password = userinfo.partition(":")
        if password:
            found += [password, unquote(password)]
        if keep_user:
            netloc = f"{user}:{REDACTED}@{host}" if colon else f"{user}@{host}"
        else:
            found += [user, unquote(user)] if user else []
            netloc = f"{REDACTED}@{host}"
    segments = parts.path.split("/")
    for i, segment in enumerate(segments):
        if not keep_path and _looks_like_token(unquote(segment)):
            found += [segment, unquote(segment)]
            segments[i] = REDACTED
    query = _redact_params(parts.query, found)
    fragment = _redact_params(parts.fragment, found) if "=" in parts.fragment else parts.fragment
    secrets = [f for f in found if f and f != REDACTED]
    if not secrets:
        return url, []
    # Rebuilt by hand: urlunsplit would turn sqlite:////abs/path into sqlite://abs/path.
    before_fragment = url.split("#", 1)[0]
    rebuilt = f"{parts.scheme}:" if parts.scheme else ""
    rebuilt += f"//{netloc}" if url[len(rebuilt) :].startswith("//") else ""
    rebuilt += "/".join(segments)
    rebuilt += f"?{query}" if "?" in before_fragment else ""
    rebuilt += f"#{fragment}" if "#" in url else ""
    return rebuilt, secrets


def redact_url(url: str, *, keep_user: bool = False, keep_path: bool = False) -> str:
    """`url` fit to log: no password, no secret-looking query values or path tokens.

    The user name is hidden too unless `keep_user` (a database URL's user is not a secret; a
    webhook's often is: `https://TOKEN@host/…`); `keep_path` keeps every path segment (a
    database URL's path is a file or database name, not a credential).
    """
    return _redacted_parts(url, keep_user, keep_path)[0]


def url_secrets(url: str) -> list[str]:
    """The secrets `redact_url` hides, to scrub them from error text that may quote them."""
    return _redacted_parts(url, False)[1]


def redact_command(command: str) -> str:
    """A shell command line fit to log: its URLs redacted, and secret options, assignments and headers."""
    text = _URL_RE.sub(lambda m: redact_url(m.group(0)), command)
    for pattern in _COMMAND_SECRETS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of each secret replaced (longest first)."""
    for secret in sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def webhook_request(url: str) -> tuple[str, dict[str, str]]:
    """The URL to POST to (userinfo removed) and its headers (HTTP Basic auth from the userinfo)."""
    parts = urlsplit(url)
    headers = {"Content-Type": "application/json"}
    if "@" not in parts.netloc:
        return url, headers
    userinfo, host = parts.netloc.rsplit("@", 1)
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode("ascii")
    headers["Authorization"] = f"Basic {token}"
    return urlunsplit(parts._replace(netloc=host)), headers


def check_webhook(url: str) -> None:
    """Refuse a webhook URL that cannot be POSTed to (the error line shows it redacted)."""
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as exc:
        raise UsageError(f"--webhook {shown} is not a valid URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise UsageError(f"--webhook {shown} is not an http(s) URL", hint="e.g. https://hooks.example.com/llmbulk")
    if not parts.hostname:
        raise UsageError(f"--webhook {shown} has no host", hint="e.g. https://hooks.example.com/llmbulk")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect would resend the event (and the Authorization header) to another address."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects())


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
    warn: Callable[[str], None] | None = None  # told of each failed delivery as it happens (the CLI: stderr)

    def __post_init__(self) -> None:
        if self.webhook:
            check_webhook(self.webhook)

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
                reason = scrub(str(exc), self._secrets())
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

    def _targets(self) -> Iterable[tuple[str, Callable[[bytes], None]]]:
        """(label fit to log, sender) per hook."""
        if self.hooks.on_event:
            yield f"command {redact_command(self.hooks.on_event)!r}", self._run_command
        if self.hooks.webhook:
            yield f"webhook {redact_url(self.hooks.webhook)}", self._post

    def _secrets(self) -> list[str]:
        found = url_secrets(self.hooks.webhook) if self.hooks.webhook else []
        for url in _URL_RE.findall(self.hooks.on_event or ""):
            found += url_secrets(url)
        return found

    def _run_command(self, payload: bytes) -> None:
        result = subprocess.run(
            self.hooks.on_event or "", shell=True, input=payload, capture_output=True, timeout=self.hooks.timeout * 6
        )
        if result.returncode != 0:
            raise RuntimeError(f"exit code {result.returncode}")

    def _post(self, payload: bytes) -> None:
        last: Exception | None = None
        url, headers = webhook_request(self.hooks.webhook or "")
        for attempt in range(self.hooks.attempts):
            request = urllib.request.Request(url, data=payload, headers=headers, method="POST")
            try:
                with _OPENER.open(request, timeout=self.hooks.timeout) as response:
                    if response.status < 300:
                        return
                    last = RuntimeError(f"HTTP {response.status}")
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                last = exc
            if attempt + 1 < self.hooks.attempts:  # no pause after the last try
                self.hooks.sleep(0.25 * 2**attempt)
        raise RuntimeError(str(last))


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
