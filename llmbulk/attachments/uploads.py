"""Upload once, reference: attachments sent by many rows, or large, go to the provider's Files API once
per (account, sha256) and every request references the file (#22).

Each upload is a side effect like a batch create: its intent is recorded first (`attachment_files`
row without a file id, owned by this process), the upload is made, then confirmed, fenced by the
owner. A crash in between leaves the intent; the next run lists the provider's files and adopts the
one carrying the hash in its name with the same size instead of uploading again. Another live
process's fresh intent is waited on, never raced.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from llmbulk.attachments import ATTACHMENT
from llmbulk.attachments.sources import is_url, load
from llmbulk.attachments.wire import check_file
from llmbulk.crashpoints import crashpoint
from llmbulk.errors import LeaseError
from llmbulk.leases import holder_is_dead, new_owner
from llmbulk.models import Task
from llmbulk.providers.base import MediaFile, MediaFiles
from llmbulk.store import Store
from llmbulk.store.attachments import AttachmentRecord

INLINE_THRESHOLD = 512 * 1024  # bytes: a file used once and smaller than this travels inline
POLICIES = ("auto", "always", "never")
CLAIM_WAIT = 120.0  # seconds a fresh intent of another live process is waited on before giving up
NAME_PREFIX = "llmbulk-"


@dataclass(frozen=True, slots=True)
class FileRef:
    """What a request references for one attachment."""

    file_id: str
    uri: str | None = None


@dataclass(slots=True)
class UploadCounts:
    """What the upload step did, for the job's log and the tests."""

    referenced: int = 0  # distinct files sent by reference
    uploaded: int = 0  # of them, uploaded by this run
    adopted: int = 0  # found at the provider after a lost answer (not uploaded again)


def account_of(provider: str, base_url: str | None, emulated: bool) -> str:
    """Whose files: the provider and gateway, emulated or not (never a key)."""
    return f"{provider}|{base_url or ''}|{'emulated' if emulated else 'live'}"


def file_name(sha256: str, media_type: str) -> str:
    """The name an upload carries at the provider: its hash, so a lost upload is found by name and size."""
    extension = "pdf" if media_type == "application/pdf" else media_type.split("/")[-1]
    return f"{NAME_PREFIX}{sha256}.{extension}"


def chosen(tasks: Iterable[Task], files: MediaFiles, policy: str, provider: str) -> list[dict[str, Any]]:
    """The distinct attachments to send by reference: referable, and used by several rows or large.

    Every distinct file is first checked against the provider's per-file limits (naming the first row
    sending it), so nothing over a limit is uploaded; the per-request limits are checked as each line
    is encoded, before any batch is sent.
    """
    seen: dict[str, tuple[dict[str, Any], int]] = {}
    for task in tasks:
        for message in task.messages:
            content = message.get("content")
            if type(content) is not list:
                continue
            for part in content:
                if isinstance(part, dict) and part.get("type") == ATTACHMENT and not is_url(part):
                    first, uses = seen.get(part["sha256"], (part, 0))
                    if not uses:
                        check_file(task, provider, part)
                    seen[part["sha256"]] = (first, uses + 1)
    return [
        part
        for part, uses in seen.values()
        if part["media_type"] in files.referable and (policy == "always" or uses > 1 or part["size"] > INLINE_THRESHOLD)
    ]


def upload_all(
    store: Store, files: MediaFiles, account: str, parts: list[dict[str, Any]], clock: Callable[[], float] = time.time
) -> tuple[dict[str, FileRef], UploadCounts]:
    """Each part's file at the provider, uploaded only where no usable upload is recorded."""
    owner, counts, refs = new_owner(), UploadCounts(), {}
    listing: list[MediaFile] | None = None
    known = {r.sha256: r for r in store.attachment_files(account)}
    for part in parts:
        sha256 = part["sha256"]
        record = _usable(known.get(sha256), files, clock())
        if record is None:
            record, listing, adopted = _upload(store, files, account, part, owner, listing, clock)
            counts.uploaded += not adopted
            counts.adopted += adopted
        assert record.file_id is not None
        refs[sha256] = FileRef(record.file_id, record.file_uri)
    counts.referenced = len(refs)
    if refs:
        with store.tx() as tx:
            tx.mark_attachments_used(account, list(refs), clock())
    return refs, counts


