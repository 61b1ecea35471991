"""Emulator settings from the environment, for `--emulate` runs and `llmbulk emulator serve`.

`LLMBULK_EMULATOR_SECONDS` sets how long an emulated batch runs (0 = instant, for tests);
`LLMBULK_EMULATOR_FAULTS` holds a fault plan as JSON, or `@path` to a JSON file;
`LLMBULK_EMULATOR_SEED` seeds faults and answers;
`LLMBULK_EMULATOR_MODELS` names models beyond the catalog, `provider:model[@endpoint]`, comma-separated
(e.g. `openai:gpt-7,gemini:gemini-9@generateContent`).
A bad value is a `ConfigError` naming the variable, never a traceback.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError

from llmbulk.catalog import parse_models
from llmbulk.emulator.engine import EmulatorConfig, FaultPlan
from llmbulk.errors import ConfigError


def config_from_env(env: Mapping[str, str], batch_seconds: float | None = None) -> EmulatorConfig:
    """An emulator config from LLMBULK_EMULATOR_* variables (defaults: batches end within ~2 s)."""
    config = EmulatorConfig()
    seconds = batch_seconds if batch_seconds is not None else env.get("LLMBULK_EMULATOR_SECONDS")
    if seconds is not None:
        total = _seconds(seconds)
        config.validating_seconds = total * 0.15
        config.running_seconds = total * 0.75
        config.finalizing_seconds = total * 0.10
        config.cancel_seconds = min(total * 0.1, 1.0)
    if env.get("LLMBULK_EMULATOR_SEED"):
        try:
            config.seed = int(env["LLMBULK_EMULATOR_SEED"])
        except ValueError:
            raise ConfigError(f"LLMBULK_EMULATOR_SEED={env['LLMBULK_EMULATOR_SEED']!r} is not an integer") from None
    plan = env.get("LLMBULK_EMULATOR_FAULTS")
    if plan:
        config.faults = _fault_plan(plan)
    if env.get("LLMBULK_EMULATOR_MODELS"):
        config.extra_models = models_from(env["LLMBULK_EMULATOR_MODELS"], "LLMBULK_EMULATOR_MODELS")
    return config


def models_from(text: str, where: str) -> dict[str, dict[str, frozenset[str]]]:
    try:
        return parse_models(text)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}", hint="e.g. openai:gpt-7,anthropic:claude-next@/v1/messages") from None


def _seconds(value: float | str) -> float:
    try:
        total = float(value)
    except ValueError:
        total = math.nan
    if not math.isfinite(total) or total < 0:
        raise ConfigError(f"LLMBULK_EMULATOR_SECONDS={value!r} is not a number of seconds ≥ 0", hint="e.g. 2 or 0.5")
    return total


def _fault_plan(plan: str) -> FaultPlan:
    where = f"LLMBULK_EMULATOR_FAULTS (file {plan[1:]})" if plan.startswith("@") else "LLMBULK_EMULATOR_FAULTS"
    try:
        text = Path(plan[1:]).read_text(encoding="utf-8") if plan.startswith("@") else plan
        return FaultPlan.model_validate_json(text)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read the fault plan: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: the fault plan is not UTF-8 text") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        place = ".".join(str(p) for p in first.get("loc", ())) or "the plan"
        raise ConfigError(f"{where} is not a valid fault plan: {place}: {first.get('msg')}",
                          hint="a JSON object such as {\"item_errors\": {\"rate_limit\": 0.1}}") from None  # fmt: skip
