"""The scenario harness: real `llmbulk` processes on one shared state database, against one emulator.

A `Scenario` starts and signals `python -m llmbulk …` processes (SIGSTOP/SIGCONT, SIGINT, SIGTERM,
SIGKILL) and keeps a `Tally` of what it did. `check_ledger` then audits what the provider saw,
across every job: from the emulator's audit log and its stored batches (the custom ids each batch
was sent), from every state database, and from the job logs and output tables:

- every batch the provider created is recorded by exactly one shard of exactly one job, and was
  sent exactly that shard's requests (ownership proven by custom id, not by size or time);
- no request was sent in two batches that both ran: a duplicate must have been cancelled, recorded
  as `cancelled` with error_code `duplicate`, and logged as `batch.duplicate_cancelled`;
- no input file was deleted while a created batch could still read it (collect deletes it once used);
- every input row is in its job's output exactly once, in order, in a terminal state;
- a row repeating an earlier row's request (inputs repeat every fifth row) is never sent.

`python tests/scenarios.py REPORT.jsonl` sums the tallies that tests append to the file named by
LLMBULK_SCENARIO_REPORT, per scenario kind, provider and backend.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from llmbulk.emulator import EmulatorConfig, EmulatorServer, FaultPlan

PROVIDERS = ("openai", "anthropic", "gemini")
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"}
OTHER_MODELS = {"openai": "gpt-4.1-mini", "anthropic": "claude-sonnet-4-5", "gemini": "gemini-2.5-pro"}
TERMINAL_ITEM_STATES = ("succeeded", "failed_permanent", "dead")
PROVIDER_KEY_VARS = ("OPENAI_", "ANTHROPIC_", "GOOGLE_", "GEMINI_", "LLMBULK_")
FAKE_KEY = "scenario-test-key"
REPORT_VAR = "LLMBULK_SCENARIO_REPORT"
LLMBULK_SOURCE = Path(__file__).resolve().parent.parent / "llmbulk"


def point_is_wired(name: str) -> bool:
    """Whether llmbulk's code calls `crashpoint(name)` anywhere (a pause there can happen at all)."""
    needle = f'crashpoint("{name}")'
    return any(needle in path.read_text() for path in LLMBULK_SOURCE.rglob("*.py"))


@contextlib.contextmanager
def emulator(
    state_dir: Path, running_seconds: float = 0.6, faults: FaultPlan | None = None
) -> Iterator[EmulatorServer]:
    """One emulator for the whole scenario, its clock fast (batches end in about a second)."""
    config = EmulatorConfig(validating_seconds=0.05, running_seconds=running_seconds, finalizing_seconds=0.05,
                            cancel_seconds=0.1, jitter=0.5, faults=faults or FaultPlan())  # fmt: skip
    with EmulatorServer(state_dir, config) as server:
        yield server


@dataclass
class Tally:
    """What one scenario did, for the closing report."""

    kind: str
    provider: str
    backend: str
    case: str = ""
    runs: int = 0
    pauses: int = 0
    signals: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    duplicates: int = 0
    lost: int = 0
    violations: int = 0
    passed: bool = False

    def record(self) -> None:
        line = {**asdict(self), "signals": dict(self.signals)}
        print(f"SCENARIO {json.dumps(line, sort_keys=True)}")
        path = os.environ.get(REPORT_VAR)
        if path:
            with open(path, "a") as fh:
                fh.write(json.dumps(line) + "\n")


@dataclass
class Done:
    """A finished llmbulk process."""

    args: list[str]
    code: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"`llmbulk {' '.join(self.args)}` exit {self.code}: {self.stderr.strip()[-1500:]}"

    def last_line(self) -> str:
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else ""


