"""Gemini's SDK errors as llmbulk's, with any API key value taken out of every message."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from llmbulk.errors import ConfigError, ProviderError, QuotaError
from llmbulk.providers.gemini.lines import HTTP_STATUSES, status_name

KEY_HINT = "set GOOGLE_API_KEY or GEMINI_API_KEY (GOOGLE_API_KEY wins when both are set)"
RETRYABLE_CALL_STATUSES = frozenset({"UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED", "ABORTED"})
NO_REASON = (
    "Gemini reports the batch FAILED without a reason (the SDK does not expose it); check the input file and model name"
)


def scrub(text: str, keys: Iterable[str | None]) -> str:
    """Remove any API key value from a message before it reaches users or logs."""
    for key in keys:
        if key and key.strip():
            text = text.replace(key.strip(), "***")
    return text


def api_error(what: str, exc: Any, model: str, clean: Callable[[str], str]) -> ProviderError | ConfigError:
    """An SDK `APIError` during `what`: a key problem, a quota refusal, or a provider error."""
    code = int(exc.code or 0)
    status = str(exc.status or HTTP_STATUSES.get(code, "") or "")
    message = clean(str(exc.message or str(exc).splitlines()[0]))
    if code in (401, 403) or status in ("UNAUTHENTICATED", "PERMISSION_DENIED") or "API_KEY_INVALID" in str(exc):
        return ConfigError(
            f"Gemini refused {what} (HTTP {code} {status}): {message}",
            hint=f"{KEY_HINT}, and check the key may use model {model}",
        )
    if code == 429 or status == "RESOURCE_EXHAUSTED":
        return QuotaError(f"Gemini quota exhausted during {what}: {message}")
    return ProviderError(
        f"Gemini {what} failed: HTTP {code} {status}: {message}",
        retryable=code >= 500 or code == 408 or status in RETRYABLE_CALL_STATUSES,
        status=code,
    )


def failure_reason(error: Any, clean: Callable[[str], str]) -> tuple[str, str | None]:
    """Why a job FAILED, from its raw operation's `error` (which the SDK drops)."""
    if not isinstance(error, dict) or not (error.get("message") or error.get("status") or error.get("code")):
        return NO_REASON, None
    status = status_name(error.get("status"), error.get("code"))
    message = clean(str(error.get("message") or "no message"))
    return f"Gemini failed the batch: {status or error.get('code')}: {message}", status
