"""Never pay twice across jobs: repeated rows sent once, earlier answers reused, incremental reruns.

Each test runs the CLI against the emulator with the real SDKs over HTTP and a real state
database, and counts what the provider was sent from the emulator's own records (the request ids
of every batch it created), not from llmbulk's.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import Outcome
from scenarios import Scenario, Tally, _request_ids, _source, emulator, input_keys

from llmbulk.emulator import Emulator
from llmbulk.models import Task
from llmbulk.reuse import RequestKeys, parse_age

MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"}
PROMPT = "Label: {{ text }}"


def _write(path: Path, texts: list[str], prefix: str = "r") -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text"])
        writer.writerows([f"{prefix}{i}", text] for i, text in enumerate(texts))
    return path


def _run(provider: str, input_path: Path, out: str, *extra: str) -> list[str]:
    return ["run", str(input_path), "-p", provider, "-m", MODELS[provider], "--prompt", PROMPT,
            "--id-column", "id", "--max-items-per-batch", "10", "--emulate", "--out", out, *extra]  # fmt: skip


def _sent(home: Path) -> list[str]:
    """Every request id the emulator was sent, over every batch it created (any provider)."""
    emu = Emulator(home / "emulator")
    records = {b["id"]: b for p in MODELS for b in emu.list_batches(p)}
    audit = home / "emulator" / "audit.jsonl"
    created = [json.loads(line)["id"] for line in audit.read_text().splitlines() if '"batch.created"' in line]
    ids: list[str] = []
    for batch_id in created:
        source = _source(records[batch_id]) or ""
        path = emu.file_path(source)  # collect deletes an input once used: the emulator keeps its bytes aside
        found = _request_ids(path if path.exists() else emu.deleted_path(source))
        assert found is not None, f"cannot read the requests of {batch_id}"
        ids += found
    return ids


def _rows_sent(home: Path, job_id: str) -> list[int]:
    """Input rows of one job the provider was sent (custom ids are job-row-attempt)."""
    return sorted(int(i.rsplit("-", 2)[1]) for i in _sent(home) if i.rsplit("-", 2)[0] == job_id)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _newest_job(llmbulk: Callable[..., Outcome]) -> str:
    listed = llmbulk("jobs", "--json")
    assert listed.exit_code == 0, listed.stderr
    return str(listed.json()[0]["job_id"])


def _events(home: Path, job_id: str, name: str) -> list[dict[str, Any]]:
    lines = (home / "jobs" / job_id / "log.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == name]


# ---- request keys -----------------------------------------------------------------------------------


def _keys(**changes: Any) -> RequestKeys:
    target: dict[str, Any] = {"provider": "openai", "model": "gpt-4o-mini", "endpoint": None, "emulated": False}
    target.update(changes)
    return RequestKeys(
        target["provider"], target["model"], target["endpoint"], emulated=target["emulated"],
        output_schema=target.get("output_schema"), sample=target.get("sample"), base_url=target.get("base_url"),
    )  # fmt: skip


def test_the_fast_canonical_form_is_byte_for_byte_the_general_one() -> None:
    params = {"temperature": 0.2, "max_tokens": 9, "stop": ["\n", "é"]}
    keys = RequestKeys("openai", "m", None, emulated=False, params=params)
    for content in ["plain", 'quotes " and \\ and é and \u2028 and \x00', ""]:
        for system in [None, "be terse", 'sys "q"']:
            task = Task(0, "k", [{"role": "user", "content": content}], system, params)
            general = orjson.dumps((task.messages, system, params), option=orjson.OPT_SORT_KEYS)
            assert keys.canonical(task) == general
            # A chat task with the same message and equal (not identical) parameters: the same key.
            chat = Task(1, "c", [{"content": content, "role": "user"}], system, dict(params))
            assert keys.key(chat) == keys.key(task)


def _task(content: Any = "hi", system: str | None = None, **params: Any) -> Task:
    return Task(0, "k", [{"role": "user", "content": content}], system, params)


def test_a_request_key_ignores_key_order_and_row_identity_but_nothing_that_changes_the_answer() -> None:
    keys = _keys()
    same = Task(7, "other-id", [{"content": "hi", "role": "user"}], None, {})
    assert keys.key(_task()) == keys.key(same)  # key order, row and id do not matter
    assert keys.key(_task(temperature=0.5, max_tokens=9)) == keys.key(_task(max_tokens=9, temperature=0.5))
    schema = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}}
    reordered = {"properties": {"b": {"type": "integer"}, "a": {"type": "string"}}, "type": "object"}
    assert _keys(output_schema=schema).key(_task()) == _keys(output_schema=reordered).key(_task())
    base = keys.key(_task())
    changed = [
        keys.key(_task("hi!")),
        keys.key(_task(system="be terse")),
        keys.key(_task(temperature=0.0)),
        keys.key(Task(0, "k", [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}])),
        _keys(model="gpt-4.1-mini").key(_task()),
        _keys(provider="anthropic").key(_task()),
        _keys(endpoint="/v1/responses").key(_task()),
        _keys(emulated=True).key(_task()),  # an emulated answer is never reused by a real job
        _keys(output_schema=schema).key(_task()),
        _keys(sample=2).key(_task()),
        _keys(provider="openai-compatible", base_url="http://gateway-a/v1").key(_task()),
        _keys(provider="openai-compatible", base_url="http://gateway-b/v1").key(_task()),
        _keys(provider="azure").key(_task()),
    ]
    assert base not in changed and len(set(changed)) == len(changed)


AGES = [("7d", 604800), ("12h", 43200), ("30m", 1800), ("90s", 90), ("2w", 1209600), ("45", 45)]


@pytest.mark.parametrize(("text", "seconds"), AGES)
def test_reuse_ages_parse(text: str, seconds: float) -> None:
    assert parse_age(text, "--reuse-max-age") == seconds


@pytest.mark.parametrize("text", ["", "7x", "-1d", "0", "d7"])
def test_a_bad_reuse_age_is_a_one_line_usage_error(text: str, llmbulk: Callable[..., Outcome], tmp_path: Path) -> None:
    source = _write(tmp_path / "in.csv", ["a", "b"])
    result = llmbulk(*_run("openai", source, "out.csv", "--reuse-max-age", text))
    assert result.exit_code == 2 and "--reuse-max-age" in result.stderr and "Traceback" not in result.stderr


# ---- in one job ------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_repeated_rows_are_sent_once_and_every_row_gets_the_answer(
    provider: str, llmbulk: Callable[..., Outcome], home: Path, tmp_path: Path
) -> None:
    texts = [f"review {i % 8}" for i in range(24)]  # 8 distinct requests, each asked 3 times
    result = llmbulk(*_run(provider, _write(tmp_path / "in.csv", texts), "out.csv"))
    assert result.exit_code == 0, result.stderr
    job = _newest_job(llmbulk)
    assert _rows_sent(home, job) == list(range(8))  # only the first row of each request was sent
    assert "24 rows: 16 repeat another row's request (sent once), 8 sent" in result.stderr
    rows = _rows(tmp_path / "out.csv")
    assert [r["id"] for r in rows] == [f"r{i}" for i in range(24)]
    assert {r["status"] for r in rows} == {"succeeded"}
    for i, row in enumerate(rows):
        leader = rows[i % 8]
        assert row["output"] == leader["output"] and row["input_tokens"] == leader["input_tokens"]
        if i < 8:
            assert row["reused_from"] == "" and float(row["cost_usd"]) > 0
            assert row["cost_usd"] == repr(round(float(row["cost_usd"]), 12))  # not 3.2249999999999996e-06
        else:
            assert row["reused_from"] == f"r{i % 8}" and float(row["cost_usd"]) == 0
    cost = llmbulk("cost", job, "--json").json()
    billed = sum(int(r["input_tokens"]) for r in rows[:8])
    assert cost["tokens"]["input_tokens"] == billed  # charged once per request, not per row
    assert cost["reused"]["items"] == 16
    status = llmbulk("status", job, "--json").json()
    assert status["counts"] == {"succeeded": 24}


def test_repeats_fold_the_same_when_the_leaders_outgrow_memory(
    llmbulk: Callable[..., Outcome], home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmbulk.jobs import dedup

    # Past a bound the requests already sent live in the packing transaction's scratch table, not in
    # memory: a 1M-row job's would not fit. Lowered here so repeats meet leaders on both sides of it.
    monkeypatch.setattr(dedup, "IN_MEMORY_LEADERS", 3)
    monkeypatch.setattr(dedup, "CHUNK", 4)
    texts = [f"review {i % 8}" for i in range(24)] + [f"review {i}" for i in (7, 0, 5)]
    result = llmbulk(*_run("openai", _write(tmp_path / "in.csv", texts), "out.csv"))
    assert result.exit_code == 0, result.stderr
    assert _rows_sent(home, _newest_job(llmbulk)) == list(range(8))
    assert "27 rows: 19 repeat another row's request (sent once), 8 sent" in result.stderr
    rows = _rows(tmp_path / "out.csv")
    leaders = {f"review {i}": f"r{i}" for i in range(8)}
    for i, row in enumerate(rows):
        assert row["reused_from"] == ("" if i < 8 else leaders[texts[i]]), (i, row)
        assert row["output"] == rows[int(leaders[texts[i]][1:])]["output"]


def test_the_in_memory_key_table_probes_past_collisions_and_wraps_around() -> None:
    from llmbulk.jobs.dedup import KeyTable, prefix

    table = KeyTable(3)  # 8 slots: keys equal mod 8 share a home slot, and slot 7's overflow wraps to 0
    entries = {7: 70, 15: 150, -1: 10, 2: 20, 10: 100, -6: 60}  # -1 & 7 == 7, -6 & 7 == 2
    table.put_all(entries)
    assert table.found([7, 15, -1, 2, 10, -6]) == entries
    assert table.found([23, 3, -9, 1 << 62]) == {}  # absent keys stop at an empty slot, colliding or not
    assert table.size == 6
    with pytest.raises(OverflowError):
        table.put_all({31: 1, 39: 2})  # one slot must stay empty, or a miss would probe forever
    with pytest.raises(ValueError):
        table.put_all({0: 1})
    table.close()
    # claim: one pass that adds the new keys and names the ones already held (a repeat within the list too)
    claimed = KeyTable(3)
    assert claimed.claim([7, 15, 7, -1, 15], [1, 2, 3, 4, 5]) == [(2, 1), (4, 2)]
    assert claimed.found([7, 15, -1]) == {7: 1, 15: 2, -1: 4} and claimed.size == 3
    assert claimed.claim([-1, 23], [9, 8]) == [(0, 4)] and claimed.size == 4
    with pytest.raises(OverflowError):
        claimed.claim([1, 2, 3, 4], [1, 2, 3, 4])
    claimed.close()
    assert prefix("8000000000000000" + "0" * 16) == 1  # the one key that would be 0, the empty mark
    assert prefix("8000000000000002" + "f" * 16) == 2


def test_followers_go_through_retries_with_their_leader(
    llmbulk: Callable[..., Outcome], home: Path, tmp_path: Path, faults: Callable[..., None]
) -> None:
    # Half of every round fails, retryably: with 20 requests some are retried (all first tries
    # succeed with odds of 1 in 10^6), and 20 attempts leave none dead (1 in 10^6 per request).
    faults(item_errors={"server_error": 0.5})
    texts = [f"review {i % 20}" for i in range(60)]
    result = llmbulk(*_run("openai", _write(tmp_path / "in.csv", texts), "out.csv", "--max-attempts", "20"))
    assert result.exit_code == 0, result.stderr
    job = _newest_job(llmbulk)
    sent = _sent(home)
    assert {int(i.rsplit("-", 2)[1]) for i in sent} == set(range(20))  # followers were never sent
    attempts = [i for i in sent if i.rsplit("-", 2)[0] == job]
    assert len(attempts) > 20  # some leaders were retried
    rows = _rows(tmp_path / "out.csv")
    assert {r["status"] for r in rows} == {"succeeded"}
    for i, row in enumerate(rows):
        leader = rows[i % 20]
        assert (row["output"], row["attempts"]) == (leader["output"], leader["attempts"])
    assert max(int(r["attempts"]) for r in rows) > 1


def test_a_permanent_failure_of_a_leader_is_its_followers_failure_and_is_never_reused(
    llmbulk: Callable[..., Outcome], home: Path, tmp_path: Path, faults: Callable[..., None]
) -> None:
    faults(item_errors={"invalid_request": 0.4})  # with 20 requests, none failing has odds of 1 in 30,000
    texts = [f"review {i % 20}" for i in range(40)]
    source = _write(tmp_path / "in.csv", texts)
    first = llmbulk(*_run("openai", source, "out.csv"))
    assert first.exit_code == 4, first.stderr  # done with failures
    rows = _rows(tmp_path / "out.csv")
    failed = {r["text"] for r in rows if r["status"] == "failed_permanent"}
    assert failed and all(r["status"] == rows[i % 20]["status"] for i, r in enumerate(rows))
    faults()  # the provider answers everything now
    grown = _write(tmp_path / "grown.csv", [*texts, "review new"])
    second = llmbulk(*_run("openai", grown, "out2.csv"))
    assert second.exit_code == 0, second.stderr
    job = _newest_job(llmbulk)
    resent = {texts[row] if row < 40 else "review new" for row in _rows_sent(home, job)}
    assert resent == failed | {"review new"}  # failed answers were sent again, good ones reused
    assert {r["status"] for r in _rows(tmp_path / "out2.csv")} == {"succeeded"}


# ---- across jobs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["openai", "gemini"])
def test_a_rerun_over_a_grown_table_sends_only_new_and_changed_rows(
    provider: str, llmbulk: Callable[..., Outcome], home: Path, tmp_path: Path
) -> None:
    texts = [f"review number {i}" for i in range(40)]
    source = _write(tmp_path / "table.csv", texts)
    first = llmbulk(*_run(provider, source, "out.csv"))
    assert first.exit_code == 0, first.stderr
    first_job = _newest_job(llmbulk)
    first_rows = _rows(tmp_path / "out.csv")

    texts[3] = "review number 3, edited"  # one changed row, two new rows: the table grew by 5%
    _write(source, [*texts, "review number 40", "review number 41"])
    second = llmbulk(*_run(provider, source, "out.csv", "--json"))
    assert second.exit_code == 0, second.stderr
    job = _newest_job(llmbulk)
    assert job != first_job
    assert _rows_sent(home, job) == [3, 40, 41]
    assert "42 rows: 39 answered from earlier jobs ($" in second.stderr and "not spent), 3 sent" in second.stderr
    rows = _rows(tmp_path / "out.csv")
    assert len(rows) == 42 and {r["status"] for r in rows} == {"succeeded"}
    for i in range(40):
        if i == 3:
            assert rows[i]["reused_from"] == ""
        else:
            assert rows[i]["reused_from"] == f"{first_job}/r{i}"
            assert rows[i]["output"] == first_rows[i]["output"] and float(rows[i]["cost_usd"]) == 0
    (submitted,) = _events(home, job, "job.submitted")
    assert submitted["reuse"]["reused"] == 39 and submitted["reuse"]["sent"] == 3
    assert submitted["reuse"]["saved_usd"] > 0
    cost = llmbulk("cost", job, "--json").json()
    assert cost["reused"]["items"] == 39 and cost["reused"]["not_spent_usd"] == pytest.approx(
        submitted["reuse"]["saved_usd"]
    )
    cache = llmbulk("cache", "stats", "--json").json()
    assert cache["entries"] == 43 and cache["hits"] == 39  # 40 first answers, the changed row, 2 new


def test_submit_json_reports_the_reuse(llmbulk: Callable[..., Outcome], tmp_path: Path) -> None:
    source = _write(tmp_path / "in.csv", ["a", "b", "c", "a"])
    assert llmbulk(*_run("openai", source, "out.csv")).exit_code == 0
    grown = _write(tmp_path / "grown.csv", ["a", "b", "c", "a", "d", "d"])
    submitted = llmbulk("submit", str(grown), "-p", "openai", "-m", MODELS["openai"], "--prompt", PROMPT,
                        "--id-column", "id", "--emulate", "--json")  # fmt: skip
    assert submitted.exit_code == 0, submitted.stderr
    reuse = submitted.json()["reuse"]
    assert (reuse["rows"], reuse["reused"], reuse["repeats"], reuse["sent"]) == (6, 4, 1, 1)
    # The same command again continues that job: it reports what the job's pack did, not null.
    again = llmbulk("submit", str(grown), "-p", "openai", "-m", MODELS["openai"], "--prompt", PROMPT,
                    "--id-column", "id", "--emulate", "--json")  # fmt: skip
    assert again.exit_code == 0, again.stderr
    assert again.json()["continued"] is True and again.json()["job_id"] == submitted.json()["job_id"]
    assert again.json()["reuse"] == reuse


def test_fresh_sends_every_row_and_its_answers_replace_the_old_ones(
    llmbulk: Callable[..., Outcome], home: Path, tmp_path: Path
) -> None:
    texts = ["a", "b", "a", "c"]
    source = _write(tmp_path / "in.csv", texts)
    assert llmbulk(*_run("openai", source, "out.csv")).exit_code == 0
    fresh = llmbulk(*_run("openai", source, "fresh.csv", "--fresh"))
    assert fresh.exit_code == 0, fresh.stderr
    fresh_job = _newest_job(llmbulk)
    assert _rows_sent(home, fresh_job) == [0, 1, 2, 3]  # repeats and earlier answers: all sent
    assert all(r["reused_from"] == "" for r in _rows(tmp_path / "fresh.csv"))
    again = llmbulk(*_run("openai", _write(tmp_path / "again-in.csv", [*texts, "d"]), "again.csv"))
    assert again.exit_code == 0, again.stderr
    rows = _rows(tmp_path / "again.csv")
    assert [r["reused_from"].split("/")[0] for r in rows[:4]] == [fresh_job] * 4  # the newest answers


def test_a_different_schema_is_a_different_request(llmbulk: Callable[..., Outcome], home: Path, tmp_path: Path) -> None:
    source = _write(tmp_path / "in.csv", ["great", "awful", "fine"])
    one = tmp_path / "one.json"
    one.write_text('{"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}')
    two = tmp_path / "two.json"
    two.write_text('{"type": "object", "properties": {"mood": {"type": "string"}}, "required": ["mood"]}')
    assert llmbulk(*_run("openai", source, "one.csv", "--schema", str(one))).exit_code == 0
    other = llmbulk(*_run("openai", source, "two.csv", "--schema", str(two)))
    assert other.exit_code == 0, other.stderr
    assert _rows_sent(home, _newest_job(llmbulk)) == [0, 1, 2]
    # The first schema again, its keys reordered and spaced differently: the same request.
    one.write_text('{\n  "required": ["label"],\n  "properties": {"label": {"type": "string"}},\n  "type": "object"\n}')
    same = llmbulk(*_run("openai", source, "three.csv", "--schema", str(one), "--new-job"))
    assert same.exit_code == 0, same.stderr
    assert _rows_sent(home, _newest_job(llmbulk)) == []
    rows = _rows(tmp_path / "three.csv")
    assert [r["out.label"] for r in rows] == [r["out.label"] for r in _rows(tmp_path / "one.csv")]


def test_reuse_max_age_and_sample_bound_what_is_reused(
    llmbulk: Callable[..., Outcome], home: Path, tmp_path: Path
) -> None:
    source = _write(tmp_path / "in.csv", ["a", "b"])
    assert llmbulk(*_run("openai", source, "out.csv")).exit_code == 0
    time.sleep(1.2)
    aged = llmbulk(*_run("openai", source, "aged.csv", "--reuse-max-age", "1s"))
    assert aged.exit_code == 0, aged.stderr
    assert _rows_sent(home, _newest_job(llmbulk)) == [0, 1]  # older than a second: sent again
    recent = llmbulk(*_run("openai", source, "recent.csv", "--reuse-max-age", "1h"))
    assert recent.exit_code == 0, recent.stderr
    assert _rows_sent(home, _newest_job(llmbulk)) == []
    sample = llmbulk(*_run("openai", source, "s2.csv", "--sample", "2", "--temperature", "0.9"))
    assert sample.exit_code == 0, sample.stderr
    assert _rows_sent(home, _newest_job(llmbulk)) == [0, 1]
    again = llmbulk(*_run("openai", source, "s2b.csv", "--sample", "2", "--temperature", "0.9", "--new-job"))
    assert again.exit_code == 0, again.stderr
    assert _rows_sent(home, _newest_job(llmbulk)) == []
    assert "--fresh sends every row" in again.stderr  # a sampling temperature is not reused silently


def test_cache_prune_forgets_answers_but_not_results(
    llmbulk: Callable[..., Outcome], home: Path, tmp_path: Path
) -> None:
    source = _write(tmp_path / "in.csv", ["a", "b", "c"])
    assert llmbulk(*_run("openai", source, "out.csv")).exit_code == 0
    job = _newest_job(llmbulk)
    assert llmbulk("cache", "stats", "--json").json()["entries"] == 3
    kept = llmbulk("cache", "prune", "--older-than", "1h", "--json")
    assert kept.json() == {"removed": 0}
    pruned = llmbulk("cache", "prune", "--job", job, "--json")
    assert pruned.json() == {"removed": 3}
    assert llmbulk("cache", "stats", "--json").json()["entries"] == 0
    again = llmbulk(*_run("openai", source, "again.csv", "--new-job"))
    assert again.exit_code == 0, again.stderr
    assert _rows_sent(home, _newest_job(llmbulk)) == [0, 1, 2]
    assert len(_rows(tmp_path / "out.csv")) == 3
    collected = llmbulk("collect", job, "--out", "out-again.csv")  # the pruned job keeps its results
    assert collected.exit_code == 0, collected.stderr
    assert {r["status"] for r in _rows(tmp_path / "out-again.csv")} == {"succeeded"}
    nothing = llmbulk("cache", "prune")
    assert nothing.exit_code == 2 and "--older-than" in nothing.stderr


def test_every_row_answered_from_earlier_jobs_makes_a_finished_job_with_no_batch(
    llmbulk: Callable[..., Outcome], home: Path, tmp_path: Path
) -> None:
    source = _write(tmp_path / "in.csv", ["a", "b"])
    assert llmbulk(*_run("openai", source, "out.csv")).exit_code == 0
    batches = len(_sent(home))
    shuffled = _write(tmp_path / "other.csv", ["b", "a", "b"], prefix="x")
    result = llmbulk(*_run("openai", shuffled, "other-out.csv"))
    assert result.exit_code == 0, result.stderr
    assert len(_sent(home)) == batches
    job = _newest_job(llmbulk)
    status = llmbulk("status", job, "--json").json()
    assert status["state"] == "done" and status["counts"] == {"succeeded": 3} and status["batches"] == []
    rows = _rows(tmp_path / "other-out.csv")
    assert [r["output"] for r in rows] == [_rows(tmp_path / "out.csv")[i]["output"] for i in (1, 0, 1)]


# ---- runners sharing one database ---------------------------------------------------------------


@pytest.mark.parametrize("store_url", ["sqlite", "postgresql"], indirect=True)
def test_a_runner_elsewhere_reuses_the_answers_another_runner_paid_for(tmp_path: Path, store_url: str) -> None:
    backend = "postgresql" if store_url.startswith("postgresql") else "sqlite"
    tally = Tally("reuse", "openai", backend)
    with emulator(tmp_path / "emulator") as server:
        sc = Scenario(tmp_path, server, store_url, tally)
        try:
            first_input = sc.write_input("a.csv", rows=30)
            first = sc.llmbulk(*sc.run_line(first_input, "openai", out="a-out.csv"))
            assert first.code == 0, str(first)
            first_job = sc.newest_job()
            # Another machine: its own home folder and checkout, the same state database.
            elsewhere = tmp_path / "elsewhere"
            elsewhere.mkdir()
            grown = sc.write_input("b.csv", rows=33)  # the same 30 rows, and 3 new ones
            second = sc.llmbulk(*sc.run_line(grown, "openai", out="b-out.csv"), env={"LLMBULK_HOME": str(elsewhere)})
            assert second.code == 0, str(second)
            assert "33 rows: 30 answered from earlier jobs" in second.stderr and "3 sent" in second.stderr
            second_job = sc.newest_job()
            sent = [i for b in sc.created_batches() for i in _batch_ids(server, b["id"])]
            assert sorted(int(i.rsplit("-", 2)[1]) for i in sent if i.startswith(second_job)) == [30, 31, 32]
            rows = _rows(tmp_path / "b-out.csv")
            # Every fifth row repeated the one before: the answer came from the row that was sent.
            leaders = [i - 1 if i % 5 == 4 else i for i in range(30)]
            assert [r["reused_from"] for r in rows[:30]] == [f"{first_job}/r{i}" for i in leaders]
            sc.audit({first_job: (tmp_path / "a-out.csv", input_keys(first_input)),
                      second_job: (tmp_path / "b-out.csv", input_keys(grown))})  # fmt: skip
            tally.passed = True
        finally:
            sc.close()
            tally.record()


def _batch_ids(server: Any, batch_id: str) -> list[str]:
    record = next(b for p in MODELS for b in server.emulator.list_batches(p) if b["id"] == batch_id)
    source = _source(record) or ""
    path = server.emulator.file_path(source)  # deleted once collected: the emulator keeps its bytes aside
    return _request_ids(path if path.exists() else server.emulator.deleted_path(source)) or []


def test_a_request_key_prefix_collision_refuses_the_job_instead_of_sharing_an_answer(
    llmbulk: Callable[..., Outcome], home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmbulk.jobs import dedup

    # Two different requests whose first 64 hash bits agree (about 1 in 10^8 per million-row job):
    # forced here, since no real input can be found that does it.
    monkeypatch.setattr(dedup, "prefix", lambda _key: 42)
    source = _write(tmp_path / "in.csv", ["a", "b", "c"])
    result = llmbulk(*_run("openai", source, "out.csv"))
    assert result.exit_code != 0 and "too alike to tell apart" in result.stderr and "--fresh" in result.stderr
    assert llmbulk("jobs", "--json").json() == []  # nothing recorded, nothing sent
    assert (
        not (home / "emulator" / "audit.jsonl").exists()
        or '"batch.created"' not in (home / "emulator" / "audit.jsonl").read_text()
    )
    fresh = llmbulk(*_run("openai", source, "out.csv", "--fresh"))
    assert fresh.exit_code == 0, fresh.stderr
