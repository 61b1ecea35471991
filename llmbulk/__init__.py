"""llmbulk: large LLM workloads through the providers' discounted native Batch APIs.

The verbs the CLI uses are importable here::

    import llmbulk
    job = llmbulk.submit(llmbulk.SubmitOptions(input=Path("reviews.csv"), provider="openai",
                                               model="gpt-4o-mini", prompt="Sentiment: {{ text }}",
                                               emulate=True))
    llmbulk.run(job.job_id, out=Path("results.csv"))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "CollectResult",
    "JobStatus",
    "RetryResult",
    "RunResult",
    "SubmitOptions",
    "SubmitResult",
    "__version__",
    "cancel",
    "collect",
    "cost",
    "doctor",
    "exit_status",
    "items",
    "jobs",
    "read_jobs",
    "read_status",
    "resume",
    "retry",
    "run",
    "stats",
    "status",
    "submit",
    "worker",
]

if TYPE_CHECKING:
    from llmbulk.api import (
        CollectResult,
        JobStatus,
        RetryResult,
        RunResult,
        SubmitOptions,
        SubmitResult,
        cancel,
        collect,
        cost,
        doctor,
        items,
        jobs,
        resume,
        retry,
        run,
        stats,
        status,
        submit,
        worker,
    )
    from llmbulk.store.quick import read_jobs, read_status
    from llmbulk.views import exit_status


def __getattr__(name: str) -> Any:
    # Lazy, so `import llmbulk` (and the CLI's start) stays cheap.
    if name in ("read_status", "read_jobs"):  # the light readers behind `status` and `jobs`: no SQLAlchemy
        from llmbulk.store import quick

        return getattr(quick, name)
    if name in ("items", "cost"):  # light too: they import the session only when the quick reader cannot answer
        from llmbulk.jobs import inspect

        return getattr(inspect, name)
    if name == "exit_status":
        from llmbulk.views import exit_status

        return exit_status
    if name in __all__ and name != "__version__":
        from llmbulk import api

        return getattr(api, name)
    raise AttributeError(name)
