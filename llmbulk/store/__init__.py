"""State store: SQLModel schema, named migrations, and the operations that issue SQL.

`Store` (reads, and `tx()` for writes) is loaded on first use, so the light readers here
(`queries`, `quick`) can be imported without SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmbulk.store.store import Store, Tx

__all__ = ["Store", "Tx"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from llmbulk.store import store

        return getattr(store, name)
    raise AttributeError(name)
