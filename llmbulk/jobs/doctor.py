"""`doctor`: keys, each keyed provider's batch API, the state database and the emulator."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from llmbulk import providers
from llmbulk.config import Settings, load_settings
from llmbulk.errors import (
    LlmbulkError,
)
from llmbulk.jobs.types import Check
from llmbulk.progress import NO_PROGRESS
from llmbulk.providers.base import ProviderSettings
from llmbulk.session import EMULATOR_KEY, Session, open_session

DOCTOR_TIMEOUT = 10.0  # seconds a doctor check waits for a provider


def doctor(*, settings: Settings | None = None, emulator: bool = True, models: Sequence[str] = ()) -> list[Check]:
    """Check keys, that each keyed provider's batch API answers, the state database, and the emulator.

    `models` (`provider:model`) are checked against llmbulk's model catalogue (the SDKs' model
    lists and genai-prices'): known, and serving the provider's default batch endpoint.
    """
    settings = settings or load_settings()
    checks: list[Check] = [check_model(spec) for spec in models]
    keyed: list[str] = []
    for name, info in sorted(providers.REGISTRY.items()):
        present = [var for var in info.key_env if settings.env.get(var)]
        # A gateway without auth needs no key: its base URL is what makes it configured.
        keyless = info.profile is not None and not info.profile.key_required and settings.env.get(info.base_url_env)
        detail = f"{present[0]} is set" if present else f"no key ({' or '.join(info.key_env)}); --emulate still works"
        if keyless and not present:
            detail = f"{info.base_url_env} is set; no key ({info.key_env[0]}), none sent"
        checks.append(Check(f"{name} key", bool(present or keyless), detail + pricing(name)))
        if present or keyless:
            keyed.append(name)
    try:
        with open_session(replace(settings, http_timeout=DOCTOR_TIMEOUT), NO_PROGRESS) as session:
            n_jobs = len(session.store.list_jobs(1000))
            checks.append(Check("state database", True, f"{redacted(settings.db_url)} migrated, {n_jobs} job(s)"))
            checks.extend(check_provider(session, name) for name in keyed)
    except Exception as exc:
        checks.append(Check("state database", False, str(exc)))
    if emulator:
        checks.append(check_emulator(settings))
    return checks


def check_model(spec: str) -> Check:
    """Whether `provider:model` is a model llmbulk knows, and which endpoints it serves."""
    from llmbulk import catalog

    provider, _, model = spec.partition(":")
    label = f"model {spec}"
    if provider not in catalog.DEFAULT_ENDPOINT or not model:
        return Check(label, False, "give it as provider:model, e.g. openai:gpt-4o-mini")
    endpoints = catalog.default_catalog().endpoints(provider, model)
    if endpoints is None:
        return Check(label, False, f"not in llmbulk's {provider} model list (a typo, or a model newer than it)")
    default = catalog.DEFAULT_ENDPOINT[provider]
    served = ", ".join(sorted(endpoints))
    if default not in endpoints:
        return Check(label, False, f"known, but serves {served}, not the default {default}")
    return Check(label, True, f"serves {served}")


def check_provider(session: Session, name: str) -> Check:
    """One listing call on the provider's batch API (read-only, nothing is created)."""
    label = f"{name} batch API"
    try:
        adapter = session.make_provider(name, "doctor", None, emulated=False, need_key=True)
        try:
            adapter.find({"llmbulk_job": "doctor", "llmbulk_shard": "doctor"}, datetime.now(UTC), 0)
        finally:
            adapter.close()
    except LlmbulkError as exc:
        return Check(label, False, exc.message)
    return Check(label, True, "answers a batch listing with this key")


def check_emulator(settings: Settings) -> Check:
    """The emulator starts and answers a batch listing at every OpenAI-family provider's path."""
    family = [name for name, info in sorted(providers.REGISTRY.items()) if info.profile is not None]
    try:
        from llmbulk.emulator import EmulatorServer
        from llmbulk.emulator.settings import config_from_env

        with EmulatorServer(settings.emulator_dir, config_from_env(settings.env)) as server:
            for name in family:
                url = f"{server.url}{providers.info(name).emulator_path}"
                adapter = providers.create(name, ProviderSettings(model="doctor", base_url=url, api_key=EMULATOR_KEY))
                try:
                    adapter.find({"llmbulk_job": "doctor", "llmbulk_shard": "doctor"}, datetime.now(UTC), 0)
                finally:
                    adapter.close()
        return Check("emulator", True, f"starts on 127.0.0.1 and answers the OpenAI SDK as {', '.join(family)}")
    except Exception as exc:
        return Check("emulator", False, f"{exc.__class__.__name__}: {exc}")


def pricing(name: str) -> str:
    """How an OpenAI-family provider's batch cost is priced, for its key line ("" for the others)."""
    profile = providers.info(name).profile
    if profile is None:
        return ""
    if profile.price_note:
        return f"; cost unknown: {profile.price_note}"
    discount = f"{profile.batch_discount:.0%}" if profile.batch_discount is not None else "no"
    return f"; batch prices: the price library's batch rate, else {discount} off its synchronous rate"


def redacted(url: str) -> str:
    from llmbulk.store.engine import _redact

    return _redact(url)