class Proc:
    """A running llmbulk process; its output goes to files so a stopped process blocks no pipe."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, logs: Path) -> None:
        self.args = args
        self.out_path, self.err_path = logs.with_suffix(".out"), logs.with_suffix(".err")
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "llmbulk", *args], cwd=cwd, env=env, stdout=out, stderr=err
            )
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def stopped(self) -> bool:
        """Whether the process is stopped (SIGSTOP), from /proc."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return False
        return stat.rpartition(")")[2].split()[0] in ("T", "t")

    def wait_stopped(self, timeout: float) -> bool:
        """Wait until the process stops itself; False if it ended or the time ran out first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stopped():
                return True
            if not self.running():
                return False
            time.sleep(0.02)
        return False

    def send(self, sig: signal.Signals) -> bool:
        """Deliver a signal if the process is still there."""
        if not self.running():
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)
            return True
        return False

    def wait(self, timeout: float = 120) -> Done:
        try:
            code = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise AssertionError(f"`llmbulk {' '.join(self.args)}` still running after {timeout}s") from None
        return Done(
            self.args, code, self.out_path.read_text(errors="replace"), self.err_path.read_text(errors="replace")
        )


@dataclass
class Store:
    """One state database and the home its processes use (job logs, shard files)."""

    db_url: str
    home: Path


class Scenario:
    """llmbulk processes sharing one state database and one emulator."""

    def __init__(self, tmp: Path, server: EmulatorServer, db_url: str, tally: Tally) -> None:
        self.tmp, self.server, self.tally = tmp, server, tally
        self.store = Store(db_url, tmp / "state")
        self.logs = tmp / "logs"
        self.logs.mkdir(exist_ok=True)
        self._count = 0
        self._procs: list[Proc] = []
        self._engine: Any = None
        self.audited = False
        self.base_env: dict[str, str] = {}

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(PROVIDER_KEY_VARS)}
        env.update(
            LLMBULK_HOME=str(self.store.home),
            LLMBULK_DB=self.store.db_url,
            OPENAI_API_KEY=FAKE_KEY,
            OPENAI_BASE_URL=self.server.openai_base_url,
            ANTHROPIC_API_KEY=FAKE_KEY,
            ANTHROPIC_BASE_URL=self.server.anthropic_base_url,
            GOOGLE_API_KEY=FAKE_KEY,
            GOOGLE_GEMINI_BASE_URL=self.server.gemini_base_url,
            LLMBULK_POLL_INITIAL="0.05",
            LLMBULK_POLL_MAX="0.25",
            LLMBULK_HTTP_TIMEOUT="10",
            COLUMNS="250",
        )
        env.update(self.base_env)
        env.update(extra)
        return env

    def write_input(self, name: str = "in.csv", rows: int = 30, prefix: str = "r", repeat_every: int = 5) -> Path:
        """An input whose every `repeat_every`-th row repeats the row before it (the same request:
        sent once, answered to both), so every scenario runs with repeated rows folded."""
        path = self.tmp / name
        with open(path, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["id", "text"])
            for i in range(rows):
                same = i - 1 if repeat_every and i % repeat_every == repeat_every - 1 else i
                writer.writerow([f"{prefix}{i}", f"review {prefix} number {same}"])
        return path

    def job_line(self, verb: str, input_path: Path, provider: str, model: str | None = None, *extra: str) -> list[str]:
        """`submit INPUT …` or `run INPUT …` with the options that define the job (six rows a shard)."""
        return [verb, str(input_path), "-p", provider, "-m", model or MODELS[provider], "--prompt",
                "Label: {{ text }}", "--id-column", "id", "--max-items-per-batch", "6", "--max-attempts", "4",
                *extra]  # fmt: skip

    def run_line(
        self, input_path: Path, provider: str, model: str | None = None, out: str = "out.csv", *extra: str
    ) -> list[str]:
        """`run INPUT … --out OUT`: the command line a user would type, and retype after an interruption."""
        return self.job_line("run", input_path, provider, model, "--out", out, *extra)

    def start(self, *args: str, env: dict[str, str] | None = None) -> Proc:
        self._count += 1
        self.tally.runs += 1
        name = f"{self._count:03d}-{args[0] if args else 'none'}"
        proc = Proc(list(args), self.env(**(env or {})), self.tmp, self.logs / name)
        self._procs.append(proc)
        return proc

    def llmbulk(self, *args: str, timeout: float = 120, env: dict[str, str] | None = None) -> Done:
        return self.start(*args, env=env).wait(timeout)

    def finish(self, *args: str, tries: int = 8, env: dict[str, str] | None = None) -> Done:
        """Rerun one command line until it exits 0 (each try must at least not crash)."""
        done = None
        for _ in range(tries):
            done = self.llmbulk(*args, env=env)
            assert "Traceback" not in done.stderr, str(done)
            if done.code == 0:
                return done
        raise AssertionError(f"never finished: {done}")

    def cli_jobs(self, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """`llmbulk jobs --json`, as a user would list them."""
        done = self.llmbulk("jobs", "--json", env=env)
        assert done.code == 0, str(done)
        return json.loads(done.stdout) if done.stdout.strip() else []

    def db(self) -> Any:
        """The scenario's database, one short connection per use (nothing held while llmbulk works)."""
        if self._engine is None:
            self._engine = create_engine(self.store.db_url, poolclass=NullPool)
        return self._engine

    def job_row(self, job_id: str) -> dict[str, Any]:
        with self.db().connect() as conn:
            return dict(conn.execute(text("SELECT * FROM jobs WHERE id = :j"), {"j": job_id}).mappings().one())

    def job_ids(self) -> list[str]:
        """Every job in the database, oldest first (none before the schema exists)."""
        try:
            with self.db().connect() as conn:
                return [str(r[0]) for r in conn.execute(text("SELECT id FROM jobs ORDER BY created_at"))]
        except Exception:  # no schema yet: no job
            return []

    def newest_job(self, timeout: float = 30) -> str:
        """The id of the newest job in the database, waiting for one to appear."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            jobs = self.job_ids()
            if jobs:
                return jobs[-1]
            time.sleep(0.1)
        raise AssertionError("no job appeared in the database")

    def created_batches(self) -> list[dict[str, Any]]:
        return [e for e in self.server.emulator.audit_events() if e["event"] == "batch.created"]

    def audit(self, outputs: dict[str, tuple[Path, list[str]]], stores: list[Store] | None = None) -> Ledger:
        """The ledger check over every store of the scenario; its numbers go into the tally."""
        ledger = check_ledger(self.server, stores or [self.store], outputs)
        self.audited = True
        self.tally.batches, self.tally.duplicates, self.tally.lost = ledger.batches, ledger.duplicates, ledger.lost
        self.tally.violations = len(ledger.violations)
        ledger.assert_clean()
        return ledger

    def close(self) -> None:
        """End every process this scenario started and left behind (a failed test may leave one frozen)."""
        for proc in self._procs:
            if proc.running():
                proc.send(signal.SIGKILL)
                proc.send(signal.SIGCONT)
                proc.popen.wait()
        if self._engine is not None:
            self._engine.dispose()
        if not self.audited:  # a failed scenario still reports how many batches it paid for, and twice
            with contextlib.suppress(Exception):
                ledger = check_ledger(self.server, [self.store], {})
                self.tally.batches, self.tally.duplicates = ledger.batches, ledger.duplicates

    def wait_for(self, condition: Any, timeout: float = 30, step: float = 0.05) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(step)
        return False


# ---- the ledger ----------------------------------------------------------------------------------


@dataclass
class Ledger:
    """What the audit found."""

    violations: list[str] = field(default_factory=list)
    batches: int = 0
    duplicates: int = 0
    lost: int = 0

    def fail(self, message: str) -> None:
        self.violations.append(message)

    def assert_clean(self) -> None:
        assert not self.violations, "\n".join(self.violations[:40])


def _request_ids(path: Path) -> list[str] | None:
    """The custom ids (OpenAI, Anthropic) or keys (Gemini) of a JSONL request file; None if it is gone."""
    if not path.exists():
        return None
    ids = []
    for line in path.read_bytes().splitlines():
        if line.strip():
            obj = orjson.loads(line)
            ids.append(obj.get("custom_id") or obj.get("key") or (obj.get("metadata") or {}).get("key") or "")
    return ids


def _source(record: dict[str, Any] | None) -> str | None:
    """The file an emulated batch reads its requests from (OpenAI input_file_id, Gemini/Anthropic input_file)."""
    return (record or {}).get("input_file") or (record or {}).get("input_file_id")


def _db_rows(store: Store) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]], list[dict[str, Any]]]:
    engine = create_engine(store.db_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            batches = [dict(r) for r in conn.execute(text(
                "SELECT id, job_id, shard_id, provider_batch_id, state, error_code, input_file_id FROM batches"
            )).mappings()]  # fmt: skip
            shards = {r["id"]: dict(r) for r in conn.execute(text("SELECT id, job_id, path FROM shards")).mappings()}
            items = [dict(r) for r in conn.execute(
                text("SELECT job_id, row_index, key, state, leader_row FROM items")
            ).mappings()]  # fmt: skip
    finally:
        engine.dispose()
    return batches, shards, items


def _logged_duplicates(home: Path) -> dict[str, set[str]]:
    """Per job, every string a `batch.duplicate_cancelled` record of its log carries (ids among them)."""
    found: dict[str, set[str]] = defaultdict(set)
    for log in (home / "jobs").glob("*/log.jsonl"):
        for line in log.read_bytes().splitlines():
            record = orjson.loads(line)
            if record.get("event") == "batch.duplicate_cancelled":
                found[log.parent.name].update(str(v) for v in record.values() if isinstance(v, str))
    return found


def check_ledger(server: EmulatorServer, stores: list[Store], outputs: dict[str, tuple[Path, list[str]]]) -> Ledger:
    """Audit every batch the emulator created against every store, and each job's output table."""
    ledger = Ledger()
    emu = server.emulator
    audit = emu.audit_events()
    created = {e["id"] for e in audit if e["event"] == "batch.created"}
    client_cancelled = {e["id"] for e in audit if e["event"] == "batch.cancelled"}
    deleted_files = {e["id"]: e["ts"] for e in audit if e["event"] == "file.deleted"}
    records = {b["id"]: b for p in PROVIDERS for b in emu.list_batches(p)}
    ledger.batches = len(created)

    sent: dict[str, list[str]] = {}  # provider batch -> request ids it was sent
    for batch_id in sorted(created):
        source = _source(records.get(batch_id))
        if source in deleted_files:  # deleted after use (collect), never while its batch could still read it
            phase = emu.phase(records[batch_id], now=deleted_files[source])
            if phase not in ("ended", "expired", "cancelled", "failed"):
                ledger.fail(f"input file {source} of batch {batch_id} was deleted while it was {phase}")
        path = None if source is None else emu.file_path(source)
        if path is not None and not path.exists() and source in deleted_files:
            path = emu.deleted_path(source)  # the emulator keeps a deleted file's bytes aside for this audit
        ids = _request_ids(path) if path is not None else None
        if ids is None:
            ledger.fail(f"cannot read the requests of batch {batch_id} (input {source!r} gone)")
            continue
        sent[batch_id] = ids

    rows: list[dict[str, Any]] = []
    shard_files: dict[str, Path] = {}
    items_by_job: dict[str, list[dict[str, Any]]] = defaultdict(list)
    logged: dict[str, set[str]] = defaultdict(set)
    for store in stores:
        batches, shards, items = _db_rows(store)
        rows.extend(batches)
        for shard_id, shard in shards.items():
            path = Path(shard["path"])
            shard_files[shard_id] = path if path.is_absolute() else store.home / path
        for item in items:
            items_by_job[item["job_id"]].append(item)
        for job_id, values in _logged_duplicates(store.home).items():
            logged[job_id] |= values

    by_provider_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["provider_batch_id"]:
            by_provider_id[row["provider_batch_id"]].append(row)
    for batch_id, owners in by_provider_id.items():
        if len(owners) > 1:
            ledger.fail(f"batch {batch_id} is recorded by {len(owners)} shards: {[o['shard_id'] for o in owners]}")
        if batch_id not in created:
            ledger.fail(f"batch {batch_id} is recorded by {owners[0]['shard_id']} but the provider never created it")
    reported = {_source(records.get(b)) for b in created}  # already checked above
    for row in rows:  # an open intent's upload counts too: its create may still come
        if row["state"] == "creating" and row["input_file_id"] in set(deleted_files) - reported:
            ledger.fail(f"input file {row['input_file_id']} of {row['id']} ({row['state']}) was deleted")
    for batch_id in sorted(created - set(by_provider_id)):
        ledger.fail(f"batch {batch_id} was created at the provider but no job recorded it (paid, never collected)")

    for batch_id, owners in by_provider_id.items():
        ids = sent.get(batch_id)
        if ids is None:
            continue
        for owner in owners:
            jobs_sent = {i.rsplit("-", 2)[0] for i in ids}
            if jobs_sent != {owner["job_id"]}:
                ledger.fail(f"batch {batch_id} ({sorted(jobs_sent)}'s requests) is recorded by job {owner['job_id']}")
                continue
            shard_ids = _request_ids(shard_files.get(owner["shard_id"], Path("/nonexistent")))
            if shard_ids is not None and sorted(shard_ids) != sorted(ids):
                ledger.fail(f"batch {batch_id} was sent other requests than its shard {owner['shard_id']} holds")

    followers = {
        (i["job_id"], i["row_index"]) for its in items_by_job.values() for i in its if i["leader_row"] is not None
    }
    for batch_id, ids in sent.items():
        for custom_id in ids:
            job_id, row, _attempt = custom_id.rsplit("-", 2)
            if (job_id, int(row)) in followers:
                ledger.fail(f"row {row} of job {job_id} repeats another row's request but was sent ({batch_id})")
    _check_duplicates(ledger, sent, records, emu, client_cancelled, by_provider_id, logged)
    _check_one_batch_per_shard(ledger, rows)
    for job_id, (path, keys) in outputs.items():
        _check_output(ledger, job_id, path, keys, items_by_job.get(job_id, []))
    return ledger


