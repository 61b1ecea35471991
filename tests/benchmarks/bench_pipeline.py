"""Benchmark: pack → submit → (instant emulated completion) → collect → merge, against a floor.

A script, not a test: it prints figures. Each (provider, N) runs in a fresh subprocess so peak
RSS is per run. The floor is a minimal script doing only the unavoidable work on the same data:
read the input, render the same template with the same engine, serialize the lines, write them,
one bulk insert of the item keys; and for collect: read the result lines, parse, one bulk
update, write Parquet.

    python tests/benchmarks/bench_pipeline.py --sizes 10000 100000 1000000 --providers openai anthropic gemini
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

TEMPLATE = "Classify the sentiment of this review as positive, negative or neutral: {{ text }}"
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"}
WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "this",
    "product",
    "works",
    "great",
    "or",
    "terribly",
]


def make_input(path: Path, n: int) -> None:
    rng = random.Random(n)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["review_id", "text"])
        for i in range(n):
            writer.writerow([f"r{i}", " ".join(rng.choice(WORDS) for _ in range(24))])


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- the floor ---------------------------------------------------------------------------------


def floor_pack(input_path: Path, work: Path) -> dict[str, float]:
    import jinja2
    import orjson

    template = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(TEMPLATE)
    # The same flat globals llmbulk gives its templates (Jinja copies a ChainMap key by key per
    # render), so the floor is as fast as this engine renders and the ratio is llmbulk's own cost.
    template.globals = dict(template.globals)
    started = time.perf_counter()
    db = sqlite3.connect(work / "floor.db")
    db.execute("CREATE TABLE items (job_id TEXT, row_index INTEGER, key TEXT, PRIMARY KEY (job_id, row_index))")
    keys = []
    out_bytes = 0
    with open(input_path, newline="") as fh, open(work / "floor.jsonl", "wb") as out:
        for index, row in enumerate(csv.DictReader(fh)):
            prompt = template.render(row)
            line = orjson.dumps(
                {
                    "custom_id": f"jfloor-{index}-1",
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": {"model": "m", "messages": [{"role": "user", "content": prompt}]},
                }
            )
            out.write(line + b"\n")
            out_bytes += len(line) + 1
            keys.append(("jfloor", index, row["review_id"]))
    db.executemany("INSERT INTO items VALUES (?, ?, ?)", keys)
    db.commit()
    return {"seconds": time.perf_counter() - started, "bytes": out_bytes}


def floor_collect(results_path: Path, work: Path, n: int) -> dict[str, float]:
    import orjson
    import pyarrow as pa
    import pyarrow.parquet as pq

    started = time.perf_counter()
    db = sqlite3.connect(work / "floor.db")
    db.execute("ALTER TABLE items ADD COLUMN output TEXT")
    updates = []
    size = 0
    with open(results_path, "rb") as fh:
        for line in fh:
            size += len(line)
            data = orjson.loads(line)
            _, row, _ = (data.get("custom_id") or data["key"]).rsplit("-", 2)
            updates.append((str(data), int(row)))
    db.executemany("UPDATE items SET output = ? WHERE job_id = 'jfloor' AND row_index = ?", updates)
    db.commit()
    rows = db.execute("SELECT key, output FROM items ORDER BY row_index")
    writer = None
    while batch := rows.fetchmany(10_000):
        table = pa.table({"key": [r[0] for r in batch], "output": [r[1] for r in batch]})
        writer = writer or pq.ParquetWriter(work / "floor.parquet", table.schema)
        writer.write_table(table)
    if writer:
        writer.close()
    return {"seconds": time.perf_counter() - started, "bytes": size}


# ---- llmbulk stages ------------------------------------------------------------------------------


def llmbulk_stages(input_path: Path, work: Path, provider: str) -> dict[str, Any]:
    """Our stages against an emulator in another process (as a real provider would be).

    `collect` is timed from the moment every batch has ended at the provider: the emulator's own
    work producing results is the provider's time, not ours.
    """
    from llmbulk import api
    from llmbulk.config import load_settings

    settings = load_settings(home=work / "home", env=dict(os.environ))
    figures: dict[str, Any] = {}
    with api.Session(settings) as session:
        job_id = run_job(session, input_path, work, provider, figures)
        results = sorted((work / "home" / "jobs" / job_id / "results").glob("*.jsonl"))
        figures["results_bytes"] = sum(p.stat().st_size for p in results)
        with open(work / "all_results.jsonl", "wb") as out:
            for path in results:
                with open(path, "rb") as fh:
                    shutil.copyfileobj(fh, out)
        started = time.perf_counter()
        api.status(job_id, settings=settings)
        figures["status_seconds"] = time.perf_counter() - started
        figures["job_id"] = job_id
    figures["peak_rss_mb"] = peak_rss_mb()
    figures["status_cli_seconds"] = status_cli_seconds(work, figures["job_id"])
    return figures


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
    figures["submit_rss_mb"] = peak_rss_mb()
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


def reuse_stages(input_path: Path, work: Path, provider: str, n: int, percent: int) -> dict[str, Any]:
    """Pack the input after an earlier job answered `percent`% of its rows, with reuse on and with --fresh.

    The earlier job ran over the first rows of the table (a table that grew, as a nightly job's does).
    """
    from llmbulk import api
    from llmbulk.config import load_settings

    settings = load_settings(home=work / "home", env=dict(os.environ))
    figures: dict[str, Any] = {}
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
        fresh: dict[str, Any] = {}
        run_job(session, input_path, work, provider, fresh, fresh=True, pack_only=True)
        run_job(session, input_path, work, provider, figures, pack_only=True)
    return {"pack": figures["pack"], "reuse": figures["reuse"], "fresh_pack": fresh["pack"]}


def status_cli_seconds(work: Path, job_id: str) -> float:
    """Wall time of `llmbulk status JOB` as a user runs it (a fresh process)."""
    env = dict(os.environ, LLMBULK_HOME=str(work / "home"))
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "llmbulk", "status", job_id], check=True, capture_output=True, env=env)
    return time.perf_counter() - started


class Emulator:
    """`llmbulk emulator serve` in its own process, batches ending at once."""

    def __init__(self, work: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llmbulk", "emulator", "serve", "--port", str(self.port),
             "--state-dir", str(work / "emulator"), "--batch-seconds", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        url = f"http://127.0.0.1:{self.port}"
        for _ in range(200):
            try:
                with urllib.request.urlopen(f"{url}/_emulator/stats", timeout=1):
                    break
            except OSError:
                time.sleep(0.05)
        self.env = {
            "OPENAI_BASE_URL": f"{url}/openai/v1",
            "OPENAI_API_KEY": "bench",
            "ANTHROPIC_BASE_URL": f"{url}/anthropic",
            "ANTHROPIC_API_KEY": "bench",
            "GOOGLE_GEMINI_BASE_URL": f"{url}/gemini",
            "GOOGLE_API_KEY": "bench",
        }

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/_emulator/stats", timeout=5) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def child(args: argparse.Namespace) -> None:
    work = Path(args.work)
    input_path = work / "input.csv"
    if args.role == "floor":
        pack = floor_pack(input_path, work)
        result = {"pack": pack, "peak_rss_mb": peak_rss_mb()}
        collect = floor_collect(Path(args.results), work, args.n)
        result["collect"] = collect
        result["peak_rss_mb"] = peak_rss_mb()
    elif args.role == "reuse":
        result = reuse_stages(input_path, work, args.provider, args.n, args.percent)
    else:
        result = llmbulk_stages(input_path, work, args.provider)
    print(json.dumps(result))


def run_child(
    role: str, work: Path, n: int, provider: str = "", results: str = "", env: dict[str, str] | None = None,
    percent: int = 0,
) -> dict[str, Any]:  # fmt: skip
    cmd = [sys.executable, __file__, "--child", role, "--work", str(work), "--n", str(n), "--percent", str(percent)]
    if provider:
        cmd += ["--provider", provider]
    if results:
        cmd += ["--results", results]
    out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, **(env or {})))
    if out.returncode:
        raise SystemExit(f"{role} run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def help_seconds() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "llmbulk", "--help"], check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--providers", nargs="+", default=["openai", "anthropic", "gemini"])
    parser.add_argument("--child", dest="role")
    parser.add_argument("--work")
    parser.add_argument("--n", type=int, default=0)
    parser.add_argument("--provider", default="")
    parser.add_argument("--results", default="")
    parser.add_argument("--percent", type=int, default=0)
    parser.add_argument(
        "--reuse", type=int, nargs="*", default=[0, 30, 90],
        help="Also pack after an earlier job answered these percentages of the rows (first provider only).",
    )  # fmt: skip
    args = parser.parse_args()
    if args.role:
        child(args)
        return
    header = f"{'provider':<10}{'N':>9}  {'stage':<8}{'items/s':>11}{'MB/s':>8}{'x floor':>9}{'peak RSS MB':>13}"
    print(header)
    print("-" * len(header))
    for n in args.sizes:
        for provider in args.providers:
            with tempfile.TemporaryDirectory(prefix="llmbulk-bench-") as tmp:
                work = Path(tmp)
                make_input(work / "input.csv", n)
                emulator = Emulator(work)
                try:
                    ours = run_child("llmbulk", work, n, provider, env=emulator.env)
                    calls = emulator.stats()
                finally:
                    emulator.stop()
                floor = run_child("floor", work, n, results=str(work / "all_results.jsonl"))
            collect_merge = ours["collect"]["seconds"] + ours["merge"]["seconds"]
            rows = [
                ("pack", ours["pack"]["seconds"], ours["pack"]["bytes"], floor["pack"]["seconds"]),
                ("submit", ours["submit"]["seconds"], ours["pack"]["bytes"], None),
                ("collect", collect_merge, ours["results_bytes"], floor["collect"]["seconds"]),
            ]
            for stage, seconds, size, floor_seconds in rows:
                ratio = f"{seconds / floor_seconds:>8.2f}x" if floor_seconds else f"{'':>9}"
                print(
                    f"{provider:<10}{n:>9,}  {stage:<8}{n / seconds:>11,.0f}{size / 1e6 / seconds:>8.1f}"
                    f"{ratio}{ours['peak_rss_mb']:>13.0f}"
                )
            floor_rss = floor["peak_rss_mb"]
            print(
                f"{provider:<10}{n:>9,}  status {ours['status_seconds']:.3f}s (CLI {ours['status_cli_seconds']:.3f}s)"
                f"  shards {ours['shards']}  emulator calls {calls['total']}  floor peak RSS {floor_rss:.0f} MB"
            )
    if args.reuse:
        print_reuse(args.sizes, args.providers[0], args.reuse)
    print(f"llmbulk --help: {help_seconds():.3f}s")


def print_reuse(sizes: list[int], provider: str, percents: list[int]) -> None:
    """Pack time with 0/30/90% of the rows answered by an earlier job, against --fresh (no lookups)."""
    print()
    print(
        f"{'provider':<10}{'N':>9}  {'reuse':>6}{'pack s':>9}{'fresh s':>9}{'vs fresh':>10}{'sent':>10}{'reused':>10}"
    )
    for n in sizes:
        for percent in percents:
            with tempfile.TemporaryDirectory(prefix="llmbulk-bench-") as tmp:
                work = Path(tmp)
                make_input(work / "input.csv", n)
                emulator = Emulator(work)
                try:
                    got = run_child("reuse", work, n, provider, env=emulator.env, percent=percent)
                finally:
                    emulator.stop()
            pack, fresh, reuse = got["pack"]["seconds"], got["fresh_pack"]["seconds"], got["reuse"]
            print(
                f"{provider:<10}{n:>9,}  {percent:>5}%{pack:>9.2f}{fresh:>9.2f}{pack / fresh - 1:>+10.0%}"
                f"{reuse['sent']:>10,}{reuse['reused']:>10,}"
            )


if __name__ == "__main__":
    main()
