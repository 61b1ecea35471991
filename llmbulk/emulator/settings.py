"""Emulator settings from the environment, for `--emulate` runs and `llmbulk emulator serve`.

`LLMBULK_EMULATOR_SECONDS` sets how long an emulated batch runs (0 = instant, for tests);
`LLMBULK_EMULATOR_FAULTS` holds a fault plan as JSON, or `@path` to a JSON file;
`LLMBULK_EMULATOR_SEED` seeds faults and answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from llmbulk.emulator.engine import EmulatorConfig, FaultPlan


def config_from_env(env: Mapping[str, str], batch_seconds: float | None = None) -> EmulatorConfig:
    """An emulator config from LLMBULK_EMULATOR_* variables (defaults: batches end within ~2 s)."""
    config = EmulatorConfig()
    seconds = batch_seconds if batch_seconds is not None else env.get("LLMBULK_EMULATOR_SECONDS")
    if seconds is not None:
        total = float(seconds)
        config.validating_seconds = total * 0.15
        config.running_seconds = total * 0.75
        config.finalizing_seconds = total * 0.10
        config.cancel_seconds = min(total * 0.1, 1.0)
    if env.get("LLMBULK_EMULATOR_SEED"):
        config.seed = int(env["LLMBULK_EMULATOR_SEED"])
    plan = env.get("LLMBULK_EMULATOR_FAULTS")
    if plan:
        text = Path(plan[1:]).read_text() if plan.startswith("@") else plan
        config.faults = FaultPlan.model_validate_json(text)
    return config