def _check_duplicates(
    ledger: Ledger,
    sent: dict[str, list[str]],
    records: dict[str, dict[str, Any]],
    emu: Any,
    client_cancelled: set[str],
    by_provider_id: dict[str, list[dict[str, Any]]],
    logged: dict[str, set[str]],
) -> None:
    """A request in two batches that ran was paid twice, unless every extra batch was a logged cancelled duplicate."""
    batches_of: dict[str, list[str]] = defaultdict(list)
    for batch_id, ids in sent.items():
        if records.get(batch_id) and emu.phase(records[batch_id]) == "failed":
            continue  # refused as a whole by the provider: nothing ran, nothing billed
        for custom_id in ids:
            batches_of[custom_id].append(batch_id)
    groups = {tuple(sorted(batch_ids)) for batch_ids in batches_of.values() if len(batch_ids) > 1}
    for group in sorted(groups):
        ledger.duplicates += len(group) - 1
        kept = []
        for batch_id in group:
            owners = by_provider_id.get(batch_id, [])
            job_id = owners[0]["job_id"] if owners else "?"
            marked = bool(owners) and all(o["state"] == "cancelled" and o["error_code"] == "duplicate" for o in owners)
            if batch_id in client_cancelled and marked and batch_id in logged.get(job_id, set()):
                continue
            kept.append(batch_id)
        if len(kept) > 1:
            details = {b: [(o["shard_id"], o["state"], o["error_code"]) for o in by_provider_id.get(b, [])]
                       for b in group}  # fmt: skip
            ledger.fail(
                f"the same requests were sent in {len(group)} batches and {len(kept)} were not cancelled, "
                f"recorded and logged as duplicates: {details}"
            )


