"""The emulator's Anthropic create body is read as a stream: whatever the chunking, it accepts and
refuses exactly what a whole-body `orjson.loads` and check would, with the same messages."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmbulk.emulator import anthropic_body
from llmbulk.emulator.anthropic_body import CUSTOM_ID, read_requests


def whole_body_answer(raw: bytes) -> tuple[int, Any]:
    """The reference: parse the whole body, then check the envelope (the emulator's former create)."""
    if len(raw) > anthropic_body.MAX_BODY_BYTES:
        return 0, (
            413,
            "request_too_large",
            f"Request exceeds the maximum size of {anthropic_body.MAX_BODY_BYTES} bytes.",
        )
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return 0, (400, "invalid_request_error", "The request body is not valid JSON.")
    requests = body.get("requests") if isinstance(body, dict) else None
    problem = None
    if not isinstance(requests, list) or not requests:
        problem = "requests: at least 1 request is required"
    elif len(requests) > anthropic_body.MAX_REQUESTS:
        problem = f"requests: at most {anthropic_body.MAX_REQUESTS} requests are allowed"
    else:
        seen: set[str] = set()
        for index, item in enumerate(requests):
            custom_id = item.get("custom_id") if isinstance(item, dict) else None
            if not isinstance(custom_id, str) or not CUSTOM_ID.match(custom_id):
                problem = f"requests.{index}.custom_id: String should match pattern '{CUSTOM_ID.pattern}'"
            elif custom_id in seen:
                problem = f"requests.{index}.custom_id: duplicate custom_id {custom_id!r}"
            elif not isinstance(item.get("params"), dict):
                problem = f"requests.{index}.params: Input should be a valid dictionary"
            if problem:
                break
            seen.add(custom_id)
    if problem:
        return 0, (400, "invalid_request_error", problem)
    return len(requests), [orjson.dumps(item) + b"\n" for item in requests]


def streamed_answer(raw: bytes, size: int, path: Path) -> tuple[int, Any]:
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), size):
            yield raw[start : start + size]

    count, problem = asyncio.run(read_requests(chunks(), path))
    if problem is not None:
        assert not path.exists()  # a refused body leaves no input file
        return count, problem
    with open(path, "rb") as fh:
        return count, list(fh)


def check(raw: bytes, path: Path, sizes: tuple[int, ...] = (1, 2, 7, 64, 1 << 16)) -> tuple[int, Any]:
    expected = whole_body_answer(raw)
    for size in sizes:
        assert streamed_answer(raw, size, path) == expected, (raw[:200], size)
    return expected


