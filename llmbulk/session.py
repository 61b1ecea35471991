"""A command's session: settings, the state store, provider clients and the in-process emulator.

Every verb opens one (`open_session`), works inside it, and closes it; `logged` puts a command's
errors in the job's log. `current_job` names the job a command works on, for interrupt messages.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from llmbulk import providers
from llmbulk.batches import (
    Sending,
)
from llmbulk.config import Settings, ensure_private_dir, load_settings
from llmbulk.errors import (
    InputError,
    LeaseError,
    UsageError,
)
from llmbulk.events import EventHooks, Events
from llmbulk.leases import JobLease
from llmbulk.progress import NO_PROGRESS, Progress
from llmbulk.providers.base import BatchProvider, ProviderSettings
from llmbulk.store import Store
from llmbulk.store.schema import Job

EMULATOR_KEY = "llmbulk-emulator-key"


# The job the current command works on, once known: an interrupt names it and how to continue.
current_job: contextvars.ContextVar[str | None] = contextvars.ContextVar("llmbulk_current_job", default=None)


class Session:
    """Open state and provider clients for one command; close it when done."""

    def __init__(
        self, settings: Settings | None = None, progress: Progress = NO_PROGRESS, hooks: EventHooks | None = None
    ) -> None:
        self.settings = settings or load_settings()
        ensure_private_dir(self.settings.home)
        self.store = Store.open(self.settings.db_url)
        self.progress = progress
        self.events = Events(hooks, self.settings.job_dir)
        self.explode: str | None = None
        self._providers: dict[str, BatchProvider] = {}
        self._emulator: Any = None

    def close(self) -> None:
        for provider in self._providers.values():
            provider.close()
        if self._emulator is not None:
            self._emulator.stop()
        self.store.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def provider(self, job: Job) -> BatchProvider:
        """The adapter for a job, pointed at the emulator if the job is emulated."""
        if job.id not in self._providers:
            spec = job.spec
            self._providers[job.id] = self.make_provider(
                job.provider, job.model, job.endpoint, job.emulated, need_key=True, inline=spec.inline,
                base_url=spec.base_url, completion_window=spec.completion_window,
            )  # fmt: skip
        return self._providers[job.id]

    def use_provider(self, job_id: str, provider: BatchProvider) -> None:
        """Use this adapter for the job (the one submit already built for it)."""
        self._providers[job_id] = provider

    def make_provider(
        self, name: str, model: str, endpoint: str | None, emulated: bool, need_key: bool, inline: bool = False,
        base_url: str | None = None, completion_window: str | None = None,
    ) -> BatchProvider:  # fmt: skip
        """An adapter; keys and base URLs come from the settings' environment (a library caller's own
        mapping, not whatever the process environment holds) unless `base_url` is the job's own."""
        info = providers.info(name)
        url: str | None
        api_key: str | None
        if emulated:
            url, api_key = f"{self._emulator_server().url}{info.emulator_path}", EMULATOR_KEY
        else:
            url, api_key = providers.target(name, self.settings.env, base_url, need_key)
        if inline and "inline" not in providers.limits(name).input_modes:
            raise UsageError(f"{name} takes no inline requests", hint="drop --gemini-inline (it is for gemini)")
        settings = ProviderSettings(
            model=model, endpoint=endpoint, base_url=url, api_key=api_key, inline=inline,
            timeout=self.settings.http_timeout, completion_window=completion_window,
        )  # fmt: skip
        return providers.create(name, settings)

    def _emulator_server(self) -> Any:
        if self._emulator is None:
            from llmbulk.emulator import EmulatorServer
            from llmbulk.emulator.settings import config_from_env

            self._emulator = EmulatorServer(self.settings.emulator_dir, config_from_env(self.settings.env))
            self._emulator.start()
        return self._emulator

    def job_dir(self, job_id: str) -> Path:
        return self.settings.job_dir(job_id)

    def lease(self, job_id: str, wait: float = 0.0) -> JobLease:
        """Hold the job (fenced) for this command."""
        return JobLease(self.store, job_id, ttl=self.settings.lease_ttl, wait=wait)

    def sending(self, job: Job, lease: JobLease) -> Sending:
        """What sending this job's shards needs, every provider call fenced by `lease`."""

        def emit(name: str, fields: dict[str, Any]) -> None:
            self.events.emit(name, job.id, **fields)

        return Sending(
            self.store, self.provider(job), job, self.settings.home, lease, self.settings.create_window, emit
        )


@contextmanager
def logged(session: Session, job_id: str) -> Iterator[None]:
    """Errors of a command on a job go to its log with their stack trace; Ctrl-C is logged too.

    A mistake in this command's own arguments (a bad --out, say) is not the job's: it is only shown.
    """
    try:
        yield
    except KeyboardInterrupt:
        session.events.emit("job.interrupted", job_id)
        raise
    except (UsageError, InputError, LeaseError):
        raise
    except Exception as exc:
        session.events.error(job_id, exc)
        raise


@contextmanager
def open_session(settings: Settings | None, progress: Progress, hooks: EventHooks | None = None) -> Iterator[Session]:
    session = Session(settings, progress, hooks)
    try:
        yield session
    finally:
        session.close()
