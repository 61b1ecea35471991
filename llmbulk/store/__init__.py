"""State store: SQLModel schema, named migrations, and the operations that issue SQL.

`Store` is loaded on first use, so the light readers here (`queries`, `quick`) can be imported
without SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmbulk.store.store import Store

__all__ = ["Store"]


def __getattr__(name: str) -> Any:
    if name == "Store":
        from llmbulk.store.store import Store

        return Store
    raise AttributeError(name)
