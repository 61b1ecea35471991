"""`limits` and `limits set`: the capacity scopes every job and runner of the state database shares (#21)."""

from __future__ import annotations

from collections.abc import Mapping

from llmbulk import providers
from llmbulk.capacity import scope_for
from llmbulk.config import Settings
from llmbulk.errors import UsageError
from llmbulk.progress import NO_PROGRESS
from llmbulk.session import open_session
from llmbulk.store.capacity import LIMIT_COLUMNS, ScopeReport


def limits(*, settings: Settings | None = None) -> list[ScopeReport]:
    """Every capacity scope: its limits, what a quota refusal observed, what is in use and queued."""
    with open_session(settings, NO_PROGRESS) as session:
        return session.store.capacity_scopes()


def set_limits(
    provider: str,
    model: str,
    values: Mapping[str, int | None],
    *,
    base_url: str | None = None,
    emulate: bool = False,
    settings: Settings | None = None,
) -> list[ScopeReport]:
    """Set some limits of one provider account and model (0 or None: back to the provider's default);
    the others keep theirs, and what a refusal observed is forgotten. Returns the scope as it is now."""
    providers.info(provider)  # an unknown name is one clear line
    unknown = sorted(set(values) - set(LIMIT_COLUMNS))
    if unknown:
        raise UsageError(f"unknown limit {unknown[0]!r}", hint=f"use one of: {', '.join(LIMIT_COLUMNS)}")
    if not values:
        raise UsageError("limits set needs at least one of --enqueued-tokens, --active-batches, "
                         "--creations-per-hour, --files")  # fmt: skip
    if any(value is not None and value < 0 for value in values.values()):
        raise UsageError("limits must be 0 (the provider's default) or more")
    scope = scope_for(provider, model, base_url, emulate)
    with open_session(settings, NO_PROGRESS) as session:
        with session.store.tx() as tx:
            tx.set_capacity_limits(scope, {name: value or None for name, value in values.items()})
        return [report for report in session.store.capacity_scopes() if report.scope == scope]
