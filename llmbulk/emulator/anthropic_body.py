"""The Anthropic create body, checked request by request as it streams in, never held whole.

`POST /v1/messages/batches` takes `{"requests": [...]}` up to 256 MB. Parsed whole, such a body
becomes several times its size in Python objects; here each request is parsed as soon as it has
arrived (`body_stream`), checked as the create endpoint checks it, and written to the batch's
input file. The answers are those a whole-body parse and check would give, in the same order:
too large, then not JSON, then the envelope's first problem.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from llmbulk.emulator.body_stream import ArrayMemberReader, InvalidJSON

CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MAX_REQUESTS = 100_000
MAX_BODY_BYTES = 256 * 1024 * 1024
Problem = tuple[int, str, str]  # HTTP status, Anthropic error type, message


async def read_requests(chunks: AsyncIterator[bytes], path: Path) -> tuple[int, Problem | None]:
    """Stream the body's requests to `path` (one JSON line each): (their number, None) when the
    create endpoint accepts the body, else (0, the error it answers); nothing is left at `path` then."""
    envelope = Envelope(path)
    reader = ArrayMemberReader("requests")
    size, invalid, problem, accepted = 0, False, None, False
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > MAX_BODY_BYTES or invalid:
                continue  # read to the end all the same, so the client gets the answer, not a broken pipe
            try:
                _apply(envelope, reader.feed(chunk))
            except InvalidJSON:
                invalid = True
        if size > MAX_BODY_BYTES:
            problem = (413, "request_too_large", f"Request exceeds the maximum size of {MAX_BODY_BYTES} bytes.")
        elif not invalid:
            try:
                _apply(envelope, reader.close())
            except InvalidJSON:
                invalid = True
        if invalid and problem is None:
            problem = (400, "invalid_request_error", "The request body is not valid JSON.")
        if problem is None and (found := envelope.verdict()) is not None:
            problem = (400, "invalid_request_error", found)
        accepted = problem is None
    finally:
        envelope.close()
        if not accepted:  # refused, or the client went away mid-body
            path.unlink(missing_ok=True)
    return (envelope.count, None) if accepted else (0, problem)


def _apply(envelope: Envelope, events: list[tuple[Any, ...]]) -> None:
    for event in events:
        if event[0] == "item":
            envelope.add(event[1])
        elif event[0] == "array":
            envelope.start()
        else:
            envelope.drop()


class Envelope:
    """What the create endpoint itself checks, request by request as the body streams in (API reference:
    requests 1..100,000; custom_id ^[a-zA-Z0-9_-]{1,64}$, unique; params an object). Valid requests
    are written to `path`, one JSON line each, until the first problem; the count check wins over
    any per-request problem, as a whole-body check would report it first."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.out: BinaryIO | None = None
        self.count = 0
        self.given = False  # a `requests` array was given
        self.problem: str | None = None
        self.seen: set[str] = set()

    def start(self) -> None:
        """A (new) `requests` array: a repeated key replaces the earlier one."""
        self.close()
        self.out = open(self.path, "wb")  # noqa: SIM115 - closed by close()
        self.count, self.given, self.problem, self.seen = 0, True, None, set()

    def drop(self) -> None:
        """`requests` given as something other than an array."""
        self.close()
        self.path.unlink(missing_ok=True)
        self.given, self.count, self.problem = False, 0, None

    def add(self, item: Any) -> None:
        index = self.count
        self.count += 1
        if self.problem is not None or self.count > MAX_REQUESTS:
            return
        custom_id = item.get("custom_id") if isinstance(item, dict) else None
        if not isinstance(custom_id, str) or not CUSTOM_ID.match(custom_id):
            self.problem = f"requests.{index}.custom_id: String should match pattern '{CUSTOM_ID.pattern}'"
        elif custom_id in self.seen:
            self.problem = f"requests.{index}.custom_id: duplicate custom_id {custom_id!r}"
        elif not isinstance(item.get("params"), dict):
            self.problem = f"requests.{index}.params: Input should be a valid dictionary"
        elif self.out is not None:
            self.seen.add(custom_id)
            self.out.write(orjson.dumps(item) + b"\n")

    def verdict(self) -> str | None:
        if not self.given or not self.count:
            return "requests: at least 1 request is required"
        if self.count > MAX_REQUESTS:
            return f"requests: at most {MAX_REQUESTS} requests are allowed"
        return self.problem

    def close(self) -> None:
        if self.out is not None:
            self.out.close()
            self.out = None
