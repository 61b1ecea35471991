"""Everyday scenarios with real processes, on SQLite and PostgreSQL, against one emulator each.

1. pause: a runner frozen (SIGSTOP) at a side-effect transition for longer than its lease while a
   second runner takes the job over, then let go (SIGCONT): it stops at once (exit 6), the job ends.
2. Ctrl-C, SIGTERM and SIGKILL at random moments, then the same command line again: it continues
   the same job; an interrupt exits 130 with one line naming the job.
3. two Anthropic jobs with same-sized shards, one job's create answer lost: reconciliation proves
   ownership and never adopts the other job's batch.
4. cancel, then retry / worker / run / the same command: the job stays cancelled (exit 7) and no
   batch is created; `llmbulk resume` brings it back.
5. several jobs in a row on one database: other input, other model, a submit after a finished job,
   the same command again (reuses the done job), --new-job.

Every scenario ends with the ledger check of tests/scenarios.py over all jobs. The fast cases run
in the default suite; every transition × provider × backend and the random signals are slow.
"""

from __future__ import annotations

import contextlib
import random
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from scenarios import (
    FAKE_KEY,
    MODELS,
    OTHER_MODELS,
    Done,
    Proc,
    Scenario,
    Store,
    Tally,
    check_ledger,
    emulator,
    input_keys,
    point_is_wired,
)

from llmbulk.emulator import Emulator, EmulatorConfig, FaultPlan, HttpFault

PROVIDERS = list(MODELS)
BOTH = ["sqlite", "postgresql"]
LEASE_TTL = 2.0
INFLIGHT_WINDOW = 1.0
CANCELLED = 7
LOST_LEASE = 6
INTERRUPTED = 130
ANTHROPIC_CREATE = r"^/anthropic/v1/messages/batches$"


@contextlib.contextmanager
def scenario(
    tmp_path: Path, store_url: str, kind: str, provider: str, case: str = "", *, running: float = 0.6,
    faults: FaultPlan | None = None,
) -> Iterator[Scenario]:  # fmt: skip
    backend = "postgresql" if store_url.startswith("postgresql") else "sqlite"
    tally = Tally(kind, provider, backend, case)
    with emulator(tmp_path / "emulator", running, faults) as server:
        sc = Scenario(tmp_path, server, store_url, tally)
        try:
            yield sc
            tally.passed = True
        finally:
            sc.close()
            tally.record()


def no_traceback(done: Done) -> None:
    assert "Traceback" not in done.stderr, str(done)


# ---- 1. pause at each side-effect transition -----------------------------------------------------

# Where the first runner freezes, and at which occurrence (so some batches exist already).
# in_upload / in_create: past the lease guard, before the request leaves (a call in flight whose
# request reaches the provider late): the other runner has sent the shard by then, so the late
# create is a duplicate that must be cancelled and logged. mid_poll: between a poll's answer and
# its record (a stale state must not overwrite a newer one). mid_record is left out: it is inside
# a database transaction, and a stopped process holding SQLite's write lock (or PostgreSQL row
# locks) blocks every other process whatever the lease says.
PAUSE_POINTS = {"before_upload": 2, "in_upload": 2, "after_upload": 2, "before_create": 2, "in_create": 2,
                "after_create": 2, "mid_poll": 2, "mid_download": 1}  # fmt: skip
UPLOAD_POINTS = ("before_upload", "in_upload", "after_upload")


def pausable(provider: str, point: str) -> None:
    """Skip a point the provider never passes; xfail one llmbulk's code does not have yet."""
    if provider == "anthropic" and point in UPLOAD_POINTS:
        pytest.skip("Anthropic batches upload nothing")
    if not point_is_wired(point):
        pytest.xfail(f"llmbulk has no crashpoint({point!r}) to pause at")


