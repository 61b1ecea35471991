"""Money as people read it: dollar amounts, the estimate line, the `cost` table and `cache stats`.

An unknown price (a model not in the price library) always says so rather than showing $0.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from llmbulk.listing import Grid, write_rows
from llmbulk.render.console import ago, out, print_grid, print_json
from llmbulk.render.payloads import COST_COLUMNS, cost_json, cost_rows

if TYPE_CHECKING:
    from llmbulk.api import CostReport
    from llmbulk.costs import Estimate


def usd_signed(value: float) -> str:
    from llmbulk import costs

    return costs.usd(value, signed=True)


def usd(value: float | None) -> str:
    from llmbulk import costs

    return "unknown (model not in the price library)" if value is None else costs.usd(value)


def usd_short(value: float | None) -> str:
    from llmbulk import costs

    return "unknown" if value is None else costs.usd(value)


def estimate_line(estimate: Estimate | None) -> str:
    if estimate is None:
        return ""
    if estimate.batch_likely is None:
        return "estimated cost: unknown (model not in the price library)"
    return (
        f"estimated cost: likely {usd(estimate.batch_likely)}, at most {usd(estimate.batch_upper)} "
        f"(synchronous: {usd(estimate.sync_likely)}, saving {usd(estimate.saving)}); "
        f"~{estimate.input_tokens:,} input tokens"
    )


def cost_report(report: CostReport) -> None:
    grid = Grid(("cost", "input tokens", "output", "batch", "sync"), right=("input tokens", "output", "batch", "sync"))
    est = report.estimate or {}
    if est:
        grid.rows.append(("estimate (likely)", f"{est['input_tokens']:,}", f"{est['likely_output_tokens']:,}",
                          usd_short(est.get("batch_likely_usd")), usd_short(est.get("sync_likely_usd"))))  # fmt: skip
        grid.rows.append(("estimate (upper bound)", f"{est['input_tokens']:,}", f"{est['max_output_tokens']:,}",
                          usd_short(est.get("batch_upper_usd")), ""))  # fmt: skip
    tokens = report.tokens
    grid.rows.append((
        "actual so far",
        f"{tokens['input_tokens']:,} ({tokens['cached_tokens']:,} cached)",
        f"{tokens['output_tokens']:,}",
        usd_short(report.actual_usd),
        usd_short(report.sync_usd),
    ))  # fmt: skip
    reused = report.reused
    if reused.get("items"):
        grid.rows.append((
            f"reused, not sent ({reused['items']:,} items)",
            f"{reused['input_tokens']:,} ({reused['cached_tokens']:,} cached)",
            f"{reused['output_tokens']:,}",
            usd_short(report.reused_usd),
            "",
        ))  # fmt: skip
    print_grid(grid, out)
    if reused.get("items") and report.reused_usd is not None:
        out.print(f"not spent by reusing answers: {usd(report.reused_usd)} ({reused['items']:,} items)")
    if any("unknown" in cell for row in grid.rows for cell in row):
        out.print("unknown: the model is not in the price library")
    if report.saving_usd is not None:
        out.print(f"saving against synchronous calls: {usd(report.saving_usd)}")
    if est.get("batch_likely_usd") and report.actual_usd is not None:
        diff = report.actual_usd - est["batch_likely_usd"]
        out.print(f"actual vs likely estimate: {usd_signed(diff)} ({diff / est['batch_likely_usd']:+.1%})")


def cost_output(report: CostReport, kind: str) -> None:
    if kind == "table":
        cost_report(report)
    elif kind == "json":
        print_json(cost_json(report))
    else:
        write_rows(kind, cost_rows(report), COST_COLUMNS)


def cache_stats(stats: dict[str, Any]) -> None:
    grid = Grid(("answers", "bytes", "reused", "not spent", "oldest", "newest"),
                right=("answers", "bytes", "reused", "not spent"))  # fmt: skip
    now = time.time()
    grid.rows.append((
        f"{stats['entries']:,}", f"{stats['bytes']:,}", f"{stats['hits']:,}", usd(stats["saved_usd"]),
        ago(now, stats["oldest"]) if stats["oldest"] else "-", ago(now, stats["newest"]) if stats["newest"] else "-",
    ))  # fmt: skip
    print_grid(grid, out)
