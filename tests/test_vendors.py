"""Every OpenAI-compatible profile end to end through the CLI: the quickstart on the emulator per
profile, a gateway reached by --base-url (kept on the job for later commands), one-line key and
base-URL errors, completion windows checked before anything is recorded, packing within each
vendor's limits, costs at each vendor's batch rate or unknown with the reason, and the README's
profile table generated from the profiles.
"""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from conftest import QUICKSTART, Outcome
from vendor_models import MODELS, VENDORS

from llmbulk import costs, providers
from llmbulk.emulator import EmulatorConfig, EmulatorServer
from llmbulk.models import Limits, Task
from llmbulk.providers import vendor_table
from llmbulk.providers.base import ProviderSettings
from llmbulk.shards import write_shards

PROMPT = "Sentiment of: {{ text }}"
ROOT = Path(__file__).resolve().parent.parent


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("vendor", VENDORS)
def test_quickstart_runs_on_every_profile(vendor: str, llmbulk: Callable[..., Outcome], home: Path) -> None:
    out = home.parent / f"{vendor}.csv"
    keep = ["--keep-files"] if vendor == "azure" else []  # Azure's uploads are read below (collect deletes them)
    result = llmbulk("run", str(QUICKSTART), "-p", vendor, "-m", MODELS[vendor], "--prompt", PROMPT,
                     "--emulate", "--json", "--out", str(out), *keep)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    rows = _rows(out)
    assert len(rows) == 50 and {r["status"] for r in rows} == {"succeeded"}
    audit = [orjson.loads(line) for line in (home / "emulator" / "audit.jsonl").read_bytes().splitlines()]
    assert {e["provider"] for e in audit if e["event"] == "batch.created"} == {vendor}
    job = sqlite3.connect(home / "llmbulk.db").execute("SELECT provider FROM jobs").fetchone()
    assert job == (vendor,)  # the job records the profile's name
    if vendor == "azure":  # every upload set expires_after: no file counts against the 500-file cap
        inputs = [orjson.loads(p.read_bytes()) for p in (home / "emulator" / "files").glob("*.json")]
        assert [f["expiry_set"] for f in inputs if f["purpose"] == "batch"] == [True]


