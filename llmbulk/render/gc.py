"""`gc`: what llmbulk left at each provider, as a table per provider or a `--json` payload."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from llmbulk.listing import Grid
from llmbulk.render.console import out, print_grid

if TYPE_CHECKING:
    from llmbulk.jobs.gc import GcReport

__all__ = ["gc_json", "gc_report"]


def gc_json(report: GcReport) -> dict[str, Any]:
    return {
        "applied": report.applied,
        "emulated": report.emulated,
        "providers": [
            {
                "provider": scan.provider,
                "error": scan.error,
                "leftovers": [
                    {"kind": left.kind, "id": left.id, "action": left.action, "reason": left.reason,
                     "job_id": left.job_id, "shard_id": left.shard_id,
                     **({"outcome": left.outcome} if report.applied else {})}
                    for left in scan.leftovers
                ],
            }
            for scan in report.scans
        ],
    }  # fmt: skip


def gc_report(report: GcReport) -> None:
    if not report.scans:
        out.print(
            "no provider to scan: set a provider's key, or name one with --provider (add --emulate for the emulator)"
        )
        return
    total = 0
    for scan in report.scans:
        if scan.error is not None:
            out.print(f"[yellow]{scan.provider}[/]: not listed: {escape(scan.error)}")
            continue
        if not scan.leftovers:
            out.print(f"[bold]{scan.provider}[/]: nothing left behind")
            continue
        total += len(scan.leftovers)
        out.print(f"[bold]{scan.provider}[/]: {len(scan.leftovers)} left behind")
        headers = ["KIND", "ID", "JOB", "ACTION", "REASON"] + (["OUTCOME"] if report.applied else [])
        rows: list[Sequence[str]] = [
            [left.kind, left.id, left.job_id or "-", left.action, left.reason, left.outcome][: len(headers)]
            for left in scan.leftovers
        ]
        print_grid(Grid(headers, rows, optional=("JOB",), elastic="REASON"), out)
    if total and not report.applied:
        out.print("dry run: nothing was changed; `llmbulk gc --apply` cancels and deletes the above")
