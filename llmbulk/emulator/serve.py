"""The emulator's HTTP server: one Starlette app, each provider under its own prefix, on loopback only.

`/openai/v1`, `/anthropic` and `/gemini` are separate mounts because OpenAI and Gemini share
paths such as `/v1/batches`. `FaultInjector` wraps the app: it counts calls per route and applies
injected HTTP faults (error answers, dropped connections, timeouts, cut or garbled bodies).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import ipaddress
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, Router

from llmbulk.emulator.engine import Emulator, EmulatorConfig, HttpFault
from llmbulk.emulator.http import RequestIds
from llmbulk.emulator.vendors import VENDORS, VendorScope

# (prefix, module with ROUTES, CODEC and REQUEST_ID_HEADER), mounted when the module exists; the
# OpenAI routes are mounted once per OpenAI-compatible vendor (`vendors.VENDORS`), each with its codec.
PROVIDER_MOUNTS = (
    ("/openai/v1", "llmbulk.emulator.routes_openai"),
    ("/anthropic", "llmbulk.emulator.routes_anthropic"),
    ("/gemini", "llmbulk.emulator.routes_gemini"),
)
MOUNTED: list[tuple[str, str]] = [(p, p.strip("/").split("/")[0]) for p, _ in PROVIDER_MOUNTS] + [
    (v.prefix, v.name) for v in VENDORS if v.name != "openai"
]  # (prefix, provider), for telling a faulted request's provider


def check_loopback(host: str) -> None:
    """The emulator never listens beyond this machine."""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(f"the emulator binds loopback addresses only (127.0.0.1, ::1, localhost), not {host!r}")


def fault_response(emulator: Emulator, provider: str, fault: HttpFault) -> Response:
    """The injected error in the provider's own shape (its codec's `http_error`), with retry hints."""
    message = f"Injected fault: HTTP {fault.status}"
    codec = emulator.codecs.get(provider)
    status = fault.status or 500
    response = codec.http_error(status, message) if codec else JSONResponse({"error": message}, status_code=status)
    if fault.retry_after_ms is not None:
        response.headers["retry-after-ms"] = str(fault.retry_after_ms)
        response.headers["retry-after"] = str(max(1, fault.retry_after_ms // 1000))
    return response


def build_app(emulator: Emulator, base_url: str = "") -> FaultInjector:
    """One app: each provider's routes under its prefix (answers stamped with its request-id header),
    its codec registered with the core, and `/_emulator/stats`."""
    mounts: list[Any] = []
    for prefix, module_name in PROVIDER_MOUNTS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        router: Any = Router(routes=module.ROUTES)
        if module.REQUEST_ID_HEADER:
            router = RequestIds(router, module.REQUEST_ID_HEADER)
        codecs = getattr(module, "CODECS", None)
        if codecs is None:
            emulator.codecs[prefix.strip("/").split("/")[0]] = module.CODEC
            mounts.append(Mount(prefix, app=router))
            continue
        for vendor in VENDORS:
            emulator.codecs[vendor.name] = codecs[vendor.name]
            scoped: Any = VendorScope(router, vendor)
            mounts.append(Mount(vendor.prefix, app=scoped))
    app = Starlette(routes=[Route("/_emulator/stats", _stats), *mounts])
    app.state.emulator = emulator
    return FaultInjector(app, emulator)


async def _stats(request: Request) -> Response:
    emulator: Emulator = request.app.state.emulator
    return JSONResponse({"calls": emulator.calls, "total": sum(emulator.calls.values())})


class FaultInjector:
    """ASGI wrapper outside the app: counts calls and applies injected HTTP faults.

    It sits outside Starlette so that `send` is the server's own, whose transport can be aborted:
    a reset or a cut body reaches the SDK as a real broken connection, not as an HTTP error.
    """

    def __init__(self, app: Any, emulator: Emulator) -> None:
        self.app, self.emulator = app, emulator

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        key = f"{method} {path}"
        self.emulator.calls[key] = self.emulator.calls.get(key, 0) + 1
        fault = self.emulator.http_fault(method, path)
        if fault is None:
            await self.app(scope, receive, send)
            return
        self.emulator.audit("fault.http", _provider_of(path), key, action=fault.action, status=fault.status)
        if fault.action == "status":
            await fault_response(self.emulator, _provider_of(path), fault)(scope, receive, send)
        elif fault.action in ("reset", "timeout"):
            if fault.after:
                await self.app(scope, receive, _swallow)
            if fault.action == "timeout":
                await asyncio.sleep(fault.delay_ms / 1000)
            _abort(send)
        else:
            await self.app(scope, receive, _spoiling(send, fault.action))


async def _swallow(_message: dict[str, Any]) -> None:
    """The handled request's answer, never sent."""