def _check_one_batch_per_shard(ledger: Ledger, rows: list[dict[str, Any]]) -> None:
    ran = Counter(
        r["shard_id"] for r in rows
        if r["provider_batch_id"] and r["state"] not in ("failed", "requeued") and r["error_code"] != "duplicate"
    )  # fmt: skip
    for shard_id, n in sorted(ran.items()):
        if n > 1:
            ledger.fail(f"shard {shard_id} has {n} provider batches that were not failures or cancelled duplicates")


def _check_output(ledger: Ledger, job_id: str, path: Path, keys: list[str], items: list[dict[str, Any]]) -> None:
    """Every input row once, in order, in a terminal state; and the same in the database."""
    rows: list[dict[str, str]] = []
    if path.exists():
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    else:
        ledger.fail(f"job {job_id}: no output table at {path}")
    got = Counter(r.get("id") for r in rows)
    missing = [k for k in keys if got[k] == 0]
    twice = sorted(str(k) for k, n in got.items() if n > 1)
    unsettled = [r.get("id") for r in rows if r.get("status") not in TERMINAL_ITEM_STATES]
    open_items = [i["key"] for i in items if i["state"] not in TERMINAL_ITEM_STATES]
    ledger.lost += len(missing) + len(set(unsettled)) + len(set(open_items) - set(unsettled) - set(missing))
    if missing or twice or unsettled:
        ledger.fail(f"job {job_id}: {len(missing)} rows missing {missing[:5]}, {len(twice)} twice {twice[:5]}, "
                    f"{len(unsettled)} not settled {unsettled[:5]}")  # fmt: skip
    elif [r.get("id") for r in rows] != keys:
        ledger.fail(f"job {job_id}: output rows are not in input order")
    if open_items:
        ledger.fail(f"job {job_id}: {len(open_items)} items left open in the database: {open_items[:5]}")
    if len(items) != len(keys):
        ledger.fail(f"job {job_id}: {len(items)} items in the database for {len(keys)} input rows")


