"""Request keys and the reuse policy: when two rows ask the same thing, and which answers may be reused.

A request key is a hash of everything that determines an answer: where it is sent (provider,
emulated or not, gateway URL), the model and endpoint, the rendered messages and system prompt,
every parameter and the schema. Key order and whitespace do not matter (canonical JSON). Rows
with the same key are the same request: a job sends it once, and an answer a job already paid
for is reused by later jobs unless `--fresh` says otherwise.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import orjson

from llmbulk.attachments import ATTACHMENT
from llmbulk.errors import UsageError
from llmbulk.models import Task

# Bumped when llmbulk starts rendering the same task into a different request (a new default
# parameter, a changed schema transform): answers keyed by an older version are then not reused.
KEY_VERSION = 1

_CANONICAL = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


@dataclass(frozen=True, slots=True)
class ReusePolicy:
    """How a job treats earlier answers and repeated rows."""

    fresh: bool = False  # send every row: no reuse of earlier answers, no folding of repeated rows
    max_age: float | None = None  # seconds: reuse only answers recorded this recently

    def oldest(self, now: float) -> float | None:
        """The earliest answer time that may be reused (None: any)."""
        return None if self.max_age is None else now - self.max_age


@dataclass(slots=True)
class ReuseCounts:
    """What packing did with the job's rows."""

    rows: int = 0
    sent: int = 0  # requests going to the provider
    reused: int = 0  # rows answered from earlier jobs' answers
    repeats: int = 0  # rows asking what an earlier row of this job asks: answered with it
    saved_usd: float = 0.0  # what the reused rows would have cost at the batch rate
    saved_known: bool = True  # False when some reused row's price is unknown

    def summary(self) -> str | None:
        """`12,031 rows: 11,790 answered from earlier jobs ($4.12 not spent), 241 sent` (None if all were sent)."""
        if not self.reused and not self.repeats:
            return None
        parts = []
        if self.reused:
            saved = f"${self.saved_usd:,.2f}" if self.saved_known else "cost unknown"
            if self.saved_known and 0 < self.saved_usd < 0.01:
                saved = f"${self.saved_usd:.6f}".rstrip("0")
            parts.append(f"{self.reused:,} answered from earlier jobs ({saved} not spent)")
        if self.repeats:
            parts.append(f"{self.repeats:,} repeat{'s' if self.repeats == 1 else ''} another row's request (sent once)")
        parts.append(f"{self.sent:,} sent")
        return f"{self.rows:,} rows: " + ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "sent": self.sent,
            "reused": self.reused,
            "repeats": self.repeats,
            "saved_usd": self.saved_usd if self.saved_known else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReuseCounts:
        """Counts as `to_json` stored them with the job's estimate."""
        saved = data.get("saved_usd")
        return cls(
            rows=int(data.get("rows") or 0), sent=int(data.get("sent") or 0), reused=int(data.get("reused") or 0),
            repeats=int(data.get("repeats") or 0), saved_usd=float(saved or 0.0), saved_known=saved is not None,
        )  # fmt: skip


class RequestKeys:
    """Computes request keys for one job's tasks: the job-wide part is hashed once."""

    def __init__(
        self,
        provider: str,
        model: str,
        endpoint: str | None,
        *,
        emulated: bool,
        base_url: str | None = None,
        output_schema: dict[str, Any] | None = None,
        sample: int | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        target = {
            "v": KEY_VERSION,
            "provider": provider,
            "emulated": emulated,  # an emulated answer is a placeholder: never reused for a real job
            "base_url": base_url,
            "model": model,
            "endpoint": endpoint,
            "schema": output_schema,
            "sample": sample,
        }
        self._prefix = hashlib.blake2b(orjson.dumps(target, option=_CANONICAL), digest_size=16)
        # The job's own parameters (every templated task shares this dict), serialized once.
        self._params = params
        self._params_json = orjson.dumps(params, option=_CANONICAL) if params is not None else b""

    def key(self, task: Task) -> str:
        """The hash of `[messages, system, params]` as canonical JSON, after the job-wide part."""
        digest = self._prefix.copy()
        digest.update(self.canonical(task))
        return digest.hexdigest()

    def canonical(self, task: Task) -> bytes:
        """`orjson.dumps((messages, system, params), OPT_SORT_KEYS)`, built faster for the common
        task (one user message of text, the job's parameters): the same bytes either way."""
        messages, params = task.messages, task.params
        if params is self._params and len(messages) == 1:
            message = messages[0]
            content = message.get("content")
            if type(content) is str and message.get("role") == "user" and len(message) == 2:
                system = b"null" if task.system is None else orjson.dumps(task.system)
                return b"".join((
                    b'[[{"content":', orjson.dumps(content), b',"role":"user"}],', system, b",", self._params_json, b"]"
                ))  # fmt: skip
        if any(type(m.get("content")) is list for m in messages):
            messages = [_content_keyed(m) for m in messages]
        return orjson.dumps((messages, task.system, params), option=_CANONICAL)


def _content_keyed(message: dict[str, Any]) -> dict[str, Any]:
    """A message with each attachment part reduced to what its content is (type and hash), never where
    it was read from: a moved file still reuses its answers, a changed one does not."""
    content = message.get("content")
    if type(content) is not list:
        return message
    keyed = [
        {"type": ATTACHMENT, "media_type": p["media_type"], "sha256": p["sha256"]}
        if isinstance(p, dict) and p.get("type") == ATTACHMENT
        else p
        for p in content
    ]
    return {**message, "content": keyed}


_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str, option: str) -> float:
    """`30d`, `12h`, `90m`, `45s`, `2w` (or plain seconds) → seconds."""
    match = _AGE.match(text.lower())
    if match is None or float(match.group(1)) <= 0:
        raise UsageError(f"{option} {text!r} is not a duration", hint="e.g. 7d, 12h, 30m, 90s or 2w")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
