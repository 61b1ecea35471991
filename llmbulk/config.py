"""Settings resolved from the environment: where state lives and how often to poll.

`LLMBULK_HOME` (default `./.llmbulk`) holds shards, downloaded results, logs and the emulator's
state; `LLMBULK_DB` (default a SQLite file in the home) is any SQLAlchemy URL.
`LLMBULK_POLL_INITIAL`/`LLMBULK_POLL_MAX` bound the poll interval (seconds; the emulated ones apply
to `--emulate` jobs), `LLMBULK_HTTP_TIMEOUT` is the provider SDKs' per-request timeout,
`LLMBULK_LEASE_TTL` how long a job's lease lasts without a heartbeat, and
`LLMBULK_INFLIGHT_WINDOW` how long another holder's provider call may still be in flight
(default: the HTTP timeout plus a minute).
"""

from __future__ import annotations

import math
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
    lease_ttl: float = 60.0
    inflight_window: float | None = None  # default: the HTTP timeout plus a minute
    env: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def create_window(self) -> float:
        """How long another holder's provider call may still be in flight after its intent."""
        return self.inflight_window if self.inflight_window is not None else self.http_timeout + 60.0

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
    if (db or environ.get("LLMBULK_DB")) and db_url.startswith("sqlite:///"):
        _check_db_folder(Path(db_url.removeprefix("sqlite:///")))
    seconds = {name: _seconds(environ, name, default) for name, default in _SECONDS.items()}
    window = environ.get("LLMBULK_INFLIGHT_WINDOW")
    return Settings(
        home=home_path, db_url=db_url, poll_initial=seconds["LLMBULK_POLL_INITIAL"],
        poll_max=seconds["LLMBULK_POLL_MAX"], emulated_poll_initial=seconds["LLMBULK_EMULATED_POLL_INITIAL"],
        emulated_poll_max=seconds["LLMBULK_EMULATED_POLL_MAX"], http_timeout=seconds["LLMBULK_HTTP_TIMEOUT"],
        lease_ttl=seconds["LLMBULK_LEASE_TTL"],
        inflight_window=None if window is None else _seconds(environ, "LLMBULK_INFLIGHT_WINDOW", 0.0),
        env=environ,
    )  # fmt: skip


def _check_db_folder(path: Path) -> None:
    """A database named with --db/LLMBULK_DB lives in a folder that exists: a typo must not make a new one."""
    if str(path) in ("", ":memory:") or path.parent.is_dir():
        return
    raise ConfigError(
        f"no folder {path.parent} for the state database {path}",
        hint="check the --db path (or LLMBULK_DB), or create the folder first",
    )


_SECONDS = {
    "LLMBULK_POLL_INITIAL": 30.0,
    "LLMBULK_POLL_MAX": 900.0,
    "LLMBULK_EMULATED_POLL_INITIAL": 0.5,
    "LLMBULK_EMULATED_POLL_MAX": 5.0,
    "LLMBULK_HTTP_TIMEOUT": 600.0,
    "LLMBULK_LEASE_TTL": 60.0,
}


_POSITIVE = ("LLMBULK_HTTP_TIMEOUT", "LLMBULK_LEASE_TTL")


def _seconds(environ: dict[str, str], name: str, default: float) -> float:
    """A duration setting in seconds; a bad value is named in one line, never a traceback."""
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value < 0 or (value == 0 and name in _POSITIVE):
        raise ConfigError(
            f"{name}={raw!r} is not a number of seconds", hint=f"unset it or give seconds, e.g. {default:g}"
        )
    return value


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