def request(custom_id: str, text: str = "hi", **extra: Any) -> dict[str, Any]:
    params = {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": text}]}
    return {"custom_id": custom_id, "params": params, **extra}


TRICKY_TEXTS = ['}, {"custom_id": "x"', "]}]}", '\\"', "a\\", "é ü 中 🙂", "\u2028", ":", "{[", "\\\\}", "\t\n"]

BODIES: list[bytes] = [
    orjson.dumps({"requests": [request("a"), request("b")]}),
    json.dumps({"requests": [request(f"r{i}", t) for i, t in enumerate(TRICKY_TEXTS)]}, indent=3).encode(),
    json.dumps({"requests": [request(f"r{i}", t) for i, t in enumerate(TRICKY_TEXTS)]}, ensure_ascii=False).encode(),
    b' \n{ "other" : {"x": [1, {"y": "},]"}]} , "requests" :\t[ ' + orjson.dumps(request("a")) + b" ] , "
    b'"z": null, "n": -1.5e3, "t": true }  \n',
    b'{"requests": [' + orjson.dumps(request("a")) + b'], "requests": [' + orjson.dumps(request("b")) + b"]}",
    b'{"requests": [' + orjson.dumps(request("a")) + b'], "requests": 5}',
    b'{"requests": 5, "requests": [' + orjson.dumps(request("c")) + b"]}",
    b'{"requests": []}',
    b"{}",
    b"[]",
    b'"requests"',
    b"12",
    b"",
    b"   ",
    b'{"requests": [' + orjson.dumps(request("a")) + b",]}",  # trailing comma
    b'{"requests": [' + orjson.dumps(request("a")) + b"]",  # no closing brace
    b'{"requests": [' + orjson.dumps(request("a")) + b"]}}",  # one too many
    b'{"requests": [' + orjson.dumps(request("a")) + b"]} x",
    b'{"requests": [' + orjson.dumps(request("a"))[:-1] + b"]}",  # an element cut short
    b'{"requests": [{"custom_id": "a", "params": tru}]}',
    b'{"requests": [{"custom_id": "a", "params": {}}, {"custom_id": "\xff", "params": {}}]}',  # not UTF-8
    b'{"requests": [{"custom_id": "a", "params": {}} {"custom_id": "b", "params": {}}]}',  # no comma
    b'{"requests" [1]}',
    b"{requests: [1]}",
    b'{"requests": [,]}',
    b'{"requests": [1, 2]}',
    b'{"requests": [{"custom_id": "a b", "params": {}}]}',
    b'{"requests": [{"custom_id": "a", "params": {}}, {"custom_id": "a", "params": {}}]}',
    b'{"requests": [{"custom_id": "a", "params": []}]}',
    b'{"requests": [{"custom_id": "a", "params": {}}, "x", {"custom_id": "a b"}]}',
    b'{"requests": [{"custom_id": "a", "params": {}}, ' + b'{"custom_id": "b", "params": {}}, ' * 3 + b"7]}",
]


@pytest.mark.parametrize("raw", BODIES, ids=range(len(BODIES)))
def test_streamed_checks_answer_as_a_whole_body_parse(raw: bytes, tmp_path: Path) -> None:
    check(raw, tmp_path / "requests.jsonl")


def test_the_count_limit_wins_over_a_request_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(anthropic_body, "MAX_REQUESTS", 3)
    items = [request("a"), request("a b"), request("c"), request("d")]
    problem = check(orjson.dumps({"requests": items}), tmp_path / "r.jsonl")[1]
    assert problem == (400, "invalid_request_error", "requests: at most 3 requests are allowed")
    assert check(orjson.dumps({"requests": items[:3]}), tmp_path / "r.jsonl")[1][2].startswith("requests.1.custom_id")


def test_too_large_a_body_is_refused_before_anything_else(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(anthropic_body, "MAX_BODY_BYTES", 100)
    assert check(b"{" * 101, tmp_path / "r.jsonl")[1][0] == 413
    ok = orjson.dumps({"requests": [{"custom_id": "a", "params": {}}]})
    assert check(ok, tmp_path / "r.jsonl") == (1, [b'{"custom_id":"a","params":{}}\n'])


texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
                      max_leaves=8)  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    items=st.lists(st.tuples(st.from_regex(r"[a-z0-9_-]{1,8}", fullmatch=True), texts, values), max_size=6),
    extra=st.dictionaries(texts, values, max_size=2),
    indent=st.sampled_from([None, 0, 2]),
    ascii_only=st.booleans(),
    size=st.integers(1, 50),
)
def test_any_body_streams_as_it_parses(items, extra, indent, ascii_only, size, tmp_path: Path) -> None:
    body = {**extra, "requests": [request(cid, text, extra=value) for cid, text, value in items]}
    raw = json.dumps(body, indent=indent, ensure_ascii=ascii_only).encode()
    expected = whole_body_answer(raw)
    assert streamed_answer(raw, size, tmp_path / "r.jsonl") == expected
    # Cut anywhere, the body is not JSON: the stream says so too.
    cut = raw[: len(raw) * 2 // 3]
    assert streamed_answer(cut, size, tmp_path / "r.jsonl") == whole_body_answer(cut)


def test_a_broken_request_is_known_as_soon_as_it_has_arrived() -> None:
    """Not only at the end of a body of up to 256 MB: the rest is then only read, never parsed."""
    from llmbulk.emulator.body_stream import ArrayMemberReader, InvalidJSON

    reader = ArrayMemberReader("requests")
    assert reader.feed(b'{"requests": [{"custom_id": "a", "params": {}}, ') == [
        ("array",), ("item", {"custom_id": "a", "params": {}})
    ]  # fmt: skip
    with pytest.raises(InvalidJSON):
        reader.feed(b'{"custom_id": "b", "params": tru}, ')
    reader = ArrayMemberReader("requests")
    assert reader.feed(b'{"requests": [{"custom_id": "a", "text": "}, {"') == [("array",)]  # not complete yet
    assert reader.feed(b"}, ") == [("item", {"custom_id": "a", "text": "}, {"})]
