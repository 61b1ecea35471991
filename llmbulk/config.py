"""Settings resolved from the environment: where state lives and how often to poll.

`LLMBULK_HOME` (default `./.llmbulk`) holds shards, downloaded results, logs and the emulator's
state; `LLMBULK_DB` (default a SQLite file in the home) is any SQLAlchemy URL.
`LLMBULK_POLL_INITIAL`/`LLMBULK_POLL_MAX` bound the poll interval (seconds; the emulated ones apply
to `--emulate` jobs) and `LLMBULK_HTTP_TIMEOUT` is the provider SDKs' per-request timeout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from llmbulk.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Settings:
    """Where llmbulk keeps its state, and polling defaults."""

    home: Path
    db_url: str
    poll_initial: float = 30.0
    poll_max: float = 900.0
    emulated_poll_initial: float = 0.5
    emulated_poll_max: float = 5.0
    http_timeout: float = 600.0
    env: dict[str, str] = field(default_factory=dict, repr=False)

    def job_dir(self, job_id: str) -> Path:
        return self.home / "jobs" / job_id

    @property
    def emulator_dir(self) -> Path:
        return self.home / "emulator"


def load_settings(home: str | Path | None = None, db: str | None = None, env: dict[str, str] | None = None) -> Settings:
    """Settings from arguments, then `LLMBULK_*` variables, then defaults."""
    environ = dict(os.environ if env is None else env)
    home_path = Path(home or environ.get("LLMBULK_HOME") or ".llmbulk").expanduser()
    db_url = db or environ.get("LLMBULK_DB") or f"sqlite:///{home_path / 'llmbulk.db'}"
    if "://" not in db_url:  # a bare path means a SQLite file
        db_url = f"sqlite:///{Path(db_url).expanduser()}"
    poll_initial = float(environ.get("LLMBULK_POLL_INITIAL", 30.0))
    poll_max = float(environ.get("LLMBULK_POLL_MAX", 900.0))
    try:
        emulated = (
            float(environ.get("LLMBULK_EMULATED_POLL_INITIAL", 0.5)),
            float(environ.get("LLMBULK_EMULATED_POLL_MAX", 5.0)),
        )
        http_timeout = float(environ.get("LLMBULK_HTTP_TIMEOUT", 600.0))
    except ValueError as exc:
        raise ConfigError(f"a LLMBULK_* setting is not a number: {exc}", hint="give seconds, e.g. 30") from exc
    return Settings(
        home=home_path, db_url=db_url, poll_initial=poll_initial, poll_max=poll_max,
        emulated_poll_initial=emulated[0], emulated_poll_max=emulated[1], http_timeout=http_timeout, env=environ,
    )  # fmt: skip


def ensure_private_dir(path: Path) -> Path:
    """Create a directory readable by the user only (state may hold prompts and outputs)."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(
            f"cannot use {path} as the state directory: {mkdir_problem(path, exc)}",
            hint="point LLMBULK_HOME or --home at a directory",
        ) from exc
    return path


def mkdir_problem(path: Path, exc: OSError) -> str:
    """Why creating a directory failed, naming the file in the way when that is the reason."""
    blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        return f"{blocker} is a file, not a directory"
    return exc.strerror or str(exc)