def pause_case(sc: Scenario, provider: str, point: str, when: str) -> None:
    """Freeze a runner at `point`; let it go `early` (as soon as the other runner took over) or `late`."""
    sc.base_env = {"LLMBULK_LEASE_TTL": str(LEASE_TTL), "LLMBULK_INFLIGHT_WINDOW": str(INFLIGHT_WINDOW)}
    input_path = sc.write_input(rows=30)
    first = sc.start(
        *sc.run_line(input_path, provider, out="a.csv"), env={"LLMBULK_PAUSE_AT": f"{point}:{PAUSE_POINTS[point]}"}
    )
    assert first.wait_stopped(60), f"the first runner never reached {point}: {first.wait()}"
    sc.tally.pauses += 1
    frozen_at = time.monotonic()
    job = sc.newest_job()
    frozen_owner = sc.job_row(job)["lease_owner"]

    # Another job with the same shard sizes sends its batches meanwhile, on the same database.
    neighbour_input = sc.write_input("n.csv", rows=30, prefix="n")
    neighbour = sc.start(*sc.run_line(neighbour_input, provider, out="n-out.csv"))
    second = sc.start("run", job, "--out", "b.csv", "--wait-lock", "60")
    took_over = sc.wait_for(
        lambda: sc.job_row(job)["lease_owner"] not in (None, frozen_owner) or not second.running(), timeout=30
    )
    assert took_over, "the second runner never took the job over from the frozen one"
    if when == "late":  # the other runner has finished the job by then
        assert sc.wait_for(lambda: not second.running(), timeout=90), "the second runner did not finish"
    # The lease ran out while frozen: renewed every third of its TTL, it lapses at least 2/3 of a TTL
    # after the freeze (a runner frozen just before its next renewal is overtaken that early).
    assert time.monotonic() - frozen_at > LEASE_TTL * 0.6
    first.send(signal.SIGCONT)
    resumed, finished, other = first.wait(90), second.wait(90), neighbour.wait(90)
    no_traceback(resumed)
    no_traceback(finished)
    assert finished.code == 0, str(finished)
    assert other.code == 0, str(other)
    # The frozen runner lost its lease while stopped: it must stop at once, touching nothing.
    assert resumed.code == LOST_LEASE, str(resumed)
    assert f"lost the lease on job {job}" in resumed.stderr, str(resumed)

    final = sc.finish("run", job, "--out", "final.csv")
    no_traceback(final)
    jobs = [j["job_id"] for j in sc.cli_jobs()]
    assert len(jobs) == 2 and job in jobs, jobs
    neighbour_job = next(j for j in jobs if j != job)
    sc.audit({job: (sc.tmp / "final.csv", input_keys(input_path)),
              neighbour_job: (sc.tmp / "n-out.csv", input_keys(neighbour_input))})  # fmt: skip
    assert (sc.tmp / "b.csv").read_text() == (sc.tmp / "final.csv").read_text()


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("provider", "point", "when"), [("openai", "after_create", "late"), ("anthropic", "before_create", "early")]
)
def test_pause_past_the_lease_then_continue(
    provider: str, point: str, when: str, tmp_path: Path, store_url: str
) -> None:
    pausable(provider, point)
    with scenario(tmp_path, store_url, "pause", provider, f"{point}-{when}") as sc:
        pause_case(sc, provider, point, when)


@pytest.mark.slow
@pytest.mark.parametrize("store_url", BOTH, indirect=True)
@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("point", list(PAUSE_POINTS))
@pytest.mark.parametrize("when", ["early", "late"])
def test_pause_at_every_transition(when: str, point: str, provider: str, tmp_path: Path, store_url: str) -> None:
    pausable(provider, point)
    with scenario(tmp_path, store_url, "pause", provider, f"{point}-{when}") as sc:
        pause_case(sc, provider, point, when)


# ---- 2. Ctrl-C, SIGTERM, SIGKILL, then the same command line ---------------------------------------

# A run has created or found its job well within this many seconds of starting: once its job is in
# the database by then, its interrupt line must name it.
KNOWS_JOB_AFTER = 3.0