def input_keys(path: Path) -> list[str]:
    with open(path, newline="") as fh:
        return [r["id"] for r in csv.DictReader(fh)]


# ---- the closing report --------------------------------------------------------------------------


def summarize(path: Path) -> str:
    """One line per scenario kind, provider and backend from a report file."""
    totals: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        total = totals[(rec["kind"], rec["provider"], rec["backend"])]
        total.update(cases=1, failed=0 if rec["passed"] else 1, runs=rec["runs"], pauses=rec["pauses"],
                     batches=rec["batches"], duplicates=rec["duplicates"], lost=rec["lost"],
                     violations=rec.get("violations", 0))  # fmt: skip
        total.update({f"sig{k}": v for k, v in rec["signals"].items()})
    out = [f"{'kind':<10} {'provider':<10} {'backend':<11} cases failed runs pauses signals(INT/TERM/KILL) "
           "batches duplicates lost violations"]  # fmt: skip
    for (kind, provider, backend), t in sorted(totals.items()):
        signals = f"{t['sigSIGINT']}/{t['sigSIGTERM']}/{t['sigSIGKILL']}"
        head = f"{kind:<10} {provider:<10} {backend:<11} {t['cases']:>5} {t['failed']:>6} {t['runs']:>4}"
        tail = f"{t['batches']:>7} {t['duplicates']:>10} {t['lost']:>4} {t['violations']:>10}"
        out.append(f"{head} {t['pauses']:>6} {signals:>23} {tail}")
    return "\n".join(out)


if __name__ == "__main__":
    print(summarize(Path(sys.argv[1])))
