"""llmbulk end to end on the emulator: requests the real providers refuse fail as they would there.

The three runs an independent check found passing on the emulator while failing for real (issue 18);
each now ends with the real provider's outcome and a clear message. Sources: see tests/test_emulator_rules.py.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import QUICKSTART, Outcome

PROMPT = "Classify the sentiment of this review as positive, negative or neutral: {{ text }}"


def _run(llmbulk: Callable[..., Outcome], tmp_path: Path, *args: str) -> tuple[Outcome, list[dict[str, str]]]:
    out = tmp_path / "out.csv"
    result = llmbulk("run", str(QUICKSTART), "--id-column", "review_id", "--prompt", PROMPT, "--emulate",
                     "--out", str(out), *args)  # fmt: skip
    if not out.exists():
        return result, []
    with open(out, newline="") as fh:
        return result, list(csv.DictReader(fh))


def test_chat_model_on_the_embeddings_endpoint_fails_every_item(
    llmbulk: Callable[..., Outcome], tmp_path: Path
) -> None:
    """OpenAI: each line of a chat model on /v1/embeddings is a 404 in the error file (SDK Literals)."""
    result, rows = _run(llmbulk, tmp_path, "-p", "openai", "-m", "gpt-4o-mini", "--endpoint", "/v1/embeddings")
    assert result.exit_code == 4 and rows
    assert {r["status"] for r in rows} == {"failed_permanent"} and all("404" in r["error"] for r in rows)


def test_unknown_gemini_model_is_refused_at_create(llmbulk: Callable[..., Outcome], tmp_path: Path) -> None:
    """Gemini: batchGenerateContent on an unknown model answers 404 NOT_FOUND; llmbulk says so in one line."""
    result, _ = _run(llmbulk, tmp_path, "-p", "gemini", "-m", "gemini-nonexistent-9")
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert "404 NOT_FOUND" in result.stderr and "gemini-nonexistent-9" in result.stderr


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("-m", "claude-nonexistent-9", "--temperature", "7", "--param", "frobnicate=true"), "invalid_request_error"),
        (("-m", "claude-nonexistent-9"), "not_found_error: model: claude-nonexistent-9"),
    ],
)
def test_anthropic_bad_requests_end_errored_item_by_item(
    llmbulk: Callable[..., Outcome], tmp_path: Path, args: tuple[str, ...], fragment: str
) -> None:
    """Anthropic: the batch is accepted and every item ends `errored` with the Messages API's error."""
    result, rows = _run(llmbulk, tmp_path, "-p", "anthropic", *args)
    assert result.exit_code == 4 and rows
    assert {r["status"] for r in rows} == {"failed_permanent"} and all(fragment in r["error"] for r in rows)
