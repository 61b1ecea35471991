"""Which attachment uploads (#22) no open job needs any more, for `gc`.

An upload is needed while an open job of its account may send a request referencing it: one created
no later than the upload was last used (its `used_at`, stamped when a job packs requests naming it).
Files at the provider that carry llmbulk's attachment name but no record (a superseded Gemini upload,
a record lost with its database) are listed too, unless an upload of that content is in flight.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from llmbulk.attachments.uploads import account_of
from llmbulk.providers.base import MediaFile
from llmbulk.store.attachments import AttachmentRecord

NAME = re.compile(r"llmbulk-([0-9a-f]{64})\.\w+")


@dataclass(frozen=True, slots=True)
class SpentAttachment:
    file_id: str
    reason: str
    sha256: str | None  # its record, dropped once the file is deleted


def spent_attachments(
    provider: str,
    emulated: bool,
    records: Iterable[AttachmentRecord],
    open_jobs_created: list[float],
    listing: Iterable[MediaFile],
) -> list[SpentAttachment]:
    """The provider's attachment files (by `listing`) that no open job created by then needs."""
    account = account_of(provider, None, emulated)
    mine = {r.sha256: r for r in records if r.account == account}
    found = []
    for file in listing:
        match = NAME.fullmatch(file.name)
        if match is None:
            continue  # not an attachment llmbulk uploaded
        record = mine.get(match.group(1))
        if record is None or (record.file_id is not None and record.file_id != file.file_id):
            found.append(SpentAttachment(file.file_id, "attachment upload no record names (superseded or lost)", None))
            continue
        if record.file_id is None:
            continue  # an upload in flight (or its crash, which the next run adopts)
        used = record.used_at or record.uploaded_at or record.intent_at
        if any(created <= used for created in open_jobs_created):
            continue
        found.append(SpentAttachment(file.file_id, "attachment no open job references", record.sha256))
    return found
