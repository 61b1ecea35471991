"""A JSON object body read as it arrives, its one large array member handed out element by element.

The Anthropic create body is `{"requests": [...]}` and can reach 256 MB; parsed whole it becomes
several times that in Python objects. Here each element of the named array member is parsed on its
own (orjson over its bytes) as soon as it is complete; the other members, which are small, are
parsed as whole values. The grammar is checked exactly: a body `orjson.loads` would reject raises
`InvalidJSON` here too, and a repeated key replaces the earlier value, as with orjson.

How a value's end is found without a byte-by-byte scanner: it ends just before the next `,`, `]`
or `}` (`:` for a key) that follows it, so each such candidate is tried with orjson in turn (for a
value that opens with `{`, `[` or `"`, only candidates right after its closing character). A cut
inside a valid value fails only at its very end ("unexpected end of data"); a failure anywhere
else means the body is not JSON, and no longer candidate could succeed.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

WHITESPACE = frozenset(b" \t\n\r")
CLOSERS = {ord("{"): ord("}"), ord("["): ord("]"), ord('"'): ord('"')}
KEY_END = re.compile(rb":")
MEMBER_END = re.compile(rb"[,}]")
ELEMENT_END = re.compile(rb"[,\]]")
COMPACT_AT = 1 << 20


class InvalidJSON(ValueError):
    """The body is not one JSON value."""


class ArrayMemberReader:
    """Feed it the body's chunks; it returns events: `("array",)` when the member's array opens,
    `("item", value)` per element, `("value", value)` when the member is given a non-array value.

    A repeated member starts over with a new `("array",)` or `("value", …)`. A body that is valid
    JSON but not an object is kept whole and only checked at `close` (it has no such member).
    """

    def __init__(self, member: str) -> None:
        self.member = member
        self.buf = bytearray()
        self.pos = 0  # the next byte to read in `buf`
        self.resume = 0  # where the next end candidate of a value begun at `pos` is looked for
        self.state = "start"
        self.key: str | None = None
        self.whole = False  # not an object: kept whole for `close`

    def feed(self, chunk: bytes) -> list[tuple[Any, ...]]:
        self.buf += chunk
        if self.whole:
            return []
        events: list[tuple[Any, ...]] = []
        self._advance(events)
        if self.pos >= COMPACT_AT:  # drop what has been read; a pending value stays in full
            del self.buf[: self.pos]
            self.resume = max(0, self.resume - self.pos)
            self.pos = 0
        return events

    def close(self) -> list[tuple[Any, ...]]:
        """The end of the body: raises `InvalidJSON` unless it was one complete JSON value."""
        if self.whole:
            try:
                orjson.loads(self.buf)
            except orjson.JSONDecodeError as exc:
                raise InvalidJSON(str(exc)) from None
            return []
        events: list[tuple[Any, ...]] = []
        self._advance(events)
        if self.state != "end" or self._skip() < len(self.buf):
            raise InvalidJSON("the body ends before its JSON value does")
        return events

    # ---- the object's grammar ----------------------------------------------------------------

    def _advance(self, events: list[tuple[Any, ...]]) -> None:
        buf = self.buf
        while True:
            pos = self._skip()
            if pos >= len(buf):
                return
            byte, state = buf[pos], self.state
            if state == "start":
                if byte != ord("{"):
                    self.whole = True
                    return
                self._step(pos, "first_key")
            elif state in ("first_key", "key"):
                if byte == ord("}") and state == "first_key":
                    self._step(pos, "end")
                    continue
                if byte != ord('"'):
                    raise InvalidJSON(f"expected a key at byte {pos}")
                key = self._value(pos, KEY_END)
                if key is _MORE:
                    return
                self.key, self.state = key, "colon"
            elif state == "colon":
                self._expect(pos, byte, b":", "value")
            elif state == "value":
                if self.key == self.member and byte == ord("["):
                    events.append(("array",))
                    self._step(pos, "first_element")
                    continue
                value = self._value(pos, MEMBER_END)
                if value is _MORE:
                    return
                if self.key == self.member:
                    events.append(("value", value))
                self.state = "after_value"
            elif state == "after_value":
                self._expect(pos, byte, b",}", "key", "end")
            elif state in ("first_element", "element"):
                if byte == ord("]") and state == "first_element":
                    self._step(pos, "after_value")
                    continue
                item = self._value(pos, ELEMENT_END)
                if item is _MORE:
                    return
                events.append(("item", item))
                self.state = "after_element"
            elif state == "after_element":
                self._expect(pos, byte, b",]", "element", "after_value")
            else:  # "end": nothing but whitespace may follow
                raise InvalidJSON(f"unexpected content after the body's JSON value at byte {pos}")

    def _skip(self) -> int:
        buf, pos = self.buf, self.pos
        while pos < len(buf) and buf[pos] in WHITESPACE:
            pos += 1
        self.pos = pos
        return pos

    def _step(self, pos: int, state: str) -> None:
        self.pos, self.state = pos + 1, state

    def _expect(self, pos: int, byte: int, allowed: bytes, *states: str) -> None:
        index = allowed.find(bytes([byte]))
        if index < 0:
            raise InvalidJSON(f"expected one of {allowed.decode()!r} at byte {pos}")
        self._step(pos, states[index])

    def _value(self, pos: int, ends: re.Pattern[bytes]) -> Any:
        """The value starting at `pos`, or `_MORE` when its end has not arrived yet."""
        buf = self.buf
        closer = CLOSERS.get(buf[pos])
        for match in ends.finditer(buf, max(self.resume, pos + 1)):
            end = match.start()
            self.resume = end + 1
            if closer is not None:
                last = end - 1
                while buf[last] in WHITESPACE:
                    last -= 1
                if buf[last] != closer or last == pos:
                    continue
            try:
                value = orjson.loads(buf[pos:end])
            except orjson.JSONDecodeError as exc:
                if exc.doc and exc.pos >= len(exc.doc):  # cut short: the value goes on past this candidate
                    continue
                raise InvalidJSON(f"{exc.msg} in the value at byte {pos}") from None
            self.pos, self.resume = end, 0
            return value
        return _MORE


_MORE = object()
