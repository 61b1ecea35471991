"""Progress reporting from the library: a callback protocol whose default does nothing.

Only `render.py` knows how to draw it; tests and library users get silence by default.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Receives progress from long steps."""

    def stage(self, name: str, total: int | None = None) -> None:
        """A new step begins (total units if known)."""

    def advance(self, n: int = 1) -> None:
        """Units of the current step are done."""

    def note(self, message: str) -> None:
        """Something worth telling the user happened."""


class NoProgress:
    """The default: report nothing."""

    def stage(self, name: str, total: int | None = None) -> None:
        return None

    def advance(self, n: int = 1) -> None:
        return None

    def note(self, message: str) -> None:
        return None


NO_PROGRESS = NoProgress()
