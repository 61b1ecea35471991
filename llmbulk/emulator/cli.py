"""`llmbulk emulator serve`: the emulator in the foreground, printing how to point clients at it."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from llmbulk.emulator.serve import EmulatorServer
from llmbulk.emulator.settings import config_from_env


def serve(
    host: str, port: int, state_dir: Path, batch_seconds: float, faults: Path | None, seed: int, console: Any
) -> None:
    """Run until Ctrl-C; the printed lines are ready to paste into a shell."""
    env = dict(os.environ)
    if faults is not None:
        env["LLMBULK_EMULATOR_FAULTS"] = f"@{faults}"
    env["LLMBULK_EMULATOR_SEED"] = str(seed)
    server = EmulatorServer(state_dir, config_from_env(env, batch_seconds), host=host, port=port)
    if server.port == 0:
        import socket

        with socket.socket() as probe:
            probe.bind((host, 0))
            server.port = probe.getsockname()[1]
    console.print(f"llmbulk emulator on {server.url} (state in {state_dir}); Ctrl-C to stop. Point clients at it:")
    console.print(f"export OPENAI_BASE_URL={server.openai_base_url} OPENAI_API_KEY=emulator")
    console.print(f"export ANTHROPIC_BASE_URL={server.anthropic_base_url} ANTHROPIC_API_KEY=emulator")
    console.print(f"export GOOGLE_GEMINI_BASE_URL={server.gemini_base_url} GOOGLE_API_KEY=emulator")
    console.print(f"calls served: {server.url}/_emulator/stats")
    with contextlib.suppress(KeyboardInterrupt):
        server.serve()