def check_interrupted(
    sc: Scenario, proc: Proc, sig: signal.Signals, delivered_after: float | None, existed: list[str]
) -> None:
    """One interrupted run: the right exit code; for SIGINT/SIGTERM one line, naming the job once known.

    `existed`: the jobs in the database when the signal was sent.
    """
    done = proc.wait(60)
    if delivered_after is None:  # it had finished before the signal came
        assert done.code == 0, str(done)
        return
    sc.tally.signals[sig.name] += 1
    if sig is signal.SIGKILL:
        assert done.code in (-signal.SIGKILL, 0), str(done)
        return
    assert done.code in (INTERRUPTED, 0), str(done)  # 0: it finished just as the signal came
    no_traceback(done)
    if done.code != INTERRUPTED:
        return
    line = done.last_line()
    assert line.startswith("error:") or "interrupt" in line.lower(), str(done)
    jobs = sc.cli_jobs()
    assert len(jobs) <= 1, jobs
    job = jobs[0]["job_id"] if jobs else None
    mentioned = job is not None and any(job in earlier for earlier in done.stderr.splitlines()[:-1])
    continuing = job in existed and delivered_after >= KNOWS_JOB_AFTER
    if mentioned or continuing:
        assert f"llmbulk run {job}" in line, f"the interrupt line does not name the job {job}: {done}"


def signal_case(sc: Scenario, provider: str, schedule: list[tuple[signal.Signals, float]]) -> None:
    input_path = sc.write_input(rows=30)
    line = sc.run_line(input_path, provider)
    for sig, delay in schedule:
        proc = sc.start(*line)
        time.sleep(delay)
        delivered = proc.send(sig)
        after = time.monotonic() - proc.started
        check_interrupted(sc, proc, sig, after if delivered else None, sc.job_ids())
    existed = sc.job_ids()
    final = sc.finish(*line)
    jobs = sc.cli_jobs()
    assert len(jobs) == 1, f"the same command line made {len(jobs)} jobs: {jobs}"
    job = jobs[0]["job_id"]
    if existed:
        said = (f"continuing job {job}", f"job {job} already finished")
        assert any(s in final.stderr for s in said), f"the rerun does not say it continues {job}: {final}"
    created = len(sc.created_batches())
    again = sc.llmbulk(*line)  # the same line once more: the done job is reused, nothing is sent
    assert again.code == 0 and f"job {job} already finished" in again.stderr, str(again)
    assert len(sc.created_batches()) == created
    assert [j["job_id"] for j in sc.cli_jobs()] == [job]
    sc.audit({job: (sc.tmp / "out.csv", input_keys(input_path))})


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_interrupts_then_the_same_command_continues_the_job(tmp_path: Path, store_url: str) -> None:
    schedule = [(signal.SIGINT, 3.0), (signal.SIGTERM, 2.5), (signal.SIGKILL, 2.0)]
    with scenario(tmp_path, store_url, "signals", "openai", "fixed", running=2.0) as sc:
        signal_case(sc, "openai", schedule)


@pytest.mark.slow
@pytest.mark.parametrize("store_url", BOTH, indirect=True)
@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("seed", range(3))
def test_random_signals_then_the_same_command(seed: int, provider: str, tmp_path: Path, store_url: str) -> None:
    rng = random.Random(f"{seed}-{provider}")
    kinds = [signal.SIGINT, signal.SIGTERM, signal.SIGKILL]
    schedule = [(rng.choice(kinds), rng.uniform(0.3, 4.5)) for _ in range(6)]
    with scenario(tmp_path, store_url, "signals", provider, f"seed{seed}", running=2.0) as sc:
        signal_case(sc, provider, schedule)


# ---- 3. Anthropic: same-sized shards in two jobs, one create answer lost ---------------------------


def lose_creates(ordinals: list[int], after: bool) -> list[HttpFault]:
    """Faults that drop exactly the Anthropic creates with these 1-based ordinals (counted over all jobs)."""
    faults = [HttpFault(method="POST", path_regex=ANTHROPIC_CREATE, action="reset", after=after, skip=o - 1 - k)
              for k, o in enumerate(sorted(ordinals))]  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:  # the emulator's own matching decides which calls fail
        probe = Emulator(Path(scratch), EmulatorConfig(faults=FaultPlan(http_faults=faults)))
        hit = [n for n in range(1, 30) if probe.http_fault("POST", "/anthropic/v1/messages/batches")]
    assert hit == sorted(ordinals), (hit, ordinals)
    return faults


