"""State store: SQLModel schema, named migrations, and the operations that issue SQL."""

from llmbulk.store.store import Store

__all__ = ["Store"]
