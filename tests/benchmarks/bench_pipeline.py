"""Benchmark: llmbulk's pack+submit and collect+merge against an independent floor, per provider and N.

A script, not a test: it prints figures. Everything is a whole process, measured by its own CPU
time (user + system, from `wait4`) and peak RSS — CPU time, not wall time, because the machine is
shared. The floor is `tests/benchmarks/floor/` (a verbatim copy of ../shared/bench: the least work
that produces what llmbulk produces; read its docstrings). Per repetition, floor and llmbulk run
interleaved (floor pack, `llmbulk submit`, floor collect, `llmbulk collect`, floor pack,
`llmbulk submit --dry-run`), each llmbulk run with a fresh state directory and a fresh emulator
(`llmbulk emulator serve`, its own process: the provider's CPU is not ours). The ratio printed is
the median of the per-repetition ratios.

Sections (all by default): `pipeline` (the table; plus the peak RSS of `llmbulk run --emulate`,
emulator in-process), `calls` (the HTTP calls of a 20-shard job per provider), `light` (cold
timings of the light commands, median of 5), `reuse` (pack after 0/30/90% of rows were answered).

    python tests/benchmarks/bench_pipeline.py --sizes 10000 100000 1000000 --providers openai anthropic gemini
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from procs import FLOOR, Emulator, Proc, calls_made, floor_is_the_shared_one, measure

sys.path.insert(0, str(FLOOR))

from gen_input import make_input

TEMPLATE = "Classify the sentiment of this review as positive, negative or neutral: {{ text }}"
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"}
PY = sys.executable
CLEAN_ENV = ("OPENAI_", "ANTHROPIC_", "GOOGLE_", "GEMINI_", "LLMBULK_")


def base_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(CLEAN_ENV)}
    env.update(LLMBULK_HOME=str(home), LLMBULK_EMULATOR_SECONDS="0", **(extra or {}))
    return env


def submit_cmd(input_path: Path, provider: str, *extra: str) -> list[str]:
    return [PY, "-m", "llmbulk", "submit", str(input_path), "-p", provider, "-m", MODELS[provider],
            "--prompt", TEMPLATE, "--id-column", "review_id", "--json", *extra]  # fmt: skip


# ---- the pipeline table ------------------------------------------------------------------------


def one_repetition(input_path: Path, provider: str, work: Path, fmt: str) -> dict[str, Any]:
    """Floor and llmbulk interleaved once: (ours, floor) process figures per stage, calls, bytes."""
    emulator = Emulator(work / "emulator")
    try:
        env = base_env(work / "home", emulator.env)
        floor_cmd = [PY, str(FLOOR / "floor_pack.py"), str(input_path), provider]
        floor_pack = measure([*floor_cmd, str(work / "floor")], env, work)
        before = emulator.stats()
        submit = measure(submit_cmd(input_path, provider), env, work)
        job = submit.json()
        submit_calls = calls_made(before, emulator.stats())
        result_bytes = emulator.finish_batches(provider)  # the provider's work, outside both timings
        floor_collect = measure([PY, str(FLOOR / "floor_collect.py"), provider, str(work / "emulator"),
                                 str(work / "floor" / "floor.db"), str(input_path), str(work / f"floor.{fmt}"),
                                 "--format", fmt], env, work)  # fmt: skip
        before = emulator.stats()
        collect = measure([PY, "-m", "llmbulk", "collect", job["job_id"], "--out", str(work / f"out.{fmt}"), "--json"],
                          env, work)  # fmt: skip
        collect_calls = calls_made(before, emulator.stats())
        status = collect.json()
        if status["counts"].get("succeeded") != job["n_items"] or floor_collect.json()["rows"] != job["n_items"]:
            raise SystemExit(f"incomplete run: {status['counts']} / floor {floor_collect.stdout}")
        dry_floor = measure([*floor_cmd, str(work / "floor-dry")], env, work)
        dry = measure(submit_cmd(input_path, provider, "--dry-run"), base_env(work / "home-dry", emulator.env), work)
    finally:
        emulator.stop()
    return {
        "pack+submit": (submit, floor_pack, submit_calls, sum(s["n_bytes"] for s in job["shards"])),
        "pack (dry-run)": (dry, dry_floor, {}, sum(s["n_bytes"] for s in job["shards"])),
        "collect+merge": (collect, floor_collect, collect_calls, result_bytes),
        "shards": len(job["shards"]),
    }


def emulate_rss(input_path: Path, provider: str, work: Path) -> Proc:
    """`llmbulk run --emulate` (the emulator in-process, as users run it): its peak RSS."""
    cmd = [PY, "-m", "llmbulk", "run", str(input_path), "-p", provider, "-m", MODELS[provider], "--prompt", TEMPLATE,
           "--id-column", "review_id", "--emulate", "--json", "--out", str(work / "emulated.csv")]  # fmt: skip
    return measure(cmd, base_env(work / "home"), work)


def print_pipeline(sizes: list[int], providers: list[str], repeat: int | None, fmt: str, emulate: bool,
                   root: Path) -> Path | None:  # fmt: skip
    """The table; returns a state directory holding a finished job (for the light commands)."""
    print("CPU time (user+sys) of whole processes, not wall time: the machine is shared.")
    print(floor_is_the_shared_one())
    head = (f"{'provider':<10}{'N':>10}  {'stage':<15}{'items/CPU-s':>12}{'MB/CPU-s':>9}{'CPU s':>8}"
            f"{'floor s':>8}{'x floor':>8}{'RSS MB':>7}{'calls':>6}")  # fmt: skip
    print(head)
    print("-" * len(head))
    kept: Path | None = None
    for n in sizes:
        input_path = root / f"in_{n}.csv"
        make_input(str(input_path), n)
        for provider in providers:
            runs = []
            for rep in range(repeat or (3 if n <= 100_000 else 1)):
                work = root / f"{provider}-{n}-{rep}"
                work.mkdir()
                runs.append(one_repetition(input_path, provider, work, fmt))
                shutil.rmtree(work)
            for stage in ("pack+submit", "pack (dry-run)", "collect+merge"):
                ours = [r[stage][0] for r in runs]
                floor = [r[stage][1] for r in runs]
                cpu = statistics.median(p.cpu for p in ours)
                ratio = statistics.median(o.cpu / f.cpu for o, f in zip(ours, floor, strict=True))
                calls = sum(runs[0][stage][2].values())
                size = runs[0][stage][3]
                shown_calls = "" if stage == "pack (dry-run)" else calls
                print(f"{provider:<10}{n:>10,}  {stage:<15}{n / cpu:>12,.0f}{size / 1e6 / cpu:>9.1f}{cpu:>8.2f}"
                      f"{statistics.median(f.cpu for f in floor):>8.2f}{ratio:>7.2f}x"
                      f"{max(p.rss_mb for p in ours):>7.0f}{shown_calls:>6}")  # fmt: skip
            notes = [f"{len(runs)} run(s), {runs[0]['shards']} shard(s)"]
            for stage in ("pack+submit", "collect+merge"):
                notes.append(f"{stage} calls {dict(sorted(runs[0][stage][2].items()))}")
            if emulate:
                work = root / f"{provider}-{n}-emulate"
                work.mkdir()
                run = emulate_rss(input_path, provider, work)
                notes.append(f"`run --emulate`: peak RSS {run.rss_mb:.0f} MB, CPU {run.cpu:.1f} s")
                if kept is None:
                    kept = work / "home"
                else:
                    shutil.rmtree(work)
            print(f"{'':<22}" + "; ".join(notes))
    return kept


# ---- HTTP calls of a 20-shard job --------------------------------------------------------------


def print_calls(providers: list[str], root: Path) -> None:
    print("\nHTTP calls of a 20-shard job (2,000 items, --max-items-per-batch 100): submit, then collect")
    input_path = root / "in_calls.csv"
    make_input(str(input_path), 2000)
    for provider in providers:
        work = root / f"calls-{provider}"
        work.mkdir()
        emulator = Emulator(work / "emulator")
        try:
            env = base_env(work / "home", emulator.env)
            before = emulator.stats()
            job = measure(submit_cmd(input_path, provider, "--max-items-per-batch", "100"), env, work).json()
            submitted = emulator.stats()
            emulator.finish_batches(provider)
            polled = emulator.stats()
            measure([PY, "-m", "llmbulk", "collect", job["job_id"], "--out", str(work / "o.csv"), "--json"], env, work)
            done = emulator.stats()
        finally:
            emulator.stop()
        submit, collect = calls_made(before, submitted), calls_made(polled, done)
        print(f"{provider:<10} total {sum(submit.values()) + sum(collect.values()):>4}   "
              f"submit {sum(submit.values())}: {dict(sorted(submit.items()))}")  # fmt: skip
        print(f"{'':<21}collect {sum(collect.values())}: {dict(sorted(collect.items()))}")
        shutil.rmtree(work)


# ---- light commands ----------------------------------------------------------------------------


def print_light(home: Path, root: Path) -> None:
    import json

    job = json.loads(measure([PY, "-m", "llmbulk", "jobs", "--json"], base_env(home), root).stdout)[0]["job_id"]
    commands = [["--help"], ["--version"], ["status", job], ["status", job, "--json"], ["jobs"],
                ["items", job, "-n", "10"], ["cost", job]]  # fmt: skip
    print(f"\nLight commands, cold, median of 5 (job {job}, target 0.25 s): CPU s / wall s")
    for args in commands:
        runs = [measure([PY, "-m", "llmbulk", *args], base_env(home), root, ok=(0, 3, 4)) for _ in range(5)]
        cpu, wall = statistics.median(r.cpu for r in runs), statistics.median(r.wall for r in runs)
        print(f"  llmbulk {' '.join(args):<28}{cpu:>7.3f}{wall:>8.3f}")


def compile_llmbulk() -> None:
    """Byte-compile llmbulk first, as installing its wheel does: in an editable checkout under
    PYTHONDONTWRITEBYTECODE (CI's environment) every command would otherwise compile ~150 modules
    from source, a cost users of an installed llmbulk never pay."""
    import compileall

    import llmbulk

    compileall.compile_dir(str(Path(llmbulk.__file__).parent), quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--providers", nargs="+", default=["openai", "anthropic", "gemini"])
    parser.add_argument("--repeat", type=int, help="Repetitions per provider and N (default 3; 1 above 100k).")
    parser.add_argument("--format", default="csv", choices=["csv", "parquet"], help="Output table format.")
    parser.add_argument("--sections", nargs="+", default=["pipeline", "calls", "light", "reuse"])
    parser.add_argument("--no-emulate", action="store_true", help="Skip the `run --emulate` RSS runs.")
    parser.add_argument(
        "--reuse", type=int, nargs="*", default=[0, 30, 90],
        help="Also pack after an earlier job answered these percentages of the rows (first provider only).",
    )  # fmt: skip
    args = parser.parse_args()
    compile_llmbulk()
    with tempfile.TemporaryDirectory(prefix="llmbulk-bench-") as tmp:
        root = Path(tmp)
        home = None
        if "pipeline" in args.sections:
            home = print_pipeline(args.sizes, args.providers, args.repeat, args.format, not args.no_emulate, root)
        if "calls" in args.sections:
            print_calls(args.providers, root)
        if "light" in args.sections:
            if home is None:
                work = root / "light"
                work.mkdir()
                make_input(str(work / "in.csv"), args.sizes[0])
                emulate_rss(work / "in.csv", args.providers[0], work)
                home = work / "home"
            print_light(home, root)
    if "reuse" in args.sections and args.reuse:
        from bench_reuse import print_reuse

        print_reuse(args.sizes, args.providers[0], args.reuse)


if __name__ == "__main__":
    main()
