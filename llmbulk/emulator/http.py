"""What the three providers' routes share: the emulator behind a request, JSON bodies, query ranges,
cursor paging, and a request-id header on every answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request

from llmbulk.emulator.engine import Emulator, new_id

ASGIApp = Callable[..., Any]


def emulator_of(request: Request) -> Emulator:
    """The emulator serving this request (set on the app by `serve.build_app`)."""
    return request.app.state.emulator  # type: ignore[no-any-return]


def base_url(request: Request, prefix: str) -> str:
    """This emulator's own URL for `prefix`, as the client reached it (absolute URLs in answers)."""
    return f"{request.url.scheme}://{request.url.netloc}{prefix}"


async def json_body(request: Request) -> Any:
    """The parsed body, or `INVALID` when it is not JSON."""
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return INVALID


INVALID = object()


def int_query(request: Request, name: str, default: int, low: int, high: int) -> int | str:
    """An integer query parameter within [low, high], or the problem as text."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        return f"{name}: Input should be a valid integer, got {raw!r}"
    if not low <= value <= high:
        return f"{name}: Input should be between {low} and {high}, got {value}"
    return value


def page_after(items: list[dict[str, Any]], after: str | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """The `limit` items after the one whose id is `after` (all when None), and whether more follow."""
    if after is not None:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    return items[:limit], len(items) > limit


def page_before(items: list[dict[str, Any]], before: str, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """The `limit` items just before the one whose id is `before`, and whether more precede them."""
    ids = [item["id"] for item in items]
    if before not in ids:
        return [], False
    earlier = items[: ids.index(before)]
    return earlier[-limit:], len(earlier) > limit


class RequestIds:
    """ASGI wrapper: every answer carries `header` (OpenAI `x-request-id`, Anthropic `request-id`).

    Source: OpenAI and Anthropic API references ("every response includes a request id header");
    handlers that already set one (errors whose body repeats it) keep theirs.
    """

    def __init__(self, app: ASGIApp, header: str, prefix: str = "req_") -> None:
        self.app, self.header, self.prefix = app, header.encode(), prefix

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def stamped(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                if not any(name.lower() == self.header for name, _ in headers):
                    headers.append((self.header, new_id(self.prefix).encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, stamped)