LOST_CREATE_CASES = {
    # X's 2nd create is handled but its answer lost; Y (same database) then creates four batches
    # of X's shard size before X reconciles.
    "answer_lost": ([2], True, False),
    # X's 2nd create never happens: the only same-sized batches since X's intent are Y's.
    "create_lost": ([2], False, False),
    # As answer_lost, and Y's first create answer is lost too: when X reconciles, one of Y's
    # batches is recorded nowhere yet, so only its custom ids tell it is not X's.
    "both_lost": ([2, 3], True, False),
    # Y is another team's job in another database on the same account: nothing recorded helps.
    "other_database": ([2], True, True),
}


def lost_create_case(sc: Scenario, other_db: bool) -> None:
    x_input, y_input = sc.write_input("x.csv", rows=24, prefix="x"), sc.write_input("y.csv", rows=24, prefix="y")
    submitted = sc.llmbulk(*sc.job_line("submit", x_input, "anthropic"))
    no_traceback(submitted)
    x_job = sc.newest_job()
    stores = [sc.store]
    y_env: dict[str, str] = {}
    if other_db:
        other = Store(f"sqlite:///{sc.tmp / 'other.db'}", sc.tmp / "other-state")
        stores.append(other)
        y_env = {"LLMBULK_DB": other.db_url, "LLMBULK_HOME": str(other.home)}
    y_submitted = sc.llmbulk(*sc.job_line("submit", y_input, "anthropic"), env=y_env)
    no_traceback(y_submitted)
    assert sc.server.emulator.audit_events(), "nothing reached the emulator"
    x_done = sc.finish("run", x_job, "--out", "x-out.csv")
    no_traceback(x_done)
    y_job = next(j["job_id"] for j in sc.cli_jobs(env=y_env) if j["job_id"] != x_job)
    sc.finish("run", y_job, "--out", "y-out.csv", env=y_env)
    lost = [e for e in sc.server.emulator.audit_events() if e["event"] == "fault.http"]
    assert lost, "no create answer was lost: the scenario tested nothing"
    sc.audit({x_job: (sc.tmp / "x-out.csv", input_keys(x_input)), y_job: (sc.tmp / "y-out.csv", input_keys(y_input))},
             stores)  # fmt: skip


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_lost_create_answer_never_adopts_the_other_jobs_batch(tmp_path: Path, store_url: str) -> None:
    ordinals, after, other_db = LOST_CREATE_CASES["both_lost"]
    faults = FaultPlan(http_faults=lose_creates(ordinals, after))
    with scenario(tmp_path, store_url, "lostcreate", "anthropic", "both_lost", faults=faults) as sc:
        lost_create_case(sc, other_db)


@pytest.mark.slow
@pytest.mark.parametrize("store_url", BOTH, indirect=True)
@pytest.mark.parametrize("case", list(LOST_CREATE_CASES))
def test_lost_create_answer_every_case(case: str, tmp_path: Path, store_url: str) -> None:
    ordinals, after, other_db = LOST_CREATE_CASES[case]
    faults = FaultPlan(http_faults=lose_creates(ordinals, after))
    with scenario(tmp_path, store_url, "lostcreate", "anthropic", case, faults=faults) as sc:
        lost_create_case(sc, other_db)


# ---- 4. cancel, then retry / worker / run -------------------------------------------------------


