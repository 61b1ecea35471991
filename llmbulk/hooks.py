"""Where events go besides the job log: a command (`--on-event CMD`, the event as JSON on stdin) and a
webhook (`--webhook URL`, the event POSTed), and which events they hear (`--notify-on`).

A webhook's userinfo becomes HTTP Basic auth (the URL is sent without it) and redirects are not
followed (they would carry the credentials elsewhere); targets are only ever shown redacted.
"""

from __future__ import annotations

import base64
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from llmbulk.errors import UsageError
from llmbulk.redact import URL_RE, redact_command, redact_url, url_secrets

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


def _opener() -> Any:
    """An opener that follows no redirect: one would resend the event (and the Authorization header)
    to another address. Built on first use: urllib.request is a slow import for every command."""
    import urllib.request

    class NoRedirects(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    return urllib.request.build_opener(NoRedirects())


@dataclass
class EventHooks:
    """Where events go besides the job log, which of them each hears, and the senders that deliver them."""

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

    def targets(self) -> Iterable[tuple[str, Callable[[bytes], None]]]:
        """(label fit to log, sender) per hook."""
        if self.on_event:
            yield f"command {redact_command(self.on_event)!r}", self._run_command
        if self.webhook:
            yield f"webhook {redact_url(self.webhook)}", self._post

    def secrets(self) -> list[str]:
        """Every secret in the targets, to scrub from delivery errors."""
        found = url_secrets(self.webhook) if self.webhook else []
        for url in URL_RE.findall(self.on_event or ""):
            found += url_secrets(url)
        return found

    def _run_command(self, payload: bytes) -> None:
        result = subprocess.run(
            self.on_event or "", shell=True, input=payload, capture_output=True, timeout=self.timeout * 6
        )
        if result.returncode != 0:
            raise RuntimeError(f"exit code {result.returncode}")

    def _post(self, payload: bytes) -> None:
        import urllib.error
        import urllib.request

        last: Exception | None = None
        url, headers = webhook_request(self.webhook or "")
        opener = _opener()
        for attempt in range(self.attempts):
            request = urllib.request.Request(url, data=payload, headers=headers, method="POST")
            try:
                with opener.open(request, timeout=self.timeout) as response:
                    if response.status < 300:
                        return
                    last = RuntimeError(f"HTTP {response.status}")
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                last = exc
            if attempt + 1 < self.attempts:  # no pause after the last try
                self.sleep(0.25 * 2**attempt)
        raise RuntimeError(str(last))


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(name == p or (p.endswith(".*") and name.startswith(p[:-1])) for p in patterns)


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
