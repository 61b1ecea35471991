"""The single error root and the process exit codes.

Every error a user can cause or fix is an `LlmbulkError`; the CLI prints its message on one line
and exits with its `exit_status`. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """Documented exit codes; CI scripts branch on them."""

    DONE = 0
    ERROR = 1
    USAGE = 2
    RUNNING = 3
    DONE_WITH_FAILURES = 4
    BUDGET = 5
    LOCKED = 6
    CANCELLED = 7
    PORT_IN_USE = 8
    INTERRUPTED = 130


class LlmbulkError(Exception):
    """Base of every error llmbulk reports to users as one line."""

    exit_status: ExitStatus = ExitStatus.ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message} — {hint}")


class InputError(LlmbulkError):
    """The input table, template or tasks file cannot be turned into tasks."""

    exit_status = ExitStatus.USAGE


class UsageError(LlmbulkError):
    """A command-line option or argument is wrong."""

    exit_status = ExitStatus.USAGE


class ConfigError(LlmbulkError):
    """Missing key, unreachable database, bad settings."""


class StateError(LlmbulkError):
    """The state database is missing, corrupt, or from a newer llmbulk."""


class NotFoundError(LlmbulkError):
    """A job, batch or item the user named does not exist."""

    exit_status = ExitStatus.USAGE


class LeaseError(LlmbulkError):
    """Another llmbulk process holds the job."""

    exit_status = ExitStatus.LOCKED


class OutputError(LlmbulkError):
    """The output table cannot be written (disk full, file-size limit); the results stay in the state."""


class CancelledError(LlmbulkError):
    """The job was cancelled; it stays so until `llmbulk resume`."""

    exit_status = ExitStatus.CANCELLED


class ProviderError(LlmbulkError):
    """A provider call failed after the SDK's own retries."""

    def __init__(
        self, message: str, *, retryable: bool = False, hint: str | None = None, status: int | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.retryable = retryable
        self.status = status  # the provider's HTTP status, when it answered with one


class QuotaError(ProviderError):
    """The provider refused new work for now (429 / RESOURCE_EXHAUSTED / enqueued-token limit)."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, retryable=True, hint=hint)


class BudgetError(LlmbulkError):
    """The estimated cost is over `--max-cost`."""

    exit_status = ExitStatus.BUDGET
