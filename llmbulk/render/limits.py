"""`llmbulk limits` as a table and as JSON: each capacity scope's limits, use and queue."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from llmbulk.listing import Grid
from llmbulk.render.console import out, print_grid

if TYPE_CHECKING:
    from llmbulk.store.capacity import ScopeReport

COLUMNS = ("provider", "account", "model", "limit", "observed", "in use", "queued")


def limits_table(reports: list[ScopeReport]) -> None:
    if not reports:
        out.print("no capacity scopes yet: they appear with the first batch sent, or with `llmbulk limits set`")
        return
    rows: list[Sequence[str]] = [
        [r.scope.provider, r.scope.account, r.scope.model, _limits(r.set_limits.enqueued_tokens,
         r.set_limits.active_batches, r.set_limits.creations_per_hour, r.set_limits.files),
         _limits(r.observed_tokens, r.observed_batches, None) or "-",
         f"{r.usage.tokens:,} tok / {r.usage.batches} batch(es) / {r.usage.files} file(s)",
         f"{r.queued_jobs} job(s), {r.queued_tokens:,} tok"]
        for r in reports
    ]  # fmt: skip
    print_grid(Grid(list(COLUMNS), rows), out)


def _limits(tokens: int | None, batches: int | None, per_hour: int | None, files: int | None = None) -> str:
    parts = [f"{tokens:,} tok" if tokens else "", f"{batches} batches" if batches else "",
             f"{per_hour}/h" if per_hour else "", f"{files:,} files" if files else ""]  # fmt: skip
    return ", ".join(p for p in parts if p) or ("" if per_hour is None and tokens is None else "none")


def limits_json(reports: list[ScopeReport]) -> list[dict[str, Any]]:
    now = time.time()
    return [
        {
            "provider": r.scope.provider,
            "account": r.scope.account,
            "model": r.scope.model,
            "limit": _limit_json(r.set_limits),
            "effective": _limit_json(r.limits),
            "observed": {"enqueued_tokens": r.observed_tokens, "active_batches": r.observed_batches},
            "in_use": _in_use(r),
            "queued": {"jobs": r.queued_jobs, "tokens": r.queued_tokens},
            "blocked_for": None if not r.blocked_until or r.blocked_until < now else r.blocked_until - now,
        }
        for r in reports
    ]


def _in_use(r: ScopeReport) -> dict[str, int]:
    usage = r.usage
    return {"enqueued_tokens": usage.tokens, "active_batches": usage.batches, "creations_last_hour": usage.creations,
            "files": usage.files}  # fmt: skip


def _limit_json(limits: Any) -> dict[str, int | None]:
    return {
        "enqueued_tokens": limits.enqueued_tokens,
        "active_batches": limits.active_batches,
        "creations_per_hour": limits.creations_per_hour,
        "files": limits.files,
    }
