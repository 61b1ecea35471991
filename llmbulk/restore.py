"""What a runner on another machine rebuilds from the database and the input file alone.

A job records its input by absolute path and its shards as files under the state home. A CI
runner that collects or retries a job submitted elsewhere has the database and a checkout of
the input, but neither that path nor those files: the input is found by the tail of its path
under the working directory, and a missing shard is rendered again from the input and accepted
only if it comes out byte for byte as packed (same sha256).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from llmbulk.attachments.template import uses_attachments
from llmbulk.attachments.uploads import account_of, recorded_refs, with_refs
from llmbulk.errors import InputError, StateError
from llmbulk.models import Limits
from llmbulk.providers.base import BatchProvider
from llmbulk.shards import verify_shard, write_shards
from llmbulk.store import Store
from llmbulk.store.schema import Job, Shard
from llmbulk.tables import InputTable
from llmbulk.tasks import TaskSpec, iter_tasks


def input_path(job: Job, cwd: Path | None = None) -> Path:
    """The job's input: where it was submitted from, or the same relative path under `cwd`.

    `/builds/acme/data/reviews.csv` recorded at submit is found as `./data/reviews.csv` (or
    `./reviews.csv`) by a runner whose checkout lives elsewhere; the content is checked against
    the recorded sha256 by whoever reads it.
    """
    recorded = Path(job.input_path)
    if recorded.exists():
        return recorded
    base = cwd or Path.cwd()
    parts = recorded.parts[1:] if recorded.is_absolute() else recorded.parts
    for start in range(len(parts)):
        candidate = base.joinpath(*parts[start:])
        if candidate.exists():
            return candidate
    raise InputError(
        f"input {recorded} of job {job.id} is not on this machine",
        hint="run from a checkout that holds it at the same relative path",
    )


def input_table(job: Job) -> InputTable:
    media = uses_attachments(job.spec.prompt, job.spec.attach)
    return InputTable(input_path(job), None if job.input_format == "tasks" else job.input_format, media)


def ensure_shard(store: Store, provider: BatchProvider, job: Job, shard: Shard, home: Path) -> None:
    """Make sure the shard file is present and as packed; rebuild it from the input if it is missing."""
    target = home / shard.path
    if verify_shard(target, shard.sha256):
        return
    attempts = store.shard_attempts(job.id, shard.id)
    spec = TaskSpec.of(job.spec)
    limits = Limits(max_items=max(1, len(attempts)), max_bytes=1 << 62)  # one shard, whatever its size
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    scratch = Path(tempfile.mkdtemp(prefix=".rebuild-", dir=target.parent))
    try:
        account = account_of(job.provider, job.spec.base_url, job.emulated)
        # Attachments by the uploads recorded for the account, else inline (a shard of an earlier upload
        # policy): whichever renders the shard byte for byte as packed.
        built = []
        for refs in (recorded_refs(store, provider.media_files, account), {}):
            tasks = with_refs(iter_tasks(input_table(job), spec, only_rows=attempts), refs)
            packed = write_shards(
                tasks, provider.encode, job.id, limits, scratch, _ignore_items, first_seq=shard.seq,
                attempt_of=attempts.__getitem__,
            )  # fmt: skip
            built = list(packed)
            if len(built) == 1 and built[0].sha256 == shard.sha256:
                break
        if len(built) != 1 or built[0].sha256 != shard.sha256:
            raise StateError(
                f"shard {shard.id} is missing at {target} and the input no longer renders it as packed",
                hint="restore the original input file (and template) the job was submitted with",
            )
        os.replace(built[0].path, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _ignore_items(_seq: int, _items: list[tuple[int, str, str | None]]) -> None:
    """The items are in the database already: a rebuilt shard records nothing."""
