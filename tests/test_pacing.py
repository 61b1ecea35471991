"""--max-enqueued-tokens counts what is in flight for the model across every job, as the provider's
queue limit does; other models are not held back by it."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import QUICKSTART, Outcome

from llmbulk import costs


def _submit(llmbulk: Callable[..., Outcome], model: str, *extra: str) -> dict:
    result = llmbulk("submit", str(QUICKSTART), "-p", "openai", "-m", model, "--prompt", "{{ text }}",
                     "--id-column", "review_id", "--emulate", "--json", *extra)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return result.json()


def test_enqueued_tokens_are_counted_per_model_across_jobs(
    llmbulk: Callable[..., Outcome], home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMBULK_EMULATOR_SECONDS", "60")  # batches stay in flight for the whole test
    first = _submit(llmbulk, "gpt-4o-mini")
    with sqlite3.connect(home / "llmbulk.db") as db:
        (in_flight,) = db.execute("SELECT SUM(n_bytes) FROM shards WHERE job_id = ?", (first["job_id"],)).fetchone()
    # Room for the first job's batch and one half-sized shard of the second, not for two.
    limit = str(int(in_flight * 1.75 / costs.CHARS_PER_TOKEN))
    second = _submit(llmbulk, "gpt-4o-mini", "--max-items-per-batch", "25", "--max-enqueued-tokens", limit)
    other_model = _submit(llmbulk, "gpt-4.1-mini", "--max-items-per-batch", "25", "--max-enqueued-tokens", limit)
    with sqlite3.connect(home / "llmbulk.db") as db:

        def sent(job_id: str) -> int:
            sql = "SELECT COUNT(*) FROM batches WHERE job_id = ? AND provider_batch_id IS NOT NULL"
            return db.execute(sql, (job_id,)).fetchone()[0]

        assert (sent(first["job_id"]), sent(second["job_id"]), sent(other_model["job_id"])) == (1, 1, 2)
    shown = llmbulk("status", second["job_id"], "--json").json()
    assert shown["unsent_shards"] == 1
    llmbulk("cancel", first["job_id"])
