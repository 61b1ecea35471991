"""Events, job logs, stats, the dead-letter export and costs, end to end through the CLI on the emulator.

Hooks are real: a webhook receiver (http.server on 127.0.0.1 in a thread) and a shell command that
appends each event's stdin to a file. Every figure is checked against the state database itself.
"""

from __future__ import annotations

import csv
import http.server
import json
import shlex
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import QUICKSTART, Outcome

from llmbulk import costs

PROMPT = "Classify the sentiment of this review as positive, negative or neutral: {{ text }}"
MODEL = "gpt-4o-mini"
END_EVENTS = ("job.done", "job.done_with_failures")
BATCH_ENDS = ("batch.ended", "batch.failed", "batch.expired", "batch.cancelled")


@pytest.fixture(autouse=True)
def _fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMBULK_EMULATED_POLL_INITIAL", "0.05")
    monkeypatch.setenv("LLMBULK_EMULATED_POLL_MAX", "0.2")


# ---- a real webhook receiver -------------------------------------------------------------------


@dataclass
class Receiver:
    url: str
    bodies: list[bytes] = field(default_factory=list)
    status: int = 200
    fail_first: int = 0  # answer 500 to this many POSTs first
    hits: int = 0
    redirect_to: str | None = None  # answer 302 with this Location
    authorizations: list[str | None] = field(default_factory=list)  # each POST's Authorization header
    paths: list[str] = field(default_factory=list)  # each POST's request target

    def events(self) -> list[dict[str, Any]]:
        return [orjson.loads(b) for b in self.bodies]


def _serve(status: int) -> Iterator[Receiver]:
    receiver = Receiver(url="")
    receiver.status = status
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                receiver.hits += 1
                receiver.authorizations.append(self.headers.get("Authorization"))
                receiver.paths.append(self.path)
                status = 500 if receiver.hits <= receiver.fail_first else receiver.status
                if receiver.redirect_to:
                    self.send_response(302)
                    self.send_header("Location", receiver.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if status < 300 and self.headers.get("Content-Type") == "application/json":
                    receiver.bodies.append(body)
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def do_GET(self) -> None:  # what a followed redirect would send: counted, refused
            with lock:
                receiver.hits += 1
                receiver.authorizations.append(self.headers.get("Authorization"))
                receiver.paths.append(self.path)
            self.send_response(405)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from _serve(200)


@pytest.fixture
def broken_receiver() -> Iterator[Receiver]:
    yield from _serve(500)


def _sink_command(sink: Path) -> str:
    """A command that appends its stdin (one event) and a newline to `sink`."""
    script = f"import sys; open({str(sink)!r}, 'ab').write(sys.stdin.buffer.read() + b'\\n')"
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(script)}"


def _sink_events(sink: Path) -> list[dict[str, Any]]:
    if not sink.exists():
        return []
    return [orjson.loads(line) for line in sink.read_bytes().splitlines() if line.strip()]


# ---- helpers -----------------------------------------------------------------------------------


def _run(llmbulk: Callable[..., Outcome], *extra: str, out: str = "out.csv") -> Outcome:
    return llmbulk(
        "run", str(QUICKSTART), "-p", "openai", "-m", MODEL, "--prompt", PROMPT, "--id-column", "review_id",
        "--out", out, "--emulate", "--json", "--new-job", *extra,
    )  # fmt: skip


def _log(home: Path, job_id: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (home / "jobs" / job_id / "log.jsonl").read_bytes().splitlines()]


def _db(home: Path) -> sqlite3.Connection:
    return sqlite3.connect(home / "llmbulk.db")


