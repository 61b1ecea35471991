"""The attachment-files aggregate: uploads to a provider's Files API, one per (account, sha256), intent first.

`claim` records the intent (or reports the upload already made, or the live claim of another process);
`confirm` records the provider's file id, fenced by the claim's owner; `forget` drops a row whose file
is gone. Reads list what an account holds, for packing and for `gc`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from llmbulk.store.unit import Reading, Unit

_COLUMNS = "account, sha256, media_type, size, file_id, file_uri, expires_at, intent_at, owner, uploaded_at, used_at"


@dataclass(frozen=True, slots=True)
class AttachmentRecord:
    """One row of `attachment_files`."""

    account: str
    sha256: str
    media_type: str
    size: int
    file_id: str | None
    file_uri: str | None
    expires_at: float | None
    intent_at: float
    owner: str
    uploaded_at: float | None
    used_at: float | None


def _record(row: Any) -> AttachmentRecord:
    return AttachmentRecord(*row)


class AttachmentWrites(Unit):
    """Write operations on attachment uploads, in the unit of work."""

    def attachment(self, account: str, sha256: str) -> AttachmentRecord | None:
        row = self._run(
            f"SELECT {_COLUMNS} FROM attachment_files WHERE account = :a AND sha256 = :s", {"a": account, "s": sha256}
        ).first()
        return None if row is None else _record(row)

    def claim_upload(self, account: str, sha256: str, media_type: str, size: int, owner: str, now: float) -> None:
        """Record (or take over) the intent to upload: the row is this owner's, without a file id."""
        self._run("DELETE FROM attachment_files WHERE account = :a AND sha256 = :s", {"a": account, "s": sha256})
        self._run(
            "INSERT INTO attachment_files (account, sha256, media_type, size, intent_at, owner)"
            " VALUES (:a, :s, :m, :z, :t, :o)",
            {"a": account, "s": sha256, "m": media_type, "z": size, "t": now, "o": owner},
        )

    def confirm_upload(
        self,
        account: str,
        sha256: str,
        owner: str,
        file_id: str,
        file_uri: str | None,
        expires_at: float | None,
        now: float,
    ) -> bool:
        """Record the provider's file for this owner's intent; False when another owner took the row over."""
        updated = self._run(
            "UPDATE attachment_files SET file_id = :f, file_uri = :u, expires_at = :e, uploaded_at = :t, used_at = :t"
            " WHERE account = :a AND sha256 = :s AND owner = :o AND file_id IS NULL",
            {"f": file_id, "u": file_uri, "e": expires_at, "t": now, "a": account, "s": sha256, "o": owner},
        )
        return bool(updated.rowcount)

    def mark_attachments_used(self, account: str, sha256s: list[str], now: float) -> None:
        self._run(
            "UPDATE attachment_files SET used_at = :t WHERE account = :a AND sha256 = :s",
            [{"t": now, "a": account, "s": s} for s in sha256s],
        )

    def forget_attachment(self, account: str, sha256: str) -> None:
        self._run("DELETE FROM attachment_files WHERE account = :a AND sha256 = :s", {"a": account, "s": sha256})


class AttachmentReads(Reading):
    """Read operations on attachment uploads."""

    def attachment_files(self, account: str | None = None) -> list[AttachmentRecord]:
        """Every recorded upload (of one account), oldest intent first."""
        where = "" if account is None else " WHERE account = :a"
        with self._read() as conn:
            rows = conn.execute(
                text(f"SELECT {_COLUMNS} FROM attachment_files{where} ORDER BY intent_at"), {"a": account}
            ).all()
        return [_record(r) for r in rows]