def test_openai_compatible_gateway_by_base_url_is_kept_on_the_job(
    llmbulk: Callable[..., Outcome], home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gateway outside llmbulk (here an emulator server): submit names it once, later commands reach it."""
    monkeypatch.setenv("LLMBULK_POLL_INITIAL", "0.1")
    monkeypatch.setenv("LLMBULK_POLL_MAX", "0.3")
    config = EmulatorConfig(validating_seconds=0.2, running_seconds=0.3, finalizing_seconds=0, jitter=0)
    with EmulatorServer(tmp_path / "gateway", config) as gateway:
        base = f"{gateway.url}/compat/v1"
        submitted = llmbulk("submit", str(QUICKSTART), "-p", "openai-compatible", "-m", "my-model", "--prompt", PROMPT,
                            "--base-url", base, "--json")  # fmt: skip
        assert submitted.exit_code == 0, submitted.stderr
        job_id = submitted.json()["job_id"]
        spec = sqlite3.connect(home / "llmbulk.db").execute("SELECT spec_json FROM jobs").fetchone()[0]
        assert orjson.loads(spec)["base_url"] == base
        before = sum(gateway.emulator.calls.values())
        out = home.parent / "gateway.csv"
        collected = llmbulk("run", job_id, "--out", str(out), "--json", "--timeout", "60")
        assert collected.exit_code == 0, collected.stderr
        assert sum(gateway.emulator.calls.values()) > before  # no --base-url given again, yet it went there
    assert len(_rows(out)) == 50


@pytest.mark.parametrize("vendor", [v for v in VENDORS if providers.info(v).profile.key_required])
def test_a_missing_key_is_one_line_naming_the_variable(vendor: str, llmbulk: Callable[..., Outcome]) -> None:
    result = llmbulk("submit", str(QUICKSTART), "-p", vendor, "-m", MODELS[vendor], "--prompt", PROMPT)
    variable = providers.info(vendor).key_env[0]
    assert result.exit_code == 1
    assert result.stderr.strip().count("\n") == 0 and f"{variable} is not set" in result.stderr


@pytest.mark.parametrize(
    ("vendor", "variable"), [("azure", "AZURE_OPENAI_ENDPOINT"), ("openai-compatible", "OPENAI_COMPATIBLE_BASE_URL")]
)
def test_a_missing_base_url_is_one_line_naming_the_variable(
    vendor: str, variable: str, llmbulk: Callable[..., Outcome], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(providers.info(vendor).key_env[0], "placeholder-key")
    result = llmbulk("submit", str(QUICKSTART), "-p", vendor, "-m", MODELS[vendor], "--prompt", PROMPT)
    assert result.exit_code == 1 and result.stderr.strip().count("\n") == 0
    assert f"{variable} is not set" in result.stderr and "--base-url" in result.stderr


@pytest.mark.parametrize(
    ("vendor", "window", "exit_code"),
    [("doubleword", "1h", 0), ("groq", "7d", 0), ("groq", "8d", 2), ("openai", "1h", 2), ("anthropic", "24h", 2)],
)
def test_completion_window_is_checked_then_sent(
    vendor: str, window: str, exit_code: int, llmbulk: Callable[..., Outcome], home: Path
) -> None:
    result = llmbulk("submit", str(QUICKSTART), "-p", vendor, "-m", MODELS[vendor], "--prompt", PROMPT,
                     "--completion-window", window, "--emulate", "--json")  # fmt: skip
    assert result.exit_code == exit_code, result.stderr
    if exit_code:
        assert "--completion-window" in result.stderr and not (home / "emulator" / "batches").exists()
        return
    batches = [orjson.loads(p.read_bytes()) for p in (home / "emulator" / "batches").glob("*.json")]
    assert [b["completion_window"] for b in batches] == [window]


def test_a_base_url_with_credentials_is_refused(llmbulk: Callable[..., Outcome]) -> None:
    result = llmbulk("submit", str(QUICKSTART), "-p", "openai-compatible", "-m", "m", "--prompt", PROMPT,
                     "--base-url", "http://user:secret@localhost:4000/v1")  # fmt: skip
    assert result.exit_code == 2 and "credentials" in result.stderr and "secret" not in result.stderr


@pytest.mark.parametrize(("vendor", "n_tasks", "shards"), [("azure", 100_001, 2), ("nebius", 100_001, 1)])
def test_packing_follows_each_vendors_request_limit(vendor: str, n_tasks: int, shards: int, tmp_path: Path) -> None:
    """Azure: 100,000 requests per file (a 100,001st starts a second file); Nebius: 5,000,000."""
    adapter = providers.create(vendor, ProviderSettings(model=MODELS[vendor]))
    tasks = (Task(i, f"k{i}", [{"role": "user", "content": "ok?"}]) for i in range(n_tasks))
    limits = adapter.limits
    packed = list(write_shards(tasks, adapter.encode, "jpack1", limits, tmp_path, lambda _seq, _items: None))
    assert len(packed) == shards and sum(p.n_items for p in packed) == n_tasks
    assert all(p.n_items <= limits.max_items and p.n_bytes <= limits.max_bytes for p in packed)
    assert isinstance(limits, Limits) and limits.max_items == providers.limits(vendor).max_items


def test_costs_use_each_vendors_batch_rate_or_say_why_not() -> None:
    """Groq and Azure: the library's synchronous rate, halved per their batch docs (Azure lists no
    gpt-4o-mini of its own: the library lends OpenAI's, without its batch variant); DeepInfra,
    Nebius, Novita, Doubleword and gateways: unknown, with the reason."""
    for vendor, model in (("groq", "llama-3.1-8b-instant"), ("azure", "gpt-4o-mini")):
        batch, sync = costs.rates(vendor, model), costs.rates(vendor, model, batch=False)
        assert batch is not None and sync is not None and batch.input == pytest.approx(sync.input / 2)
        assert costs.unknown_reason(vendor, model) is None
    assert costs.rates("openai", "gpt-4o-mini").input == pytest.approx(costs.rates("azure", "gpt-4o-mini").input)
    for vendor in ("deepinfra", "nebius", "novita", "doubleword", "openai-compatible"):
        assert costs.rates(vendor, MODELS[vendor]) is None
        assert costs.unknown_reason(vendor, MODELS[vendor]) == providers.info(vendor).profile.price_note
    assert "not in the price library's groq list" in (costs.unknown_reason("groq", "no-such-model") or "")


def test_submit_notes_why_a_vendors_cost_is_unknown(llmbulk: Callable[..., Outcome]) -> None:
    result = llmbulk("submit", str(QUICKSTART), "-p", "nebius", "-m", MODELS["nebius"], "--prompt", PROMPT,
                     "--emulate", "--json")  # fmt: skip
    assert result.exit_code == 0 and "cost unknown: nebius is not in the price library" in result.stderr


def test_doctor_checks_each_profile_and_prices(
    llmbulk: Callable[..., Outcome], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GROQ_API_KEY", "placeholder-key")
    monkeypatch.setenv("GROQ_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens: the listing check fails
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "placeholder-key")
    result = llmbulk("doctor", "--json")
    checks = {c["check"]: c for c in orjson.loads(result.stdout)}
    assert checks["groq key"]["ok"] and "50% off" in checks["groq key"]["detail"]
    assert not checks["groq batch API"]["ok"] and "cannot reach groq" in checks["groq batch API"]["detail"]
    assert not checks["azure batch API"]["ok"] and "AZURE_OPENAI_ENDPOINT" in checks["azure batch API"]["detail"]
    assert not checks["nebius key"]["ok"] and "cost unknown" in checks["nebius key"]["detail"]
    assert checks["emulator"]["ok"] and all(v in checks["emulator"]["detail"] for v in VENDORS)
    assert "placeholder-key" not in result.stdout


def test_readme_profile_table_is_generated_from_the_profiles() -> None:
    readme = (ROOT / "README.md").read_text()
    assert vendor_table.markdown() in readme, (
        "regenerate: python -c 'from llmbulk.providers import vendor_table; print(vendor_table.markdown())'"
    )
    for vendor in VENDORS:
        assert f"| `{vendor}` |" in readme


@pytest.mark.parametrize("vendor", VENDORS)
def test_cancel_reaches_each_vendors_batches(
    vendor: str, llmbulk: Callable[..., Outcome], home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMBULK_EMULATOR_SECONDS", "30")  # still running when the cancel comes
    submitted = llmbulk("submit", str(QUICKSTART), "-p", vendor, "-m", MODELS[vendor], "--prompt", PROMPT,
                        "--emulate", "--json", "--max-items-per-batch", "20")  # fmt: skip
    assert submitted.exit_code == 0, submitted.stderr
    cancelled = llmbulk("cancel", submitted.json()["job_id"], "--json")
    assert cancelled.exit_code == 0, cancelled.stderr
    audit = [orjson.loads(line) for line in (home / "emulator" / "audit.jsonl").read_bytes().splitlines()]
    created = {e["id"] for e in audit if e["event"] == "batch.created"}
    assert len(created) == 3 and {e["id"] for e in audit if e["event"] == "batch.cancelled"} == created


def test_readme_same_job_on_three_vendors_runs_as_written(llmbulk: Callable[..., Outcome], home: Path) -> None:
    import re
    import shlex
    import subprocess
    import sys

    text = (ROOT / "README.md").read_text()
    section = text[text.index("**Same job, several vendors.**") :]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block
    lines = block.group(1).replace("\\\n", " ").strip().splitlines()
    runs = [shlex.split(line) for line in lines if line.startswith("llmbulk ")]
    assert [args[args.index("-p") + 1] for args in runs] == ["openai", "groq", "azure"]
    for args in runs:
        args = [a.replace("examples/", f"{ROOT}/examples/", 1) if a.startswith("examples/") else a for a in args]
        assert "--emulate" in args and llmbulk(*args[1:]).exit_code == 0
    compare = shlex.split(next(line for line in lines if line.startswith("python ")))
    shown = subprocess.run([sys.executable, *compare[1:]], cwd=home.parent, capture_output=True, text=True)
    assert shown.returncode == 0 and shown.stdout.startswith("50 of 50 rows answered by all three"), shown.stderr