def _query(home: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with _db(home) as db:
        return db.execute(sql, args).fetchall()


def _batch_ids(home: Path, job_id: str) -> set[str]:
    rows = _query(home, "SELECT provider_batch_id FROM batches WHERE job_id = ? AND state != 'requeued'", job_id)
    return {r[0] for r in rows}


def _item_counts(home: Path, job_id: str) -> dict[str, int]:
    return dict(_query(home, "SELECT state, COUNT(*) FROM items WHERE job_id = ? GROUP BY state", job_id))


def _retry_faults(faults: Callable[..., None]) -> None:
    # Seeded draws per custom id (which holds the attempt): some items fail every attempt and die,
    # some with a different code each time; a few fail permanently.
    # Rates high enough that, whatever the random job id, each outcome occurs (chance of not: < 1e-5).
    faults(item_errors={"rate_limit": 0.3, "server_error": 0.3, "invalid_request": 0.15})


# ---- 1. events reach a webhook and a command -----------------------------------------------------


def test_every_event_reaches_the_webhook_and_the_command(
    llmbulk: Callable[..., Outcome], home: Path, receiver: Receiver
) -> None:
    sink = home.parent / "events.jsonl"
    result = _run(llmbulk, "--max-items-per-batch", "20", "--webhook", receiver.url, "--on-event", _sink_command(sink))
    assert result.exit_code == 0, result.stderr
    job_id = result.json()["job_id"]
    posted = receiver.events()
    names = [e["event"] for e in posted]
    assert names[0] == "job.submitted" and names[-1] == "job.done", names
    assert {e["job_id"] for e in posted} == {job_id}

    batch_ids = _batch_ids(home, job_id)
    assert len(batch_ids) == 3
    created = [e["batch_id"] for e in posted if e["event"] == "batch.created"]
    assert sorted(created) == sorted(batch_ids)
    ended = [e["batch_id"] for e in posted if e["event"] == "batch.ended"]
    assert sorted(ended) == sorted(batch_ids)
    collected = [e["batch_id"] for e in posted if e["event"] == "batch.collected"]
    assert sorted(collected) == sorted(batch_ids)
    for batch_id in batch_ids:  # each batch: created, then ended, then collected
        order = [e["event"] for e in posted if e.get("batch_id") == batch_id]
        assert order == ["batch.created", "batch.ended", "batch.collected"], order
    assert posted[-1]["counts"] == {"succeeded": 50}

    # The command heard exactly the same events, byte for byte the same JSON.
    assert _sink_events(sink) == posted
    # And the hooks heard every event of the job log except the log-only records.
    log = [r for r in _log(home, job_id) if r["event"] not in ("job.started", "progress")]
    assert log == posted
    assert receiver.hits == len(posted)  # no duplicate POSTs (retries only on failure)


# ---- 2. --notify-on ------------------------------------------------------------------------------


def test_notify_on_done_sends_only_the_job_done_event(
    llmbulk: Callable[..., Outcome], home: Path, receiver: Receiver
) -> None:
    sink = home.parent / "events.jsonl"
    result = _run(
        llmbulk, "--max-items-per-batch", "20", "--notify-on", "done", "--webhook", receiver.url,
        "--on-event", _sink_command(sink),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    job_id = result.json()["job_id"]
    for events in (receiver.events(), _sink_events(sink)):
        assert [e["event"] for e in events] == ["job.done"]
        assert events[0]["job_id"] == job_id and events[0]["counts"] == {"succeeded": 50}
    # The log still gets everything.
    assert [r["event"] for r in _log(home, job_id)].count("batch.created") == 3


def test_notify_on_groups_select_exactly_their_events(
    llmbulk: Callable[..., Outcome], home: Path, faults: Callable[..., None], receiver: Receiver
) -> None:
    """`batch` is every batch event; `done` is only job.done: a job ending with failures goes to `failed`."""
    # A requeue (429 on create) is a batch event too.
    create = {"method": "POST", "path_regex": r"/openai/v1/batches$", "status": 429, "times": 1, "retry_after_ms": 10}
    faults(http_faults=[create])
    result = _run(llmbulk, "--notify-on", "batch", "--webhook", receiver.url, out="first.csv")
    assert result.exit_code == 0, result.stderr
    log = [r["event"] for r in _log(home, result.json()["job_id"])]
    names = [e["event"] for e in receiver.events()]
    assert names == [n for n in log if n.startswith("batch.")]
    assert names == ["batch.requeued", "batch.created", "batch.ended", "batch.collected"], names

    faults(item_errors={"invalid_request": 0.2})
    receiver.bodies.clear()
    # --fresh: the first run's answers would otherwise answer every row without sending.
    result = _run(
        llmbulk, "--max-items-per-batch", "20", "--notify-on", "done,batch", "--webhook", receiver.url, "--fresh"
    )
    assert result.exit_code == 4, result.stderr
    names = [e["event"] for e in receiver.events()]
    assert "job.done_with_failures" not in names and "job.done" not in names
    assert names.count("batch.created") == 3 and names.count("batch.collected") == 3
    assert set(names) == {"batch.created", "batch.ended", "batch.collected"}, names

    receiver.bodies.clear()
    result = _run(llmbulk, "--notify-on", "failed", "--webhook", receiver.url, "--fresh", out="second.csv")
    assert result.exit_code == 4, result.stderr
    assert [e["event"] for e in receiver.events()] == ["job.done_with_failures"]


def test_notify_on_rejects_an_unknown_group(llmbulk: Callable[..., Outcome], home: Path) -> None:
    result = _run(llmbulk, "--notify-on", "finished")
    assert result.exit_code == 2
    assert "--notify-on 'finished'" in result.stderr
    assert not (home / "jobs").exists() or not list((home / "jobs").iterdir())  # nothing submitted


# ---- 3. a failing receiver is logged, never fatal ------------------------------------------------


def test_webhook_answering_500_is_logged_and_the_run_finishes(
    llmbulk: Callable[..., Outcome], home: Path, broken_receiver: Receiver
) -> None:
    sink = home.parent / "events.jsonl"
    result = _run(
        llmbulk, "--max-items-per-batch", "20", "--webhook", broken_receiver.url, "--on-event", _sink_command(sink)
    )
    assert result.exit_code == 0, result.stderr
    job_id = result.json()["job_id"]
    assert result.json()["counts"] == {"succeeded": 50}
    log = _log(home, job_id)
    failures = [r for r in log if r["event"] == "delivery.failed"]
    # Three tries for the first event, then the receiver is skipped, except for the job's end.
    assert broken_receiver.hits == 6
    assert len(failures) == 2, failures
    for failure in failures:
        assert broken_receiver.url in failure["error"] and "HTTP Error 500" in failure["error"]
        assert failure["job_id"] == job_id
    names = [r["event"] for r in log]
    assert names.index(failures[0]["event"]) == names.index("job.submitted") + 1  # right after the first event
    assert names[-2:] == ["job.done", "delivery.failed"]
    # The command hook kept working, and the run still ended normally.
    heard = [e["event"] for e in _sink_events(sink)]
    assert heard == [n for n in names if n not in ("job.started", "progress", "delivery.failed")]
    assert heard[-1] == "job.done"


def test_a_receiver_down_for_a_moment_still_hears_how_the_job_ended(
    llmbulk: Callable[..., Outcome], home: Path, receiver: Receiver
) -> None:
    receiver.fail_first = 3  # every try of the first event
    result = _run(llmbulk, "--max-items-per-batch", "20", "--webhook", receiver.url)
    assert result.exit_code == 0, result.stderr
    job_id = result.json()["job_id"]
    assert [e["event"] for e in receiver.events()] == ["job.done"]
    assert receiver.events()[0]["job_id"] == job_id and receiver.events()[0]["counts"] == {"succeeded": 50}
    assert receiver.hits == 4
    assert [r["event"] for r in _log(home, job_id)].count("delivery.failed") == 1


# ---- 3b. credentials in hook targets: delivered as auth, never logged ---------------------------------

HOOK_PASSWORD, HOOK_TOKEN, COMMAND_TOKEN = "pw-LLMBULKSECRET-1", "tok-LLMBULKSECRET-2", "cmd-LLMBULKSECRET-3"


def _with_credentials(url: str, password: str = "p%40ss-" + HOOK_PASSWORD) -> str:
    """The receiver's URL with a user and password (percent-encoded `@`) and a secret query token."""
    scheme, rest = url.split("://", 1)
    return f"{scheme}://hook%20user:{password}@{rest}?token={HOOK_TOKEN}&team=ops"


def _nothing_leaked(home: Path, *outputs: str) -> None:
    for text in outputs:
        assert "LLMBULKSECRET" not in text, text
    for path in home.rglob("*"):
        if path.is_file() and "emulator" not in path.parts:
            assert b"LLMBULKSECRET" not in path.read_bytes(), f"a credential leaked into {path}"


def test_a_webhook_with_userinfo_delivers_with_basic_auth(
    llmbulk: Callable[..., Outcome], home: Path, receiver: Receiver
) -> None:
    import base64

    result = _run(llmbulk, "--max-items-per-batch", "20", "--webhook", _with_credentials(receiver.url))
    assert result.exit_code == 0, result.stderr
    job_id = result.json()["job_id"]
    names = [e["event"] for e in receiver.events()]
    assert names[0] == "job.submitted" and names[-1] == "job.done" and len(names) == receiver.hits
    expected = "Basic " + base64.b64encode(f"hook user:p@ss-{HOOK_PASSWORD}".encode()).decode()
    assert receiver.authorizations == [expected] * receiver.hits
    assert set(receiver.paths) == {f"/hook?token={HOOK_TOKEN}&team=ops"}  # the query is the receiver's own
    assert "delivery.failed" not in [r["event"] for r in _log(home, job_id)]
    _nothing_leaked(home, result.stdout, result.stderr)


def test_failed_deliveries_are_logged_with_credentials_redacted(
    llmbulk: Callable[..., Outcome], home: Path, broken_receiver: Receiver
) -> None:
    command = f"{shlex.quote(sys.executable)} -c 'import sys; sys.exit(3)' --token {COMMAND_TOKEN}"
    result = _run(
        llmbulk, "--max-items-per-batch", "20", "--webhook", _with_credentials(broken_receiver.url),
        "--on-event", command,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    failures = [r["error"] for r in _log(home, result.json()["job_id"]) if r["event"] == "delivery.failed"]
    webhook = [f for f in failures if "webhook" in f]
    commands = [f for f in failures if "command" in f]
    assert len(webhook) == 2 and len(commands) == 2, failures
    shown_url = broken_receiver.url.replace("://", "://***@") + "?token=***&team=ops"
    assert all(shown_url in f and "HTTP Error 500" in f for f in webhook), webhook
    assert all("--token ***" in f and "exit code 3" in f for f in commands), commands
    _nothing_leaked(home, result.stdout, result.stderr)


def test_a_redirecting_webhook_is_not_followed(
    llmbulk: Callable[..., Outcome], home: Path, receiver: Receiver, broken_receiver: Receiver
) -> None:
    """A redirect would carry the event and the Authorization header to another address."""
    broken_receiver.redirect_to = receiver.url
    result = _run(llmbulk, "--max-items-per-batch", "20", "--webhook", _with_credentials(broken_receiver.url))
    assert result.exit_code == 0, result.stderr
    assert receiver.hits == 0 and broken_receiver.hits == 6  # three tries for the first event, three at the end
    failures = [r["error"] for r in _log(home, result.json()["job_id"]) if r["event"] == "delivery.failed"]
    assert len(failures) == 2 and all("HTTP Error 302" in f for f in failures), failures
    _nothing_leaked(home, result.stdout, result.stderr)


# ---- 4. --timeout: still running, resumable ------------------------------------------------------


def test_run_timeout_leaves_the_job_running_then_status_and_cancel(
    llmbulk: Callable[..., Outcome], home: Path, monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    monkeypatch.setenv("LLMBULK_EMULATOR_SECONDS", "30")
    started = time.monotonic()
    result = _run(llmbulk, "--max-items-per-batch", "20", "--timeout", "1.5", "--webhook", receiver.url)
    elapsed = time.monotonic() - started
    assert result.exit_code == 3, result.stderr
    assert result.json()["timed_out"] is True and result.json()["finished"] is False
    assert elapsed < 10
    job_id = result.json()["job_id"]
    names = [e["event"] for e in receiver.events()]
    assert names[-1] == "job.timeout" and not set(names) & set(END_EVENTS)
    timeout_event = receiver.events()[-1]
    assert 0 < timeout_event["seconds"] <= elapsed
    assert sum(timeout_event["counts"].values()) == 50

    status = llmbulk("status", job_id, "--json")
    assert status.exit_code == 3, status.stderr
    batches = status.json()["batches"]
    assert {b["provider_batch_id"] for b in batches} == _batch_ids(home, job_id)
    assert len(batches) == 3 and all(b["state"] in ("validating", "running") for b in batches), batches
    human = llmbulk("status", job_id)
    assert human.exit_code == 3
    for batch in batches:
        assert batch["provider_batch_id"] in human.stdout

    cancelled = llmbulk("cancel", job_id, "--json")
    assert cancelled.exit_code == 0, cancelled.stderr
    assert cancelled.json()["state"] == "cancelled"
    states = {r[0] for r in _query(home, "SELECT state FROM batches WHERE job_id = ?", job_id)}
    assert states <= {"cancelling", "cancelled"}, states
    assert _query(home, "SELECT state FROM jobs WHERE id = ?", job_id) == [("cancelled",)]
    assert "job.cancelled" in [r["event"] for r in _log(home, job_id)]


# ---- 5. stats ------------------------------------------------------------------------------------


def _expected_stats(home: Path, job_ids: list[str]) -> dict[str, Any]:
    marks = ",".join("?" * len(job_ids))

    def select(sql: str) -> list[tuple[Any, ...]]:  # `IN (?)` stands for the selected jobs
        return _query(home, sql.replace("(?)", f"({marks})"), *job_ids)

    outcomes = select(
        "SELECT outcome, COALESCE(error_code, ''), COUNT(*) FROM attempts WHERE job_id IN (?)"
        " AND reused_from IS NULL GROUP BY 1, 2"
    )
    attempts = sum(n for _, _, n in outcomes)
    ended = select("SELECT ended_at - created_at FROM batches WHERE job_id IN (?) AND ended_at IS NOT NULL")
    latencies = sorted(r[0] for r in ended)
    start, end = select("SELECT MIN(created_at), MAX(ended_at) FROM batches WHERE job_id IN (?)")[0]
    succeeded = sum(n for o, _, n in outcomes if o == "succeeded")
    states: dict[str, int] = {}
    for job_id in job_ids:
        for state, n in _item_counts(home, job_id).items():
            states[state] = states.get(state, 0) + n
    spend = 0.0
    for job_id in job_ids:
        provider, model = _query(home, "SELECT provider, model FROM jobs WHERE id = ?", job_id)[0]
        rates = costs.rates(provider, model)
        assert rates is not None
        tin, tout, tcached = _query(
            home, "SELECT COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0),"
            " COALESCE(SUM(cached_tokens), 0) FROM attempts WHERE job_id = ? AND reused_from IS NULL", job_id,
        )[0]  # fmt: skip
        spend += (tin - tcached) * rates.input + tcached * rates.cached_input + tout * rates.output
    return {
        "attempts": attempts,
        "failures": sorted((o, c, n) for o, c, n in outcomes if o != "succeeded"),
        "failure_rate": (attempts - succeeded) / attempts,
        "retries": select("SELECT COUNT(*) FROM attempts WHERE job_id IN (?) AND attempt > 1 AND reused_from IS NULL")[
            0
        ][0],
        "latencies": latencies,
        "items_per_hour": succeeded / ((end - start) / 3600) if end > start else None,
        "states": states,
        "usd": spend,
    }


def _check_stats(payload: dict[str, Any], expected: dict[str, Any]) -> None:
    assert payload["attempts"] == expected["attempts"]
    failures = sorted((f["outcome"], f["code"], f["count"]) for f in payload["failures_by_code"])
    assert failures == expected["failures"]
    assert payload["failure_rate"] == pytest.approx(expected["failure_rate"])
    assert payload["retries"] == expected["retries"]
    assert payload["batches_ended"] == len(expected["latencies"])
    lat = payload["batch_latency_seconds"]
    assert lat["min"] == pytest.approx(expected["latencies"][0])
    assert lat["max"] == pytest.approx(expected["latencies"][-1])
    assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["max"]
    assert payload["items_per_hour"] == pytest.approx(expected["items_per_hour"])
    assert payload["items_by_state"] == expected["states"]
    assert payload["actual_usd"] == pytest.approx(expected["usd"])


def test_stats_for_one_job_and_across_jobs_match_the_database(
    llmbulk: Callable[..., Outcome], home: Path, faults: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMBULK_EMULATOR_SECONDS", "1")  # batches that take time: latency, throughput
    _retry_faults(faults)
    first = _run(llmbulk, "--max-items-per-batch", "20", "--max-attempts", "2")
    assert first.exit_code == 4, first.stderr  # dead and permanently failed items
    job_a = first.json()["job_id"]
    counts = _item_counts(home, job_a)
    assert counts.get("dead", 0) > 0 and counts.get("failed_permanent", 0) > 0 and counts.get("succeeded", 0) > 0

    one = llmbulk("stats", job_a, "--json")
    assert one.exit_code == 0, one.stderr
    expected = _expected_stats(home, [job_a])
    assert expected["retries"] > 0 and expected["latencies"][-1] > 0 and expected["items_per_hour"]
    # OpenAI's codes: "rate_limit_exceeded" for a rate limit, "500" (code null), "400" for an invalid request.
    assert {(o, c) for o, c, _ in expected["failures"]} == {
        ("failed_retryable", "rate_limit_exceeded"), ("failed_retryable", "500"), ("failed_permanent", "400"),
    }  # fmt: skip
    assert one.json()["jobs"] == [job_a]
    _check_stats(one.json(), expected)

    human = llmbulk("stats", job_a)
    assert human.exit_code == 0, human.stderr
    assert f"{len(expected['latencies'])} batches: min {expected['latencies'][0]:.1f}s" in human.stdout
    assert f"failure rate {expected['failure_rate']:.1%}" in human.stdout
    assert f"retries {expected['retries']:,}" in human.stdout
    assert f"attempts: {expected['attempts']:,}" in human.stdout
    assert f"dead {counts['dead']:,}" in human.stdout
    assert f"throughput: {expected['items_per_hour']:,.0f} items/hour" in human.stdout
    for _, code, n in expected["failures"]:
        assert any(code in line and line.rstrip().endswith(f"{n:,}") for line in human.stdout.splitlines()), code
    assert f"cost so far: {costs.usd(expected['usd'])}" in human.stdout

    faults()  # a second, clean job
    second = _run(llmbulk, out="second.csv")
    assert second.exit_code == 0, second.stderr
    job_b = second.json()["job_id"]
    both = llmbulk("stats", "--json")
    assert both.exit_code == 0, both.stderr
    assert sorted(both.json()["jobs"]) == sorted([job_a, job_b])
    _check_stats(both.json(), _expected_stats(home, [job_a, job_b]))
    assert both.json()["items_by_state"]["succeeded"] == counts["succeeded"] + 50


# ---- 6. the dead-letter export -------------------------------------------------------------------


def test_items_dead_export_has_exactly_the_dead_items_with_their_last_error(
    llmbulk: Callable[..., Outcome], home: Path, faults: Callable[..., None]
) -> None:
    _retry_faults(faults)
    result = _run(llmbulk, "--max-items-per-batch", "20", "--max-attempts", "3")
    assert result.exit_code == 4, result.stderr
    job_id = result.json()["job_id"]
    expected = _query(
        home,
        "SELECT i.key, i.row_index, i.state, i.attempts, a.error_type, a.error_code, a.error_message FROM items i"
        " JOIN attempts a ON a.job_id = i.job_id AND a.row_index = i.row_index AND a.attempt = i.attempts"
        " WHERE i.job_id = ? AND i.state = 'dead' ORDER BY i.row_index",
        job_id,
    )
    assert len(expected) >= 2
    assert {r[3] for r in expected} == {3}
    # The last error is not always the first one: the export must pick the last attempt's.
    first_codes = dict(_query(
        home, "SELECT row_index, error_code FROM attempts WHERE job_id = ? AND attempt = 1", job_id
    ))  # fmt: skip
    assert any(first_codes[r[1]] != r[5] for r in expected), "fault plan gave no dead item whose error changed"

    exported = llmbulk("items", job_id, "--state", "dead", "--out", "dead.csv")
    assert exported.exit_code == 0, exported.stderr
    assert f"wrote {len(expected):,} item(s)" in exported.stderr
    with open(home.parent / "dead.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == [
            "key", "row_index", "state", "attempts", "error_type", "error_code", "error_message",
        ]  # fmt: skip
        rows = [tuple(r.values()) for r in reader]
    assert rows == [tuple("" if v is None else str(v) for v in r) for r in expected]
    keys = {r[0] for r in rows}
    assert keys.isdisjoint(
        k for (k,) in _query(home, "SELECT key FROM items WHERE job_id = ? AND state != 'dead'", job_id)
    )

    listed = llmbulk("items", job_id, "--state", "dead", "--json")
    assert listed.exit_code == 0, listed.stderr
    assert [(r["key"], r["error_code"], r["error_message"]) for r in listed.json()] == [
        (r[0], r[5], r[6]) for r in expected
    ]


# ---- 7. cost -------------------------------------------------------------------------------------


def test_cost_shows_estimate_actual_and_saving_from_the_attempts(
    llmbulk: Callable[..., Outcome], home: Path, faults: Callable[..., None]
) -> None:
    faults(item_errors={"server_error": 0.2})  # retried attempts are billed too
    result = _run(llmbulk, "--max-items-per-batch", "20", "--max-attempts", "10")  # all succeed (p > 0.9999)
    assert result.exit_code == 0, result.stderr
    job_id = result.json()["job_id"]
    tin, tout, tcached, n = _query(
        home,
        "SELECT SUM(input_tokens), SUM(output_tokens), COALESCE(SUM(cached_tokens), 0), COUNT(*) FROM attempts"
        " WHERE job_id = ?",
        job_id,
    )[0]
    assert n > 50 and tin > 0 and tout > 0
    batch, sync = costs.rates("openai", MODEL, True), costs.rates("openai", MODEL, False)
    assert batch is not None and sync is not None and batch.input < sync.input
    actual = (tin - tcached) * batch.input + tcached * batch.cached_input + tout * batch.output
    sync_usd = (tin - tcached) * sync.input + tcached * sync.cached_input + tout * sync.output

    report = llmbulk("cost", job_id, "--json")
    assert report.exit_code == 0, report.stderr
    data = report.json()
    assert data["job_id"] == job_id
    assert data["tokens"]["input_tokens"] == tin and data["tokens"]["output_tokens"] == tout
    assert data["actual_usd"] == pytest.approx(actual, rel=1e-9)
    assert data["sync_usd"] == pytest.approx(sync_usd, rel=1e-9)
    assert data["saving_usd"] == pytest.approx(sync_usd - actual, rel=1e-9) and data["saving_usd"] > 0
    (estimate_json,) = _query(home, "SELECT estimate_json FROM jobs WHERE id = ?", job_id)[0]
    stored = json.loads(estimate_json)
    est = data["estimate"]
    assert est == {**stored, "saving_usd": pytest.approx(stored["sync_likely_usd"] - stored["batch_likely_usd"])}
    assert 0 < est["batch_likely_usd"] <= est["batch_upper_usd"] and est["saving_usd"] > 0

    human = llmbulk("cost", job_id)
    assert human.exit_code == 0, human.stderr
    assert "estimate (likely)" in human.stdout and "actual so far" in human.stdout
    assert costs.usd(actual) in human.stdout and costs.usd(sync_usd) in human.stdout
    assert f"saving against synchronous calls: {costs.usd(sync_usd - actual)}" in human.stdout
    assert f"{tin:,} ({tcached:,} cached)" in human.stdout


# ---- 8. the job log ------------------------------------------------------------------------------


def test_job_log_starts_with_parameters_and_ends_with_counts_seconds_and_usage(
    llmbulk: Callable[..., Outcome], home: Path, faults: Callable[..., None]
) -> None:
    faults(item_errors={"invalid_request": 0.25})  # some item fails permanently (chance of none: < 1e-6)
    started = time.monotonic()
    result = _run(llmbulk, "--max-items-per-batch", "20", "--max-attempts", "4")
    elapsed = time.monotonic() - started
    assert result.exit_code == 4, result.stderr
    job_id = result.json()["job_id"]
    log = _log(home, job_id)
    assert {r["job_id"] for r in log} == {job_id}
    assert [r["ts"] for r in log] == sorted(r["ts"] for r in log)

    head = log[0]
    assert head["event"] == "job.started"
    assert head["provider"] == "openai" and head["model"] == MODEL and head["emulated"] is True
    assert head["input"] == str(QUICKSTART) and head["max_attempts"] == 4
    assert head["max_items_per_batch"] == 20 and head["spec"]["prompt"] == PROMPT

    end = log[-1]
    assert end["event"] == "job.done_with_failures"
    assert end["counts"] == _item_counts(home, job_id)
    assert end["counts"].get("failed_permanent", 0) > 0
    assert 0 < end["seconds"] <= elapsed
    tin, tout, n = _query(
        home, "SELECT SUM(input_tokens), SUM(output_tokens), COUNT(*) FROM attempts WHERE job_id = ?", job_id
    )[0]
    assert end["usage"] == {"input_tokens": tin, "output_tokens": tout, "attempts": n}
    assert end["output"] == "out.csv"
    # Each transition is in between: three batches created, ended and collected.
    names = [r["event"] for r in log]
    for name in ("batch.created", "batch.ended", "batch.collected"):
        assert names.count(name) == 3, names
    assert [n for n in names if n in END_EVENTS] == ["job.done_with_failures"]


def test_job_end_record_holds_the_cost_in_dollars(llmbulk: Callable[..., Outcome], home: Path) -> None:
    result = _run(llmbulk)
    assert result.exit_code == 0, result.stderr
    job_id = result.json()["job_id"]
    end = _log(home, job_id)[-1]
    assert end["event"] == "job.done"
    reported = llmbulk("cost", job_id, "--json").json()
    assert end["cost_usd"] == pytest.approx(reported["actual_usd"]) and end["cost_usd"] > 0


def test_a_quota_requeue_is_not_announced_as_a_failure(
    llmbulk: Callable[..., Outcome], home: Path, faults: Callable[..., None], receiver: Receiver
) -> None:
    faults(token_limit_batches=[1])  # the shard goes back in the queue: its items are not failures
    result = _run(llmbulk, "--notify-on", "failed", "--webhook", receiver.url)
    assert result.exit_code == 0, result.stderr
    assert [b["state"] for b in result.json()["batches"]] == ["requeued", "ended"]
    assert [e["event"] for e in receiver.events()] == []


def test_a_failing_collect_is_logged_with_its_stack_trace(
    llmbulk: Callable[..., Outcome], home: Path, tmp_path: Path
) -> None:
    changed = tmp_path / "reviews.csv"
    changed.write_bytes(QUICKSTART.read_bytes())
    submitted = llmbulk("submit", str(changed), "-p", "openai", "-m", MODEL, "--prompt", PROMPT, "--id-column",
                        "review_id", "--emulate", "--json")  # fmt: skip
    assert submitted.exit_code == 0, submitted.stderr
    job_id = submitted.json()["job_id"]
    with open(changed, "a") as fh:
        fh.write("r999,an extra row,5\n")
    failed = llmbulk("collect", job_id, "--out", "out.csv")
    assert failed.exit_code == 1 and "changed since job" in failed.stderr and "Traceback" not in failed.stderr
    error = _log(home, job_id)[-1]
    assert error["event"] == "job.error" and "changed since job" in error["error"]
    assert "Traceback (most recent call last)" in error["traceback"] and "merge.py" in error["traceback"]
