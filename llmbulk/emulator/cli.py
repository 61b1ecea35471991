"""`llmbulk emulator serve`: the emulator in the foreground, printing how to point clients at it.

Exit codes beyond the common ones: `ExitStatus.PORT_IN_USE` (8) when the port is taken; this is checked
(by binding) before anything is printed, so no `export` line ever names a server that is not there.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shlex
from pathlib import Path
from typing import Any

from llmbulk.emulator.serve import EmulatorServer
from llmbulk.emulator.settings import config_from_env, models_from
from llmbulk.emulator.vendors import VENDORS
from llmbulk.errors import ConfigError, ExitStatus, LlmbulkError, UsageError


class PortInUseError(LlmbulkError):
    """The address is taken by another process (exit 8, documented in `emulator serve --help`)."""

    exit_status = ExitStatus.PORT_IN_USE


def serve(
    host: str, port: int, state_dir: Path, batch_seconds: float, faults: Path | None, seed: int, console: Any,
    api_key: str | None = None, models: str | None = None,
) -> None:  # fmt: skip
    """Run until Ctrl-C; the printed lines are ready to paste into a shell.

    `api_key`: accept only this key (default: any key). `models`: extra `provider:model[@endpoint]`.
    """
    env = dict(os.environ)
    if faults is not None:
        env["LLMBULK_EMULATOR_FAULTS"] = f"@{faults}"
    env["LLMBULK_EMULATOR_SEED"] = str(seed)
    config = config_from_env(env, batch_seconds)
    if models:
        config.extra_models = {**config.extra_models, **models_from(models, "--models")}
    config.api_key = api_key or None
    server = _server(host, port, state_dir, config)
    key = shlex.quote(api_key or "emulator")
    q = shlex.quote  # an IPv6 URL's brackets would be a glob to the shell
    console.print(f"llmbulk emulator on {server.url} (state in {state_dir}); Ctrl-C to stop. Point clients at it:")
    console.print(f"export OPENAI_BASE_URL={q(server.openai_base_url)} OPENAI_API_KEY={key}")
    console.print(f"export ANTHROPIC_BASE_URL={q(server.anthropic_base_url)} ANTHROPIC_API_KEY={key}")
    console.print(f"export GOOGLE_GEMINI_BASE_URL={q(server.gemini_base_url)} GOOGLE_API_KEY={key}")
    vendors = ", ".join(f"{v.name} {server.url}{v.prefix}" for v in VENDORS if v.name != "openai")
    console.print(f"OpenAI-compatible vendors (give the URL as --base-url): {vendors}")
    console.print(f"calls served: {server.url}/_emulator/stats")
    with contextlib.suppress(KeyboardInterrupt):
        server.serve()


def _server(host: str, port: int, state_dir: Path, config: Any) -> EmulatorServer:
    """A server already listening, or one line saying why not."""
    if not 0 <= port <= 65535:
        raise UsageError(f"--port {port} is not a port number", hint="use 0-65535 (0 = any free port)")
    try:
        server = EmulatorServer(state_dir, config, host=host, port=port)
    except ValueError as exc:  # not a loopback address
        raise UsageError(f"--host: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot use the emulator state directory {state_dir}: {exc.strerror or exc}") from None
    try:
        server.bind()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(
                f"port {port} on {host} is already in use", hint="pick another --port, or --port 0 for a free one"
            ) from None
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return server