def _spoiling(send: Any, action: str) -> Any:
    """A `send` that cuts the body halfway (`truncate`) or garbles one byte of it (`corrupt`)."""
    state: dict[str, Any] = {"expected": None, "sent": 0, "done": False}

    async def spoiled(message: dict[str, Any]) -> None:
        if state["done"]:
            return
        if message["type"] == "http.response.start":
            length = dict(message.get("headers") or []).get(b"content-length")
            state["expected"] = int(length) if length else None
            await send(message)
            return
        body: bytes = message.get("body", b"")
        if action == "corrupt":
            if body and not state["sent"]:
                body = _garbled(body)
            state["sent"] += len(body)
            await send({**message, "body": body})
            return
        half = state["expected"] // 2 if state["expected"] else state["sent"] + len(body) // 2
        if state["sent"] + len(body) >= half or not message.get("more_body"):
            await send({"type": "http.response.body", "body": body[: max(0, half - state["sent"])], "more_body": True})
            state["done"] = True
            _abort(send)
            return
        state["sent"] += len(body)
        await send(message)

    return spoiled


def _garbled(body: bytes) -> bytes:
    """The body with the first `{` of its middle line replaced, so that line is no longer JSON."""
    middle = body.find(b"\n", len(body) // 2)
    start = middle + 1 if 0 <= middle < len(body) - 1 else 0
    brace = body.find(b"{", start)
    if brace < 0:
        brace = body.find(b"{")
    return body if brace < 0 else body[:brace] + b"#" + body[brace + 1 :]


def _abort(send: Any) -> None:
    """Drop the client's connection with a TCP reset (uvicorn's `send` is a method of its request cycle)."""
    cycle: Any = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise ConnectionResetError("injected fault: connection dropped")  # the server answers 500 instead
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    cycle.disconnected = True  # so the server does not log the unanswered request as an app error


def _provider_of(path: str) -> str:
    return next((name for prefix, name in MOUNTED if path.startswith(prefix + "/") or path == prefix), "")


class EmulatorServer:
    """The emulator on 127.0.0.1: in a thread for tests and `--emulate`, or in the foreground."""

    def __init__(
        self, state_dir: Path, config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        check_loopback(host)
        self.emulator = Emulator(Path(state_dir), config)
        self.host, self.port = host, port
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/openai/v1"

    @property
    def anthropic_base_url(self) -> str:
        return f"{self.url}/anthropic"

    @property
    def gemini_base_url(self) -> str:
        return f"{self.url}/gemini"

    def _make_server(self) -> uvicorn.Server:
        self.emulator.public_url = lambda: self.url  # type: ignore[attr-defined]
        config = uvicorn.Config(
            build_app(self.emulator), host=self.host, port=self.port, log_level="warning", access_log=False,
            lifespan="off", timeout_keep_alive=30,
        )  # fmt: skip
        return uvicorn.Server(config)

    def bind(self) -> socket.socket:
        """Listen on host:port now (port 0 → a free one, known at once); OSError when it is taken.

        Binding before serving lets `emulator serve` refuse a busy port before it prints anything,
        and works for IPv6 hosts (`::1`) as well as IPv4.
        """
        if self._socket is None:
            family, kind, proto, _, address = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)[0]
            sock = socket.socket(family, kind, proto)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT only; a listener still conflicts
                sock.bind(address)
                sock.listen(2048)
            except OSError:
                sock.close()
                raise
            sock.set_inheritable(True)
            self._socket = sock
            self.port = sock.getsockname()[1]
        return self._socket

    def start(self) -> EmulatorServer:
        """Serve in a background thread; returns once listening (port resolved if 0)."""
        sock = self.bind()
        self._server = self._make_server()
        self._server.config.install_signal_handlers = False  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="llmbulk-emulator", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the emulator did not start")
            time.sleep(0.01)
        return self

    def serve(self) -> None:
        """Serve in the foreground until interrupted."""
        sock = self.bind()
        self._server = self._make_server()
        self._server.run(sockets=[sock])

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