def cancel_case(sc: Scenario, provider: str, while_running: bool) -> None:
    input_path = sc.write_input(rows=30)
    line = sc.run_line(input_path, provider)
    if while_running:  # cancel asks the runner holding the job, which stops at its next step
        runner = sc.start(*line)
        assert sc.wait_for(lambda: len(sc.created_batches()) >= 2, timeout=60), str(runner.wait())
        job = sc.newest_job()
        cancelled = sc.llmbulk("cancel", job)
        assert cancelled.code == 0, str(cancelled)
        stopped = runner.wait(60)
        no_traceback(stopped)
        assert stopped.code == CANCELLED, str(stopped)
    else:
        submitted = sc.llmbulk(*sc.job_line("submit", input_path, provider))
        assert submitted.code == 0, str(submitted)
        job = sc.newest_job()
        cancelled = sc.llmbulk("cancel", job)
    assert cancelled.code == 0, str(cancelled)
    assert sc.wait_for(lambda: sc.job_row(job)["state"] == "cancelled", timeout=10), sc.job_row(job)["state"]
    created = len(sc.created_batches())

    resume = f"llmbulk resume {job}"
    attempts = [  # (command, exit code, what its message must name)
        (("status", job), CANCELLED, []),
        (("retry", job), CANCELLED, [resume]),
        (("worker", "--timeout", "10"), 0, []),
        (("run", job, "--out", "out.csv"), CANCELLED, []),
        (tuple(line), CANCELLED, [resume, "--new-job"]),  # the same command line: not continued silently
        (("collect", job, "--out", "partial.csv"), CANCELLED, []),
    ]
    for args, code, named in attempts:
        done = sc.llmbulk(*args)
        no_traceback(done)
        assert done.code == code, str(done)
        assert all(name in done.stderr for name in named), f"{done} does not name {named}"
        assert sc.job_row(job)["state"] == "cancelled", f"{done} reactivated the cancelled job"
        assert len(sc.created_batches()) == created, f"{done} created a batch for the cancelled job"
    assert [j["job_id"] for j in sc.cli_jobs()] == [job]

    resumed = sc.llmbulk("resume", job)
    assert resumed.code == 0, str(resumed)
    sc.finish("run", job, "--out", "out.csv")
    assert sc.job_row(job)["state"] == "done"
    assert [j["job_id"] for j in sc.cli_jobs()] == [job]
    sc.audit({job: (sc.tmp / "out.csv", input_keys(input_path))})


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_cancelled_job_stays_cancelled_until_resumed(tmp_path: Path, store_url: str) -> None:
    # Batches of 8 s: the cancel (a new process) lands while they run, even on a loaded machine.
    with scenario(tmp_path, store_url, "cancel", "openai", "while_running", running=8.0) as sc:
        cancel_case(sc, "openai", while_running=True)


@pytest.mark.slow
@pytest.mark.parametrize("store_url", BOTH, indirect=True)
@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("while_running", [True, False], ids=["while_running", "after_submit"])
def test_cancel_every_provider(while_running: bool, provider: str, tmp_path: Path, store_url: str) -> None:
    case = "while_running" if while_running else "after_submit"
    with scenario(tmp_path, store_url, "cancel", provider, case, running=8.0 if while_running else 3.0) as sc:
        cancel_case(sc, provider, while_running)


# ---- 5. several jobs in a row on one database -----------------------------------------------------


def jobs_in_a_row(sc: Scenario, provider: str) -> None:
    first_in, second_in, third_in = (sc.write_input(f"{p}.csv", rows=n, prefix=p) for p, n in
                                     (("a", 24), ("b", 18), ("c", 20)))  # fmt: skip
    outputs: dict[str, tuple[Path, list[str]]] = {}

    def ran(args: list[str], out: str, input_path: Path) -> str:
        done = sc.finish(*args)
        job = sc.newest_job()
        outputs[job] = (sc.tmp / out, input_keys(input_path))
        return done.stderr

    first_line = sc.run_line(first_in, provider, out="out-a1.csv")
    ran(first_line, "out-a1.csv", first_in)
    first = sc.newest_job()
    ran(sc.run_line(second_in, provider, out="out-b.csv"), "out-b.csv", second_in)  # another input, same model
    ran(sc.run_line(first_in, provider, OTHER_MODELS[provider], out="out-a-other.csv"), "out-a-other.csv", first_in)
    # A submit after finished jobs on the same model (PostgreSQL once crashed here: calibration).
    submitted = sc.llmbulk(*sc.job_line("submit", third_in, provider))
    no_traceback(submitted)
    assert submitted.code == 0, str(submitted)
    third = sc.newest_job()
    sc.finish("run", third, "--out", "out-c.csv")
    outputs[third] = (sc.tmp / "out-c.csv", input_keys(third_in))

    # The first line again: the done job is reused, nothing is sent, the output is written again.
    created = len(sc.created_batches())
    (sc.tmp / "out-a1.csv").unlink()
    again = sc.llmbulk(*first_line)
    assert again.code == 0 and f"job {first} already finished" in again.stderr, str(again)
    assert len(sc.created_batches()) == created, "rerunning a done job's command line sent batches"
    assert (sc.tmp / "out-a1.csv").exists()
    ran([*sc.run_line(first_in, provider, out="out-a-new.csv"), "--new-job"], "out-a-new.csv", first_in)
    assert len(sc.created_batches()) == created, "a separate job over answered rows sent them again"
    ran([*sc.run_line(first_in, provider, out="out-a-fresh.csv"), "--new-job", "--fresh"], "out-a-fresh.csv", first_in)
    assert len(sc.created_batches()) > created

    # Cancelling a finished job says so and changes nothing.
    cancels = sum(1 for e in sc.server.emulator.audit_events() if e["event"] == "batch.cancelled")
    done_cancel = sc.llmbulk("cancel", first)
    assert done_cancel.code == 0, str(done_cancel)
    assert sc.job_row(first)["state"] == "done"
    assert sum(1 for e in sc.server.emulator.audit_events() if e["event"] == "batch.cancelled") == cancels

    listed = {j["job_id"]: j for j in sc.cli_jobs()}
    assert set(listed) == set(outputs), (sorted(listed), sorted(outputs))
    assert {j["state"] for j in listed.values()} == {"done"}
    sc.audit(outputs)


