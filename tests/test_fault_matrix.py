"""The fault matrix: every fault type × every provider, each a whole `llmbulk run` on the emulator.

Each cell runs the real CLI (real SDKs, real HTTP, a real SQLite file) against a fault plan and
checks that the job still ends with the right terminal state for every item, every row exactly
once in the output, and — from the emulator's audit log — that every batch the provider created
is one llmbulk knows about (an orphan adopted, never a second batch paid for the same shard).
"""

from __future__ import annotations

import csv
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import QUICKSTART, Outcome
from vendor_models import MODELS, VENDORS

from llmbulk import providers
from llmbulk.emulator.engine import Emulator, EmulatorConfig, FaultPlan
from llmbulk.models import make_custom_id

PROMPT = "Classify the sentiment of this review as positive, negative or neutral: {{ text }}"
MAX_ATTEMPTS = 4
# The routes each provider's adapter calls, as the emulator serves them (method, path regex).
ROUTES: dict[str, dict[str, tuple[str, str]]] = {
    "openai": {
        "upload": ("POST", r"^/openai/v1/files$"),
        "create": ("POST", r"^/openai/v1/batches$"),
        "poll": ("GET", r"^/openai/v1/batches/[^/]+$"),
        "download": ("GET", r"^/openai/v1/files/[^/]+/content$"),
    },
    "anthropic": {
        "create": ("POST", r"^/anthropic/v1/messages/batches$"),
        "poll": ("GET", r"^/anthropic/v1/messages/batches/[^/]+$"),
        "download": ("GET", r"^/anthropic/v1/messages/batches/[^/]+/results$"),
    },
    "gemini": {
        "upload": ("POST", r"^/gemini/upload/"),
        "create": ("POST", r":batchGenerateContent$"),
        "poll": ("GET", r"^/gemini/v1(beta)?/batches/[^/]+$"),
        "download": ("GET", r"^/gemini/(download/)?v1(beta)?/files/[^/]+:download$"),
    },
}
for _vendor in VENDORS:  # the OpenAI adapter's routes, under each vendor's own emulator path
    _path = re.escape(providers.info(_vendor).emulator_path)
    ROUTES[_vendor] = {
        "upload": ("POST", rf"^{_path}/files$"),
        "create": ("POST", rf"^{_path}/batches$"),
        "poll": ("GET", rf"^{_path}/batches/[^/]+$"),
        "download": ("GET", rf"^{_path}/files/[^/]+/content$"),
    }


def http(route: str, **fault: Any) -> Callable[[str], dict[str, Any] | None]:
    """A plan with one HTTP fault on `route`, or None where the provider has no such call."""

    def plan(provider: str) -> dict[str, Any] | None:
        if route not in ROUTES[provider]:
            return None
        method, regex = ROUTES[provider][route]
        return {"http_faults": [{"method": method, "path_regex": regex, **fault}]}

    return plan


def plain(**plan: Any) -> Callable[[str], dict[str, Any] | None]:
    return lambda provider: plan


def only(provider_name: str, **plan: Any) -> Callable[[str], dict[str, Any] | None]:
    return lambda provider: plan if provider == provider_name else None


TIMEOUT = {"action": "timeout", "delay_ms": 1500}  # the client's timeout is 0.5 s in these runs
FAULTS: dict[str, Callable[[str], dict[str, Any] | None]] = {
    "429_on_create": http("create", status=429, retry_after_ms=50, times=2),
    "429_on_poll": http("poll", status=429, retry_after_ms=50, times=4),
    "500_on_poll": http("poll", status=500, times=4),
    "503_on_download": http("download", status=503, times=4),
    "500_on_upload": http("upload", status=500, times=4),
    "reset_on_create": http("create", action="reset"),
    "reset_after_create": http("create", action="reset", after=True),
    # The second shard's create is lost before it happens, just after a same-sized shard's batch was
    # created: reconciliation must not adopt that batch (Anthropic's listing has no labels to tell).
    "reset_on_second_create": http("create", action="reset", skip=1),
    "timeout_after_create": http("create", **TIMEOUT, after=True),
    "reset_after_upload": http("upload", action="reset", after=True),
    "reset_on_poll": http("poll", action="reset", times=4),
    "timeout_on_poll": http("poll", **TIMEOUT, times=4),
    "reset_on_download": http("download", action="reset", times=2),
    "truncated_download": http("download", action="truncate", times=2),
    "corrupt_download": http("download", action="corrupt", times=2),
    "item_errors": plain(
        item_errors={"rate_limit": 0.15, "server_error": 0.1, "timeout": 0.05, "invalid_request": 0.1}
    ),
    # Anthropic validates every request at create and refuses the whole batch: no batch-level failure.
    "validation_failed": lambda provider: None if provider == "anthropic" else {"fail_validation_batches": [1]},
    "expired_partial": plain(expire_batches=[2], expire_fraction=0.5),
    "provider_cancelled": plain(cancel_batches=[1]),
    "late_results": plain(late_results=3),
    "token_limit": only("openai", token_limit_batches=[1]),
}
CELLS = [(fault, provider) for fault in FAULTS for provider in ("openai", "anthropic", "gemini", *VENDORS)]
# Every cell runs in the slow step; the default run keeps, per vendor, a lost create answer (adopted by
# labels, or proven by result ids where the vendor drops metadata) and per-item errors, and where
# metadata is dropped, a lost second create beside a same-sized batch that must not be adopted.
VENDOR_DEFAULT_FAULTS = ("reset_after_create", "item_errors")
UNLABELLED_DEFAULT_FAULTS = ("reset_on_second_create",)


