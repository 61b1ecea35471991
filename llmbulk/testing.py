"""Testing helpers for users: the emulator as a context manager (no pytest needed).

    from llmbulk.testing import emulated

    with emulated(faults={"item_errors": {"rate_limit": 0.1}}) as server:
        ...  # OPENAI_BASE_URL, ANTHROPIC_BASE_URL, GOOGLE_GEMINI_BASE_URL and fake keys point at it

The `llmbulk_emulator` pytest fixture lives in `llmbulk.pytest_plugin` (registered through the
`pytest11` entry point), so this module imports with a plain install.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

FAKE_KEY = "llmbulk-emulator-key"


@contextmanager
def emulated(
    state_dir: str | Path | None = None,
    faults: Mapping[str, Any] | None = None,
    batch_seconds: float = 0.0,
    seed: int = 0,
) -> Iterator[Any]:
    """Run the emulator on 127.0.0.1 and point the three SDKs (and llmbulk) at it until exit."""
    from llmbulk.emulator import EmulatorConfig, EmulatorServer, FaultPlan

    config = EmulatorConfig(
        validating_seconds=batch_seconds * 0.15,
        running_seconds=batch_seconds * 0.75,
        finalizing_seconds=batch_seconds * 0.1,
        seed=seed,
        faults=FaultPlan.model_validate(dict(faults or {})),
    )
    with (
        tempfile.TemporaryDirectory(prefix="llmbulk-emulator-") as scratch,
        EmulatorServer(Path(state_dir or scratch), config) as server,
    ):
        values = {
            "OPENAI_BASE_URL": server.openai_base_url,
            "OPENAI_API_KEY": FAKE_KEY,
            "ANTHROPIC_BASE_URL": server.anthropic_base_url,
            "ANTHROPIC_API_KEY": FAKE_KEY,
            "GOOGLE_GEMINI_BASE_URL": server.gemini_base_url,
            "GOOGLE_API_KEY": FAKE_KEY,
        }
        saved = {name: os.environ.get(name) for name in values}
        os.environ.update(values)
        try:
            yield server
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
