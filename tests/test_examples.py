"""Every example's README command runs offline on the emulator, as written, and produces its table."""

from __future__ import annotations

import csv
import re
import shlex
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import Outcome

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p.parent.name for p in (ROOT / "examples").glob("*/README.md") if p.parent.name != "ci")
EXPECTED_ROWS = {
    "quickstart": 50, "sentiment": 40, "marketing_emails": 24, "qa_generation": None, "code_review": None,
    "product_photos": 6, "invoices": 4,
}  # fmt: skip
# The attachment examples (#22) and the fields their schemas give each file.
ATTACHMENT_FIELDS = {
    "product_photos": ("category", "main_colour", "caption"),
    "invoices": ("invoice_number", "vendor", "invoice_date", "currency", "total"),
}
PROVIDERS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"}


def _command(example: str) -> list[str]:
    text = (ROOT / "examples" / example / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block, f"{example}/README.md has no bash block"
    command = " ".join(line.rstrip("\\").strip() for line in block.group(1).strip().splitlines())
    args = shlex.split(command)
    assert args[0] == "llmbulk" and "--emulate" in args
    return [a.replace("examples/", f"{ROOT}/examples/", 1) if a.startswith("examples/") else a for a in args[1:]]


def _rows(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_command_runs_as_written(example: str, llmbulk: Callable[..., Outcome], home: Path) -> None:
    args = _command(example)
    result = llmbulk(*args)
    assert result.exit_code == 0, result.stderr
    out = home.parent / args[args.index("--out") + 1]
    rows = _rows(out)
    assert rows and {r["status"] for r in rows} == {"succeeded"}
    if EXPECTED_ROWS.get(example):
        assert len(rows) == EXPECTED_ROWS[example]
    if example == "sentiment":  # structured: a label from the enum and a confidence in [0, 1] per post
        assert {r["out.label"] for r in rows} <= {"positive", "negative", "neutral"}
        assert all(0 <= float(r["out.confidence"]) <= 1 for r in rows)
    if "--explode" in args:
        field = args[args.index("--explode") + 1]
        assert any(r.get(f"out.{field}") for r in rows)


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
@pytest.mark.parametrize("example", sorted(ATTACHMENT_FIELDS))
def test_attachment_examples_run_on_every_provider(
    example: str, provider: str, llmbulk: Callable[..., Outcome], home: Path
) -> None:
    args = _command(example)
    args[args.index("--provider") + 1], args[args.index("--model") + 1] = provider, PROVIDERS[provider]
    result = llmbulk(*args)
    assert result.exit_code == 0, result.stderr
    rows = _rows(home.parent / args[args.index("--out") + 1])
    folder = Path(args[1])  # the input folder, one row per file
    assert sorted(r["path"] for r in rows) == sorted(p.name for p in folder.iterdir())  # one row per file
    assert {r["status"] for r in rows} == {"succeeded"}
    for row in rows:
        assert all(row[f"out.{name}"] != "" for name in ATTACHMENT_FIELDS[example]), row
    if example == "invoices":
        assert all(float(r["out.total"]) == float(r["out.total"]) for r in rows)  # a number, typed by the schema
        assert {r["out.currency"] for r in rows} <= {"EUR", "USD", "GBP", "other"}


def test_every_command_is_documented_in_the_readme() -> None:
    from llmbulk.cli import app

    readme = (ROOT / "README.md").read_text()
    names = [c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands]
    assert names
    for name in names:
        assert f"llmbulk {name}" in readme, f"`llmbulk {name}` is missing from README.md"
    assert "llmbulk emulator serve" in readme


def test_cli_is_a_thin_layer_over_the_api() -> None:
    source = "\n".join(path.read_text() for path in (ROOT / "llmbulk" / "cli").glob("*.py"))
    imported = set(re.findall(r"^\s*(?:from|import) (llmbulk[\w.]*)", source, re.M))
    allowed = {
        "llmbulk",
        "llmbulk.render",
        "llmbulk.config",
        "llmbulk.errors",
        "llmbulk.events",
        "llmbulk.emulator.cli",
        "llmbulk.cli",  # its own modules
        "llmbulk.cli.root",
        "llmbulk.cli.options",
        "llmbulk.cli.prompts",
        "llmbulk.providers",  # the registry's names, for completing --provider
        "llmbulk.views",  # the item states, for completing --state
        "llmbulk.reuse",  # parsing --reuse-max-age and --older-than
    }
    assert imported <= allowed, imported
