"""Progress reporting from the library: a callback protocol whose default does nothing.

Only `panel.py` (re-exported by `render`) knows how to draw it; tests and library users get silence by default.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from llmbulk.views import JobStatus


class Progress(Protocol):
    """Receives progress from long steps."""

    def stage(self, name: str, total: int | None = None) -> None:
        """A new step begins (total units if known)."""

    def advance(self, n: int = 1) -> None:
        """Units of the current step are done."""

    def note(self, message: str) -> None:
        """Something worth telling the user happened."""

    def round(self, status: JobStatus, next_poll_in: float | None) -> None:
        """A poll round of `run` ended with this status; `next_poll_in` is None once the run is over."""


class NoProgress:
    """The default: report nothing."""

    def stage(self, name: str, total: int | None = None) -> None:
        return None

    def advance(self, n: int = 1) -> None:
        return None

    def note(self, message: str) -> None:
        return None

    def round(self, status: JobStatus, next_poll_in: float | None) -> None:
        return None


NO_PROGRESS = NoProgress()
