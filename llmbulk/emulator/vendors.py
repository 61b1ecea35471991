"""The OpenAI-compatible batch services the emulator plays, each under its own path prefix.

This is the emulator's own copy of what each vendor's published docs say (sources beside each
entry): it never reads the adapter's profiles, so a profile that drifts from the vendor is caught
here as a refusal, as the real service would refuse it. The routes (`routes_openai`) are shared;
a request's vendor is set on its scope by `VendorScope`, the mount that serves it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from starlette.requests import Request

MB = 1024 * 1024
DAY = 86_400
CHAT, RESPONSES, EMBEDDINGS, COMPLETIONS = "/v1/chat/completions", "/v1/responses", "/v1/embeddings", "/v1/completions"
OPENAI_ENDPOINTS = (
    RESPONSES, CHAT, EMBEDDINGS, COMPLETIONS, "/v1/moderations", "/v1/images/generations", "/v1/images/edits",
    "/v1/videos",
)  # fmt: skip
SCOPE_KEY = "llmbulk.vendor"


@dataclass(frozen=True)
class Vendor:
    """One service's batch API as the emulator answers it."""

    name: str  # the provider name batches and files are stored under
    prefix: str  # where it is mounted
    endpoints: tuple[str, ...]
    max_items: int | None = None  # None: EmulatorConfig's (OpenAI's, lowered by tests)
    max_bytes: int | None = None
    windows: frozenset[str] = frozenset({"24h"})
    window_span: tuple[int, int] | None = None  # or any "<n>h"/"<n>d" within these seconds
    api_key_header: bool = False  # Azure: `api-key` (its Python samples' bearer form is accepted too)
    key_optional: bool = False  # a gateway without auth (vLLM): requests without a key are served
    deployments: bool = False  # body.model must name a deployment of the resource
    capped_files: int | None = None  # input files kept without `expires_after` before uploads are refused
    capped_expiring_files: int | None = None  # the same, for files uploaded with `expires_after`
    upload_expiry: tuple[int, int] = (3600, 30 * DAY)  # allowed `expires_after.seconds`
    paging: bool = True  # lists honour `limit`/`after` and say `has_more`
    statuses: Mapping[str, str] = field(default_factory=dict)  # OpenAI status → the vendor's spelling
    text_times: bool = False  # `created_at` as an ISO string
    text_errors: bool = False  # `errors` as a plain string
    keeps_metadata: bool = True
    expires: bool = True  # unfinished work is cancelled when the window passes
    content_filter: bool = False  # Azure's content-filter annotations on chat answers
    models: str | None = None  # whose model names it serves: "openai", a price-library id, or None for any
    label: str = "OpenAI"

    def window_ok(self, window: str) -> bool:
        if window in self.windows:
            return True
        match = re.fullmatch(r"([1-9][0-9]{0,4})([hd])", window)
        if self.window_span is None or match is None:
            return False
        seconds = int(match.group(1)) * (3600 if match.group(2) == "h" else DAY)
        return self.window_span[0] <= seconds <= self.window_span[1]

    def status(self, openai_status: str) -> str:
        return self.statuses.get(openai_status, openai_status)


VENDORS: tuple[Vendor, ...] = (
    Vendor("openai", "/openai/v1", OPENAI_ENDPOINTS, models="openai"),
    # learn.microsoft.com/azure/ai-foundry/openai/how-to/batch (MicrosoftDocs/azure-ai-docs
    # includes/batch/*.md, includes/global-batch-limits.md): 100,000 requests and 200 MB per file,
    # 500 input files without expiry per resource (10,000 with expiry set), expires_after
    # 1209600-2592000 s, deployment names in body.model, only 24h, no expiry of long jobs,
    # content-filter results on answers.
    Vendor(
        "azure",
        "/azure/openai/v1",
        (CHAT, RESPONSES),
        100_000,
        200 * MB,
        api_key_header=True,
        deployments=True,
        capped_files=500,
        capped_expiring_files=10_000,
        upload_expiry=(14 * DAY, 30 * DAY),
        expires=False,
        content_filter=True,
        label="Azure",
    ),
    # console.groq.com/docs/api-reference#batches: 100 MB files, windows 24h to 7d, chat only, lists
    # documented without paging fields.
    Vendor(
        "groq",
        "/groq/openai/v1",
        (CHAT,),
        50_000,
        100 * MB,
        window_span=(DAY, 7 * DAY),
        paging=False,
        models="groq",
        label="Groq",
    ),
    # docs.deepinfra.com/batch: chat, completions, embeddings; only 24h; limits unverified (OpenAI's).
    Vendor("deepinfra", "/deepinfra/v1/openai", (CHAT, COMPLETIONS, EMBEDDINGS), 50_000, 200 * MB, label="DeepInfra"),
    # github.com/doublewordai/batch-skill: 200 MB files, chat and embeddings, 1h and 24h windows.
    Vendor(
        "doubleword",
        "/doubleword/v1",
        (CHAT, EMBEDDINGS),
        50_000,
        200 * MB,
        windows=frozenset({"24h", "1h"}),
        models="doubleword",
        label="Doubleword",
    ),
    # docs.tokenfactory.nebius.com/ai-models-inference/batch-inference: 5,000,000 requests, 10 GB.
    Vendor("nebius", "/nebius/v1", (CHAT, EMBEDDINGS), 5_000_000, 10 * 1024 * MB, label="Nebius"),
    # novita.ai/docs/api-reference/model-apis-llm-*-batch(es): upper-case statuses with PROGRESS,
    # `created_at` and `errors` as strings, no metadata on create; guide and reference disagree on the
    # window (24h / fixed 48h): both accepted.
    Vendor(
        "novita",
        "/novita/openai/v1",
        (CHAT, COMPLETIONS),
        50_000,
        200 * MB,
        windows=frozenset({"24h", "48h"}),
        statuses=MappingProxyType(
            {
                "validating": "VALIDATING",
                "in_progress": "PROGRESS",
                "finalizing": "PROGRESS",
                "completed": "COMPLETED",
                "failed": "FAILED",
                "expired": "EXPIRED",
                "cancelling": "CANCELLING",
                "cancelled": "CANCELLED",
            }
        ),
        text_times=True,
        text_errors=True,
        keeps_metadata=False,
        models="novita",
        label="Novita",
    ),
    # A generic OpenAI-compatible gateway (LiteLLM, vLLM): any model, any window, metadata dropped.
    Vendor(
        "openai-compatible",
        "/compat/v1",
        (CHAT, RESPONSES, EMBEDDINGS),
        window_span=(3600, 365 * DAY),
        keeps_metadata=False,
        key_optional=True,
        label="gateway",
    ),
)
BY_NAME = {vendor.name: vendor for vendor in VENDORS}


def vendor_of(request: Request) -> Vendor:
    """The vendor whose mount serves this request."""
    return request.scope.get(SCOPE_KEY) or BY_NAME["openai"]  # type: ignore[no-any-return]


class VendorScope:
    """ASGI wrapper: marks every request through one mount with its vendor."""

    def __init__(self, app: Any, vendor: Vendor) -> None:
        self.app, self.vendor = app, vendor

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope = {**scope, SCOPE_KEY: self.vendor}
        await self.app(scope, receive, send)