@pytest.mark.parametrize("store_url", BOTH, indirect=True)
def test_several_jobs_in_a_row_on_one_database(tmp_path: Path, store_url: str) -> None:
    with scenario(tmp_path, store_url, "jobsinrow", "openai") as sc:
        jobs_in_a_row(sc, "openai")


@pytest.mark.slow
@pytest.mark.parametrize("store_url", BOTH, indirect=True)
@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
def test_several_jobs_in_a_row_every_provider(provider: str, tmp_path: Path, store_url: str) -> None:
    with scenario(tmp_path, store_url, "jobsinrow", provider) as sc:
        jobs_in_a_row(sc, provider)


# ---- the harness itself ---------------------------------------------------------------------------


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_pause_point_freezes_the_process_until_sigcont(tmp_path: Path, store_url: str) -> None:
    with scenario(tmp_path, store_url, "harness", "openai", "pause_action") as sc:
        input_path = sc.write_input(rows=18)
        proc = sc.start(*sc.run_line(input_path, "openai"), env={"LLMBULK_PAUSE_AT": "after_create:2"})
        assert proc.wait_stopped(60), str(proc.wait())
        sc.tally.pauses += 1
        created = len(sc.created_batches())
        time.sleep(1.0)
        assert proc.stopped() and len(sc.created_batches()) == created == 2  # frozen: nothing more was sent
        proc.send(signal.SIGCONT)
        done = proc.wait(60)
        assert done.code == 0, str(done)
        sc.audit({sc.newest_job(): (sc.tmp / "out.csv", input_keys(input_path))})


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_ledger_catches_a_batch_paid_twice_a_deleted_input_and_a_lost_row(tmp_path: Path, store_url: str) -> None:
    import openai

    with scenario(tmp_path, store_url, "harness", "openai", "ledger") as sc:
        input_path = sc.write_input(rows=12)
        sc.finish(*sc.run_line(input_path, "openai", None, "out.csv", "--keep-files"))  # inputs stay to plant faults
        job = sc.newest_job()
        outputs = {job: (sc.tmp / "out.csv", input_keys(input_path))}
        sc.audit(outputs)  # clean so far

        client = openai.OpenAI(api_key=FAKE_KEY, base_url=sc.server.openai_base_url)
        first, second = sorted(sc.server.emulator.list_batches("openai"), key=lambda b: b["created_at"])
        again = client.batches.create(input_file_id=first["input_file_id"], endpoint="/v1/chat/completions",
                                      completion_window="24h", metadata=first["metadata"])  # fmt: skip
        client.files.delete(second["input_file_id"])  # its batch has ended: deleting it now is cleanup
        client.files.delete(first["input_file_id"])  # but `again` has not
        rows = (sc.tmp / "out.csv").read_text().splitlines()
        (sc.tmp / "out.csv").write_text("\n".join(rows[:-1]) + "\n")

        ledger = check_ledger(sc.server, [sc.store], outputs)
        found = "\n".join(ledger.violations)
        assert ledger.duplicates == 1 and ledger.lost == 1, found
        assert "no job recorded it" in found and "were not cancelled, recorded and logged" in found, found
        assert f"input file {first['input_file_id']} of batch {again.id} was deleted while it was" in found, found
        assert second["input_file_id"] not in found, found
        assert f"job {job}: 1 rows missing ['r11']" in found, found
