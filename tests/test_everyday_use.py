"""Everyday use: clean pipes, job states that tell the truth, and a status that says what to run next."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from conftest import QUICKSTART, Outcome

PROMPT = "Sentiment of: {{ text }}"


def _run(llmbulk: Callable[..., Outcome], *extra: str) -> Outcome:
    return llmbulk("run", str(QUICKSTART), "-p", "openai", "-m", "gpt-4o-mini", "--prompt", PROMPT,
                   "--id-column", "review_id", "--max-items-per-batch", "20", "--emulate", *extra)  # fmt: skip


def test_run_out_dash_puts_only_json_rows_on_stdout(llmbulk: Callable[..., Outcome]) -> None:
    result = _run(llmbulk, "--out", "-")
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]  # every line is a JSON row
    assert len(rows) == 50 and {r["status"] for r in rows} == {"succeeded"}
    assert "items:" in result.stderr  # the human summary went to stderr


def test_items_out_dash_prints_no_wrote_line(llmbulk: Callable[..., Outcome], faults: Callable[..., None]) -> None:
    faults(item_errors={"invalid_request": 0.3})
    job = _run(llmbulk, "--out", "o.csv", "--json").json()["job_id"]
    listed = llmbulk("items", job, "--state", "failed_permanent", "--out", "-")
    assert listed.exit_code == 0, listed.stderr
    assert all(json.loads(line)["state"] == "failed_permanent" for line in listed.stdout.splitlines())
    assert "wrote" not in listed.stdout + listed.stderr


def test_a_job_with_items_left_to_retry_is_not_done(
    llmbulk: Callable[..., Outcome], faults: Callable[..., None], home: Path
) -> None:
    faults(item_errors={"server_error": 0.4})
    submitted = llmbulk("submit", str(QUICKSTART), "-p", "openai", "-m", "gpt-4o-mini", "--prompt", PROMPT,
                        "--id-column", "review_id", "--emulate", "--json")  # fmt: skip
    job = submitted.json()["job_id"]
    followed = llmbulk("collect", job, "--follow", "--out", "o.csv")
    assert followed.exit_code == 3, followed.stderr  # retryable items wait: not done
    jobs = {j["job_id"]: j["state"] for j in llmbulk("jobs", "--json").json()}
    assert jobs[job] == "active"
    status = llmbulk("status", job)
    assert f"`llmbulk retry {job}`" in status.stdout
    faults()
    assert llmbulk("run", job, "--out", "o.csv").exit_code == 0
    assert {j["job_id"]: j["state"] for j in llmbulk("jobs", "--json").json()}[job] == "done"


def test_status_after_the_provider_finished_says_to_collect(llmbulk: Callable[..., Outcome], monkeypatch) -> None:
    job = llmbulk("submit", str(QUICKSTART), "-p", "openai", "-m", "gpt-4o-mini", "--prompt", PROMPT,
                  "--emulate", "--json").json()["job_id"]  # fmt: skip
    status = llmbulk("status", job, "--refresh")
    assert status.exit_code == 3
    assert f"`llmbulk collect {job}`" in status.stdout


def test_state_is_found_from_a_sub_folder(
    llmbulk: Callable[..., Outcome], home: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv("LLMBULK_HOME")
    (tmp_path / ".git").mkdir()  # a project: state is looked for up to its root
    monkeypatch.chdir(tmp_path)
    job = _run(llmbulk, "--out", "o.csv", "--json").json()["job_id"]
    deeper = tmp_path / "notebooks" / "week1"
    deeper.mkdir(parents=True)
    monkeypatch.chdir(deeper)
    listed = llmbulk("jobs", "--json", "-v")
    assert [j["job_id"] for j in listed.json()] == [job]
    assert f"home {home.resolve()}" in listed.stderr
    assert not (deeper / ".llmbulk").exists()
    (tmp_path / ".git").rmdir()  # outside a repository only the working directory counts
    assert llmbulk("jobs", "--json").json() == []


def test_a_model_that_cannot_serve_the_endpoint_is_refused_before_paying(
    llmbulk: Callable[..., Outcome], home: Path
) -> None:
    embeddings = _run(llmbulk, "--endpoint", "/v1/embeddings", "--out", "o.csv")
    assert embeddings.exit_code == 2 and "does not serve /v1/embeddings" in embeddings.stderr
    too_long = _run(llmbulk, "--max-tokens", "100000", "--out", "o.csv")
    assert too_long.exit_code == 2 and "output limit of 16,384" in too_long.stderr
    assert llmbulk("jobs", "--json").json() == []


def test_an_unknown_model_is_sent_with_a_warning_and_a_failed_create_names_the_kept_job(
    llmbulk: Callable[..., Outcome],
) -> None:
    result = llmbulk("run", str(QUICKSTART), "-p", "gemini", "-m", "gemini-nonexistent-9", "--prompt", PROMPT,
                     "--emulate", "--out", "o.csv")  # fmt: skip
    assert result.exit_code == 1
    assert "not in llmbulk's model list" in result.stderr and "404 NOT_FOUND" in result.stderr
    (job,) = [j["job_id"] for j in llmbulk("jobs", "--json").json()]
    assert f"job {job} is kept" in result.stderr and f"`llmbulk cancel {job}` drops it" in result.stderr
