"""Per-token rates kept on disk between commands, so `cost` and `status` skip the price library's import.

Importing genai-prices (its whole price snapshot) takes ~0.2 s, more than a light command's budget.
The rates a command looked up are written to the user's cache folder (`$XDG_CACHE_HOME/llmbulk`,
default `~/.cache/llmbulk`) under a name that changes with the installed snapshot, llmbulk's own
version and the UTC day (price variants can start on a date): a stale file is never read, only
left behind. Any failure to read or write the cache falls back to the library, silently.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import time
from pathlib import Path
from typing import Any

import orjson

_loaded: dict[str, Any] | None = None
_path: Path | None = None


def get(key: str) -> tuple[bool, Any]:
    """(found, value) for one lookup key; value None means the library does not price it."""
    table = _table()
    return (key in table, table.get(key))


def put(key: str, value: Any) -> None:
    table = _table()
    table[key] = value
    path = _file()
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(orjson.dumps(table))
        os.replace(tmp, path)
    except OSError:
        pass


def _table() -> dict[str, Any]:
    global _loaded
    if _loaded is None:
        _loaded = {}
        path = _file()
        if path is not None:
            try:
                read = orjson.loads(path.read_bytes())
                _loaded = read if isinstance(read, dict) else {}
            except (OSError, orjson.JSONDecodeError):
                pass
    return _loaded


def _file() -> Path | None:
    global _path
    if _path is None:
        spec = importlib.util.find_spec("genai_prices")
        if spec is None or not spec.submodule_search_locations:
            return None
        from llmbulk import __version__

        snapshot = Path(next(iter(spec.submodule_search_locations))) / "data.py"
        try:
            stat = snapshot.stat()
        except OSError:
            return None
        day = time.strftime("%Y%m%d", time.gmtime())
        stamp = hashlib.sha256(f"{snapshot}|{stat.st_mtime_ns}|{stat.st_size}|{__version__}|{day}".encode()).hexdigest()
        try:
            base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "llmbulk"
        except RuntimeError:  # no home folder to find: no cache
            return None
        _path = base / f"rates-{stamp[:16]}.json"
    return _path