def _default_cell(fault: str, provider: str) -> bool:
    if provider not in VENDORS or fault in VENDOR_DEFAULT_FAULTS:
        return True
    profile = providers.info(provider).profile
    return fault in UNLABELLED_DEFAULT_FAULTS and profile is not None and not profile.keeps_metadata


def expected_states(plan: dict[str, Any], job_id: str, n_rows: int) -> dict[int, str]:
    """Each row's terminal state, worked out from the emulator's seeded per-item error draws."""
    emulator = Emulator(Path("/nonexistent-unused"), EmulatorConfig(faults=FaultPlan.model_validate(plan)))
    states = {}
    for row in range(n_rows):
        state = "dead"
        for attempt in range(1, MAX_ATTEMPTS + 1):
            kind = emulator.item_error(make_custom_id(job_id, row, attempt))
            if kind is None:
                state = "succeeded"
                break
            if kind == "invalid_request":
                state = "failed_permanent"
                break
        states[row] = state
    return states


@pytest.mark.parametrize(
    ("fault", "provider"),
    [pytest.param(f, p, id=f"{f}-{p}", marks=[] if _default_cell(f, p) else [pytest.mark.slow]) for f, p in CELLS],
)
def test_fault_cell(
    fault: str,
    provider: str,
    llmbulk: Callable[..., Outcome],
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plan = FAULTS[fault](provider)
    if plan is None:
        pytest.skip(f"{provider} has no such call")
    monkeypatch.setenv("LLMBULK_EMULATOR_FAULTS", orjson.dumps(plan).decode())
    monkeypatch.setenv("LLMBULK_EMULATOR_SECONDS", "0.3")  # long enough for a half-run cancel or expiry
    monkeypatch.setenv("LLMBULK_EMULATED_POLL_INITIAL", "0.1")
    monkeypatch.setenv("LLMBULK_EMULATED_POLL_MAX", "0.4")
    monkeypatch.setenv("LLMBULK_HTTP_TIMEOUT", "0.5")
    out = tmp_path / "out.csv"
    result = llmbulk(
        "run", str(QUICKSTART), "--provider", provider, "--model", MODELS[provider], "--prompt", PROMPT,
        "--id-column", "review_id", "--max-items-per-batch", "20", "--max-attempts", str(MAX_ATTEMPTS),
        "--emulate", "--json", "--out", str(out), "--timeout", "120",
    )  # fmt: skip
    assert result.exit_code in (0, 4), result.stderr
    job_id = result.json()["job_id"]

    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    with open(QUICKSTART, newline="") as fh:
        keys = [r["review_id"] for r in csv.DictReader(fh)]
    assert [r["review_id"] for r in rows] == keys  # every input row exactly once, in input order

    db = sqlite3.connect(home / "llmbulk.db")
    states = dict(db.execute("SELECT row_index, state FROM items WHERE job_id = ?", (job_id,)).fetchall())
    want = expected_states(plan, job_id, len(keys)) if "item_errors" in plan else dict.fromkeys(states, "succeeded")
    assert states == want
    kept = db.execute("SELECT state, SUM(n) FROM item_counts WHERE job_id = ? GROUP BY state", (job_id,)).fetchall()
    counted = db.execute("SELECT state, COUNT(*) FROM items WHERE job_id = ? GROUP BY state", (job_id,)).fetchall()
    assert sorted(kept) == sorted(counted)  # the counts status reads were kept in step with every write
    assert [r["status"] for r in rows] == [want[i] for i in range(len(keys))]
    assert result.exit_code == (0 if set(want.values()) == {"succeeded"} else 4)

    # No batch paid for twice: every batch the emulator created is one llmbulk recorded, and each
    # shard has at most one batch that did not fail outright at the provider.
    audit = [orjson.loads(line) for line in (home / "emulator" / "audit.jsonl").read_bytes().splitlines()]
    created = {e["id"] for e in audit if e["event"] == "batch.created"}
    sql = "SELECT provider_batch_id, shard_id FROM batches WHERE job_id = ? AND provider_batch_id IS NOT NULL"
    pairs = db.execute(sql, (job_id,)).fetchall()
    recorded = dict(pairs)
    assert len(recorded) == len(pairs), "one provider batch was adopted by two shards"
    assert created == set(recorded)
    failed_at_provider = {  # a token-limit failure is recorded as requeued: its shard goes again
        r[0] for r in db.execute("SELECT provider_batch_id FROM batches WHERE state IN ('failed', 'requeued')")
    }
    per_shard: dict[str, int] = {}
    for batch_id, shard_id in recorded.items():
        if batch_id not in failed_at_provider:
            per_shard[shard_id] = per_shard.get(shard_id, 0) + 1
    assert all(n == 1 for n in per_shard.values()), per_shard
    if "upload" in fault:  # an orphaned upload is reused or deleted: no live input file that no batch uses
        uploads = [e for e in audit if e["event"] == "file.created" and e.get("purpose") in ("batch", None)]
        deleted = {e["id"] for e in audit if e["event"] == "file.deleted"}
        inputs = {r[0] for r in db.execute("SELECT input_file_id FROM batches WHERE job_id = ?", (job_id,))} - {None}
        assert {e["id"] for e in uploads} - deleted <= inputs
    faults_hit = [e for e in audit if e["event"] in ("fault.http", "batch.results_hidden")]
    if "http_faults" in plan or "late_results" in plan:
        assert faults_hit, "the fault never fired: the cell tested nothing"
