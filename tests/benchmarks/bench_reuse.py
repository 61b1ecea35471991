"""The reuse table of the benchmark: pack time after an earlier job answered 0/30/90% of the rows,
against `--fresh` (no lookups; the mean of a pack before and one after). Each figure comes from a
fresh process (`--child`), wall seconds of the in-process stages, as the lead's first version
measured them.

`dedup s` is the time the pack spent folding repeats and looking up earlier answers (issue #19's
budget: at most 10% of the pack), measured inside the pack: the deduplicator's time per chunk and
at the end, less the same step in the --fresh packs (the request keys, which --fresh computes too)
and less recording the reused rows (writing answers, not finding them).

    python tests/benchmarks/bench_reuse.py --sizes 10000 --reuse 0 30 90
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from procs import FLOOR, Emulator

sys.path.insert(0, str(FLOOR))

from gen_input import make_input

TEMPLATE = "Classify the sentiment of this review as positive, negative or neutral: {{ text }}"
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"}


def run_job(
    session: Any, input_path: Path, work: Path, provider: str, figures: dict[str, Any], *, fresh: bool = False,
    pack_only: bool = False,
) -> str:  # fmt: skip
    """Pack (timed), then unless `pack_only` submit, wait for the batches, collect and merge (each timed)."""
    from llmbulk import api
    from llmbulk.jobs import submit as submit_mod
    from llmbulk.jobs.collect import poll_and_collect, write_table
    from llmbulk.jobs.pack import pack_new_job
    from llmbulk.jobs.send import send_unsent
    from llmbulk.store.schema import Job
    from llmbulk.tasks import TaskSpec

    options = api.SubmitOptions(
        input=input_path, provider=provider, model=MODELS[provider], prompt=TEMPLATE, id_column="review_id"
    )
    started = time.perf_counter()
    table = submit_mod.input_table_of(options)
    spec = TaskSpec(options.prompt, None, options.id_column, {})
    job = Job(
        id=api.new_job_id(),
        created_at=time.time(),
        provider=provider,
        model=options.model,
        input_path=str(input_path.resolve()),
        input_format="csv",
        id_column="review_id",
        spec_json=spec.job_spec(fresh=fresh).to_stored(),
        emulated=False,
        max_items=10**9,
        max_bytes=10**12,
    )
    limits = submit_mod.limits_of(options)
    job.max_items, job.max_bytes = limits.max_items, limits.max_bytes
    adapter = session.make_provider(provider, job.model, None, False, need_key=True)
    plans, _, reuse = pack_new_job(session, job, table, spec, adapter, limits, dry_run=False)
    figures["pack"] = {"seconds": time.perf_counter() - started, "bytes": sum(p.n_bytes for p in plans)}
    figures["shards"] = len(plans)
    figures["reuse"] = reuse.to_json()
    if pack_only:
        return job.id
    session.use_provider(job.id, adapter)
    started = time.perf_counter()
    with session.lease(job.id) as lease:
        send_unsent(session, session.store.get_job(job.id), lease)
    figures["submit"] = {"seconds": time.perf_counter() - started, "bytes": figures["pack"]["bytes"]}
    job = session.store.get_job(job.id)
    batch_ids = [b.provider_batch_id for b in session.store.batches(job.id)]
    while not all(status.state.terminal for status in adapter.poll(batch_ids)):
        time.sleep(0.2)
    started = time.perf_counter()
    with session.lease(job.id) as lease:
        poll_and_collect(session, job, True, lease)
    figures["collect"] = {"seconds": time.perf_counter() - started}
    started = time.perf_counter()
    summary = write_table(session, job, work / f"out-{job.id}.parquet", "parquet")
    figures["merge"] = {"seconds": time.perf_counter() - started, "rows": summary.rows}
    counts = session.store.item_counts(job.id)
    if counts.get("succeeded") != summary.rows:
        raise SystemExit(f"benchmark run incomplete: {counts}")
    return str(job.id)


class DedupClock:
    """Wall seconds inside the deduplicator, split into finding (per chunk, and at the end) and
    recording the rows answered from earlier jobs."""

    def __init__(self) -> None:
        self.finding = 0.0
        self.recording = 0.0

    def install(self) -> None:
        from llmbulk.jobs.dedup import Deduplicator

        def timed(method: Any, field: str) -> Any:
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return method(*args, **kwargs)
                finally:
                    setattr(self, field, getattr(self, field) + time.perf_counter() - started)

            return wrapper

        Deduplicator._chunk = timed(Deduplicator._chunk, "finding")  # type: ignore[method-assign]
        Deduplicator.finish = timed(Deduplicator.finish, "finding")  # type: ignore[method-assign]
        Deduplicator._record_reused = timed(Deduplicator._record_reused, "recording")  # type: ignore[method-assign]

    def lap(self) -> float:
        """Finding seconds since the last lap (recording excluded: `_record_reused` runs inside `_chunk`)."""
        spent = self.finding - self.recording
        self.finding = self.recording = 0.0
        return spent


def reuse_stages(input_path: Path, work: Path, provider: str, n: int, percent: int) -> dict[str, Any]:
    """Pack the input after an earlier job answered `percent`% of its rows, with reuse on and with --fresh.

    The earlier job ran over the first rows of the table (a table that grew, as a nightly job's does).
    """
    from llmbulk import api
    from llmbulk.config import load_settings

    settings = load_settings(home=work / "home", env=dict(os.environ))
    figures: dict[str, Any] = {}
    clock = DedupClock()
    clock.install()
    with api.Session(settings) as session:
        seeded = n * percent // 100
        if seeded:
            seed = work / "seed.csv"
            with open(input_path, newline="") as src, open(seed, "w", newline="") as dst:
                for index, line in enumerate(src):
                    if index > seeded:
                        break
                    dst.write(line)
            run_job(session, seed, work, provider, {})
        # --fresh packed before and after: each pack inserts into a database the packs before it grew,
        # so a single --fresh pack run first would flatter it.
        before: dict[str, Any] = {}
        after: dict[str, Any] = {}
        clock.lap()
        run_job(session, input_path, work, provider, before, fresh=True, pack_only=True)
        keys_seconds = clock.lap()
        run_job(session, input_path, work, provider, figures, pack_only=True)
        finding_seconds = clock.lap()
        run_job(session, input_path, work, provider, after, fresh=True, pack_only=True)
        keys_seconds = (keys_seconds + clock.lap()) / 2
    fresh_seconds = (before["pack"]["seconds"] + after["pack"]["seconds"]) / 2
    return {
        "pack": figures["pack"], "reuse": figures["reuse"], "fresh_pack": {"seconds": fresh_seconds},
        "dedup": {"seconds": max(0.0, finding_seconds - keys_seconds)},
    }  # fmt: skip


def run_child(work: Path, n: int, provider: str, env: dict[str, str], percent: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", "--work", str(work), "--n", str(n), "--percent", str(percent),
           "--provider", provider]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, **env))
    if out.returncode:
        raise SystemExit(f"reuse run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def print_reuse(sizes: list[int], provider: str, percents: list[int]) -> None:
    """Pack time with 0/30/90% of the rows answered by an earlier job, against --fresh (no lookups)."""
    print()
    print(
        f"{'provider':<10}{'N':>9}  {'reuse':>6}{'pack s':>9}{'fresh s':>9}{'vs fresh':>10}{'dedup s':>9}"
        f"{'of pack':>9}{'sent':>10}{'reused':>10}"
    )
    for n in sizes:
        for percent in percents:
            with tempfile.TemporaryDirectory(prefix="llmbulk-bench-") as tmp:
                work = Path(tmp)
                make_input(str(work / "input.csv"), n)
                emulator = Emulator(work / "emulator")
                try:
                    got = run_child(work, n, provider, emulator.env, percent)
                finally:
                    emulator.stop()
            pack, fresh, reuse = got["pack"]["seconds"], got["fresh_pack"]["seconds"], got["reuse"]
            dedup = got["dedup"]["seconds"]
            print(
                f"{provider:<10}{n:>9,}  {percent:>5}%{pack:>9.2f}{fresh:>9.2f}{pack / fresh - 1:>+10.0%}"
                f"{dedup:>9.2f}{dedup / pack:>9.1%}{reuse['sent']:>10,}{reuse['reused']:>10,}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000])
    parser.add_argument("--provider", default="openai")
    parser.add_argument("--reuse", type=int, nargs="+", default=[0, 30, 90])
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--work")
    parser.add_argument("--n", type=int, default=0)
    parser.add_argument("--percent", type=int, default=0)
    args = parser.parse_args()
    if args.child:
        work = Path(args.work)
        print(json.dumps(reuse_stages(work / "input.csv", work, args.provider, args.n, args.percent)))
        return
    print_reuse(args.sizes, args.provider, args.reuse)


if __name__ == "__main__":
    main()
