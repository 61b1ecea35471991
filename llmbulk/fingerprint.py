"""A job's fingerprint: what makes a rerun of the same command line the same job.

Two submissions are the same job when every job-defining option is equal and the input holds the
same bytes. The options are hashed here (canonical JSON, so key order is irrelevant) and stored
with the job; the input's content hash is compared only when a job with the same options exists,
so a first submission never reads its input twice.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from llmbulk.tables import InputTable, file_sha256

# Options that change what is sent or how it is packed. Pacing, --max-cost and --max-attempts
# are policies a rerun may change without making a new job.
VERSION = 1


def options_fingerprint(options: dict[str, Any]) -> str:
    """sha256 of the job-defining options as canonical JSON."""
    payload = orjson.dumps({"v": VERSION, **options}, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(payload).hexdigest()


def input_sha256(table: InputTable) -> str | None:
    """The content hash the job records for this input (the same bytes give the same hash)."""
    if table.path.is_file():
        return file_sha256(table.path)
    for _ in table.rows():  # a folder: its hash is made while its files are read
        pass
    return table.sha256
