"""Vendors whose batch API is OpenAI's files + batches API: each a profile (data) of the OpenAI adapter.

A profile says where a vendor differs from OpenAI: base URL, key variable, limits per input file,
completion windows, endpoints, model naming, auth header, file expiry, whether batches keep their
metadata, status spelling, and the batch price. Every number names its source beside it; what no
published page confirmed is marked "unverified". No SDK is imported here.

Together AI is not a profile: its batch API answers `create` with `{"job": {...}}` rather than a
batch object, takes uploads with `purpose="batch-api"` and spells statuses its own way
(docs.together.ai/reference/batch-create, docs.together.ai/docs/batch-inference), so the OpenAI SDK
cannot drive it unmodified.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

MB = 1024 * 1024
GB = 1024 * MB
DAY = 86_400


@dataclass(frozen=True, slots=True)
class Profile:
    """How one OpenAI-compatible vendor's batch API differs from OpenAI's own."""

    name: str
    base_url: str | None  # None: the SDK's default, or (`base_url_required`) the user's own resource or gateway
    max_items: int
    max_bytes: int
    endpoints: tuple[str, ...]
    windows: tuple[str, ...] = ("24h",)  # accepted completion windows; the first is the default
    window_span: tuple[int, int] | None = None  # or any "<n>h"/"<n>d" within these seconds
    auth_header: str = "authorization"  # "api-key": the key goes in that header, not as a bearer token
    deployment_names: bool = False  # body.model names the user's deployment, not a model
    upload_expiry: int | None = None  # seconds of `expires_after` every upload carries
    output_expiry: int | None = None  # seconds of `output_expires_after` every batch create carries
    keeps_metadata: bool = True  # batches carry the metadata labels they were created with
    status_aliases: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    expires: bool = True  # unfinished work is cancelled when the window passes
    newest_first: bool = False  # lists are newest first, so a listing may stop at the first older entry
    batch_discount: float | None = None  # documented flat discount on the synchronous price
    price_note: str | None = None  # why a batch price cannot be given, when it cannot
    key_required: bool = True
    base_url_required: bool = False  # an Azure resource or a gateway: --base-url or the base-URL variable

    def window_ok(self, window: str) -> bool:
        """Whether this vendor accepts `window` as a completion window."""
        if window in self.windows:
            return True
        if self.window_span is None:
            return False
        seconds = window_seconds(window)
        return seconds is not None and self.window_span[0] <= seconds <= self.window_span[1]

    @property
    def windows_text(self) -> str:
        """The accepted windows, for hints and the README table."""
        if self.window_span is None:
            return ", ".join(self.windows)
        low, high = self.window_span
        return f"{_span(low)} to {_span(high)}"


def window_seconds(window: str) -> int | None:
    """`"24h"` → 86400, `"7d"` → 604800; None for anything else."""
    match = re.fullmatch(r"([1-9][0-9]{0,4})([hd])", window)
    if match is None:
        return None
    return int(match.group(1)) * (3600 if match.group(2) == "h" else DAY)


def _span(seconds: int) -> str:
    return f"{seconds // DAY}d" if seconds % DAY == 0 and seconds > DAY else f"{seconds // 3600}h"


CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
EMBEDDINGS = "/v1/embeddings"

PROFILES: tuple[Profile, ...] = (
    # OpenAI itself, the reference the others differ from: SDK docstrings (openai 3.54) for 50,000
    # requests and 200 MB per file and the only window "24h"; 50% discount per the Batch FAQ
    # (help.openai.com/en/articles/9197833-batch-api-faq). The price library has OpenAI's batch rates.
    Profile(
        "openai",
        None,
        max_items=50_000,
        max_bytes=200 * MB,
        endpoints=(CHAT, RESPONSES, EMBEDDINGS),
        batch_discount=0.5,
        newest_first=True,  # providers.md 1.8: assumed newest first (unverified); the others: unknown
        # Expiry (openai SDK 3.57 docstrings: `expires_after` and `output_expires_after` seconds 3600 to
        # 2,592,000, anchored at the file's creation). An input file must outlive its batch's 24 h window,
        # a requeue or a runner paused for days, and the reuse of an upload after a crash: 14 days is that
        # with a week to spare (and Azure's minimum). Output files are kept the 30-day maximum (also the
        # default for batch files): a job whose results nobody has collected yet keeps them as long as
        # OpenAI allows; collect deletes them at once anyway (unless --keep-files).
        upload_expiry=14 * DAY,
        output_expiry=30 * DAY,
    ),
    # Azure OpenAI, v1 API. https://github.com/MicrosoftDocs/azure-ai-docs articles/ai-foundry/openai/
    # includes/batch/batch-python.md and batch-rest.md (learn.microsoft.com/azure/ai-foundry/openai/how-to/batch):
    # base URL https://YOUR-RESOURCE-NAME.openai.azure.com/openai/v1/, `api-key` header, body.model is the
    # Global-Batch deployment name (the same on every line), completion window must be 24h, "jobs taking
    # longer than 24 hours will continue to execute until canceled" (no expiry), uploads may set
    # expires_after 1209600-2592000 s. includes/global-batch-limits.md: 100,000 requests per file, 200 MB
    # per file, 500 input files per resource without expiry (10,000 with expiry set). how-to/batch:
    # "50% less cost than global standard". Endpoints: the docs show /v1/chat/completions and
    # /v1/responses lines; embeddings batches are unverified, so not offered.
    Profile(
        "azure",
        None,
        max_items=100_000,
        max_bytes=200 * MB,
        endpoints=(CHAT, RESPONSES),
        auth_header="api-key",
        deployment_names=True,
        base_url_required=True,
        upload_expiry=14 * DAY,  # the docs' own example value, the shortest allowed
        expires=False,
        batch_discount=0.5,
    ),
    # Groq. console.groq.com/docs/api-reference#batches-create: base https://api.groq.com/openai/v1,
    # completion_window "Durations from 24h to 7d", endpoint /v1/chat/completions only, input file up to
    # 100 MB, optional metadata; the list response documents no paging fields. Discount: 50% per
    # console.groq.com/docs/batch as cited in genai-prices' Groq data (an earlier copy of that page said
    # 25%). Requests per file: unverified (OpenAI's 50,000 assumed).
    Profile(
        "groq",
        "https://api.groq.com/openai/v1",
        max_items=50_000,
        max_bytes=100 * MB,
        endpoints=(CHAT,),
        window_span=(DAY, 7 * DAY),
        batch_discount=0.5,
    ),
    # DeepInfra. docs.deepinfra.com/batch/introduction and /batch/batch-endpoints: base
    # https://api.deepinfra.com/v1/openai, endpoints chat/completions, completions, embeddings, only "24h",
    # metadata up to 16 pairs, "billed at 20% below real-time pricing". Requests and bytes per file:
    # unverified (OpenAI's 50,000 / 200 MB assumed). DeepInfra is not in the price library.
    Profile(
        "deepinfra",
        "https://api.deepinfra.com/v1/openai",
        max_items=50_000,
        max_bytes=200 * MB,
        endpoints=(CHAT, EMBEDDINGS),
        batch_discount=0.2,
        price_note="deepinfra is not in the price library (its batch rate is 20% below its real-time rate)",
    ),
    # Doubleword. github.com/doublewordai/batch-skill (Doubleword's own guide, skills.sh/doublewordai):
    # base https://api.doubleword.ai/v1, "fully compatible with OpenAI's Batch API", lines for
    # /v1/chat/completions or /v1/embeddings, files up to 200 MB, 1-hour and 24-hour windows priced
    # differently per model. Requests per file: unverified (50,000 assumed). genai-prices encodes
    # Doubleword's realtime prices only ("This provider currently encodes only Realtime pricing").
    Profile(
        "doubleword",
        "https://api.doubleword.ai/v1",
        max_items=50_000,
        max_bytes=200 * MB,
        endpoints=(CHAT, EMBEDDINGS),
        windows=("24h", "1h"),
        price_note="Doubleword's batch prices differ per model and window; the price library has its"
        " realtime prices only",
    ),
    # Nebius Token Factory (formerly AI Studio). docs.tokenfactory.nebius.com/ai-models-inference/
    # batch-inference: up to 5,000,000 requests and 10 GB per file, endpoints /v1/chat/completions and
    # /v1/embeddings, one model per file, only the 24h window, up to 500 batches, "50% less than regular
    # requests"; base https://api.tokenfactory.nebius.com/v1/ (earlier https://api.studio.nebius.com/v1/),
    # key in NEBIUS_API_KEY. Nebius (direct) is not in the price library.
    Profile(
        "nebius",
        "https://api.tokenfactory.nebius.com/v1",
        max_items=5_000_000,
        max_bytes=10 * GB,
        endpoints=(CHAT, EMBEDDINGS),
        batch_discount=0.5,
        price_note="nebius is not in the price library (its batch rate is 50% of its regular rate)",
    ),
    # Novita. novita.ai/docs/guides/llm-batch-api and /docs/api-reference/model-apis-llm-create-batch,
    # -list-batches: base https://api.novita.ai/openai/v1, endpoints /v1/chat/completions and
    # /v1/completions, one model per file, statuses VALIDATING, PROGRESS, COMPLETED, FAILED, EXPIRED,
    # CANCELLING, CANCELLED, `created_at` a string, `errors` a string; create takes no metadata (so a
    # crashed create is reconciled by proof from result ids). "up to 50k requests per batch"
    # (novita.ai/docs/skill.md). The window: the guide says 24 hours, the API reference a fixed 48 hours
    # (unverified which holds; "24h" is sent). Bytes per file: unverified (200 MB assumed). The batch
    # discount is not published in the pages found.
    Profile(
        "novita",
        "https://api.novita.ai/openai/v1",
        max_items=50_000,
        max_bytes=200 * MB,
        endpoints=(CHAT,),
        windows=("24h", "48h"),
        keeps_metadata=False,
        status_aliases=MappingProxyType(
            {
                "VALIDATING": "validating",
                "PROGRESS": "in_progress",
                "IN_PROGRESS": "in_progress",
                "FINALIZING": "finalizing",
                "COMPLETED": "completed",
                "FAILED": "failed",
                "EXPIRED": "expired",
                "CANCELLING": "cancelling",
                "CANCELLED": "cancelled",
            }
        ),
        price_note="Novita publishes no batch discount llmbulk could verify",
    ),
    # Any OpenAI-compatible batch gateway (LiteLLM proxy, vLLM batch gateways, llm-d): the user's
    # --base-url. Limits are OpenAI's (lower them with --max-items-per-batch); any window is passed
    # through; metadata may be dropped, so crashed creates are reconciled by proof; prices are the
    # gateway's own.
    Profile(
        "openai-compatible",
        None,
        max_items=50_000,
        max_bytes=200 * MB,
        endpoints=(CHAT, RESPONSES, EMBEDDINGS),
        window_span=(3600, 365 * DAY),
        keeps_metadata=False,
        price_note="an OpenAI-compatible gateway's prices are its own",
        key_required=False,
        base_url_required=True,
    ),
)
