"""Images and documents attached to requests (#22): media sniffing, sources, limits and provider-native parts.

A task carries an attachment as a provider-neutral part, `{"type": "attachment", "media_type", "sha256",
"size", "source"}`; its bytes are read only when a request line is encoded, never stored.
"""

from __future__ import annotations

ATTACHMENT = "attachment"  # the neutral part's type