def recorded_refs(store: Store, files: MediaFiles | None, account: str, now: float | None = None) -> dict[str, FileRef]:
    """The uploads recorded for an account, for re-encoding a job's requests (retries, a rebuilt shard).

    With `now`, only those a new batch may still reference; without, every confirmed one (a rebuilt
    shard must come out byte for byte as packed).
    """
    if files is None:
        return {}
    return {
        r.sha256: FileRef(r.file_id, r.file_uri)
        for r in store.attachment_files(account)
        if r.file_id is not None and (now is None or _usable(r, files, now) is not None)
    }


def with_refs(tasks: Iterator[Task], refs: dict[str, FileRef]) -> Iterator[Task]:
    """The tasks with each uploaded attachment's part carrying its reference (`ref`), which the line
    encoders send instead of the bytes. The request key ignores it: same content, same request."""
    for task in tasks:
        for message in task.messages:
            content = message.get("content")
            if type(content) is list:
                for part in content:
                    if isinstance(part, dict) and part.get("type") == ATTACHMENT and part["sha256"] in refs:
                        ref = refs[part["sha256"]]
                        part["ref"] = {"file_id": ref.file_id, "uri": ref.uri}
        yield task


def _usable(record: AttachmentRecord | None, files: MediaFiles, now: float) -> AttachmentRecord | None:
    if record is None or record.file_id is None:
        return None
    if record.expires_at is not None and record.expires_at - now < files.min_valid:
        return None  # kept too briefly for a batch that may take its full window: upload anew
    return record


def _upload(
    store: Store,
    files: MediaFiles,
    account: str,
    part: dict[str, Any],
    owner: str,
    listing: list[MediaFile] | None,
    clock: Callable[[], float],
) -> tuple[AttachmentRecord, list[MediaFile] | None, bool]:
    sha256, media_type, size = part["sha256"], part["media_type"], part["size"]
    name = file_name(sha256, media_type)
    deadline = clock() + CLAIM_WAIT
    while True:
        with store.tx() as tx:
            record = tx.attachment(account, sha256)
            stale = record is not None and record.file_id is None
            busy = (
                stale
                and record is not None
                and record.owner != owner
                and not holder_is_dead(record.owner)
                and clock() - record.intent_at < CLAIM_WAIT
            )
            if not busy:
                tx.claim_upload(account, sha256, media_type, size, owner, clock())
                break
        if clock() > deadline:
            raise LeaseError(
                f"another llmbulk process is uploading attachment {part['source']}",
                hint="run the command again once it is done",
            )
        time.sleep(1.0)
    crashpoint("after_attachment_intent")
    found: MediaFile | None = None
    if stale:  # an earlier intent's answer was lost: the file may be there already
        listing = list(files.listing()) if listing is None else listing
        now = clock()
        found = next(
            (
                f
                for f in listing
                if f.name == name and f.size == size and (f.expires_at is None or f.expires_at - now >= files.min_valid)
            ),
            None,
        )
    adopted = found is not None
    if found is None:
        crashpoint("before_attachment_upload")
        found = files.upload(name, load(part), media_type)
        crashpoint("after_attachment_upload")
    with store.tx() as tx:
        if not tx.confirm_upload(account, sha256, owner, found.file_id, found.uri, found.expires_at, clock()):
            raise LeaseError(
                f"the upload of attachment {part['source']} was taken over by another process",
                hint="run the command again",
            )
        confirmed = tx.attachment(account, sha256)
    assert confirmed is not None
    return confirmed, listing, adopted
