"""The bad-input promise: one clear `error:` line, the right exit code, no traceback, state untouched.

Every case runs the real CLI against one malformed input from `tests/bad_inputs/` (the committed
text files plus the binary and bulky ones `make_corpus.py` generates per session), then checks:
exit code (2 usage/input, 1 configuration/state), stderr is exactly one line starting with
`error:` that names what is wrong, no traceback, no job recorded, no shard or output file left
behind, and every pre-existing file (databases included) byte-identical. Most cases run in-process
through `CliRunner`; those marked `proc` run `python -m llmbulk` in a subprocess.
"""

from __future__ import annotations

import gc
import hashlib
import importlib.util
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmbulk.cli import app

CORPUS = Path(__file__).resolve().parent / "bad_inputs"
_spec = importlib.util.spec_from_file_location("make_corpus", CORPUS / "make_corpus.py")
assert _spec is not None and _spec.loader is not None
make_corpus = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_corpus)

COMMITTED = frozenset(p.name for p in CORPUS.iterdir() if p.is_file() and p.name != "make_corpus.py")
GENERATED = frozenset(make_corpus.BYTES) | frozenset(make_corpus.DATABASES)
CORPUS_FILES = COMMITTED | GENERATED

PROMPT = "Summarise this review: {{ text }}"
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"}
# Variables that must not leak in from the developer's shell.
SCRUBBED = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "GOOGLE_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_GEMINI_BASE_URL",
    "LLMBULK_DB",
    "LLMBULK_HOME",
    "LLMBULK_EMULATOR_FAULTS",
    "FORCE_COLOR",
    "TTY_COMPATIBLE",
)
# Obviously fake keys, for cases that must get past the key check to reach the rows; the base URLs
# point at the discard port, so a case that wrongly gets as far as the network fails fast and offline.
FAKE_KEYS = {
    "OPENAI_API_KEY": "fake-openai-key-for-bad-inputs",
    "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
    "ANTHROPIC_API_KEY": "fake-anthropic-key-for-bad-inputs",
    "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
}
STATE_DB_FILES = ("llmbulk.db", "llmbulk.db-wal", "llmbulk.db-shm", "llmbulk.db-journal")

Fragment = str | tuple[str, ...]  # a tuple means "any one of these"


@dataclass(frozen=True)
class Case:
    """One malformed input: the command, and what its error must look like."""

    args: tuple[str, ...]
    code: int
    fragments: tuple[Fragment, ...]
    env: dict[str, str] = field(default_factory=dict)
    setup: tuple[str, ...] = ()  # "job", "emulator", "newer_db:NAME", "dir:NAME", "fifo:NAME", "symlink:NAME=TARGET"
    files: tuple[str, ...] = ()  # corpus files to copy besides those named in args
    absent: tuple[str, ...] = ()  # text that must not appear anywhere in the output
    proc: bool = False  # run in a real subprocess

    def corpus_files(self) -> set[str]:
        named = {a for a in self.args if a in CORPUS_FILES}
        return named | set(self.files)


def case(
    id_: str,
    args: tuple[str, ...],
    code: int,
    *fragments: Fragment,
    keys: bool = False,
    env: dict[str, str] | None = None,
    setup: tuple[str, ...] = (),
    files: tuple[str, ...] = (),
    absent: tuple[str, ...] = (),
    proc: bool = False,
    xfail: str | None = None,
) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
    full_env = {**(FAKE_KEYS if keys else {}), **(env or {})}
    return pytest.param(Case(args, code, fragments, full_env, setup, files, absent, proc), id=id_, marks=marks)


def sub(input_: str, *extra: str, provider: str = "openai", prompt: str | None = PROMPT) -> tuple[str, ...]:
    """A `submit` command line."""
    prompt_args = ("--prompt", prompt) if prompt is not None else ()
    return ("submit", input_, "-p", provider, "-m", MODELS[provider], *prompt_args, *extra)


def run(input_: str, *extra: str) -> tuple[str, ...]:
    """A `run INPUT` command line on the emulator."""
    return ("run", input_, "-p", "openai", "-m", "gpt-4o-mini", "--prompt", PROMPT, "--emulate", *extra)


USAGE, CONFIG = 2, 1
# Checks the lead wires in api.py (see the h-safety report); strict, so they fail once they pass.

# fmt: off
CASES = [
    # ---- CSV ------------------------------------------------------------------------------
    case("csv-unclosed-quote", sub("csv_unclosed_quote.csv"), USAGE, "csv_unclosed_quote.csv", "line 4", keys=True, proc=True),  # noqa: E501
    case("csv-text-after-quote", sub("csv_text_after_quote.csv"), USAGE, "csv_text_after_quote.csv", "line 3", keys=True),  # noqa: E501
    case("csv-too-many-fields", sub("csv_too_many_fields.csv"), USAGE, "csv_too_many_fields.csv", "row 2", "3 fields", keys=True),  # noqa: E501
    case("csv-too-few-fields", sub("csv_too_few_fields.csv"), USAGE, "csv_too_few_fields.csv", "row 3", "1 field", keys=True),  # noqa: E501
    case("csv-duplicate-header", sub("csv_duplicate_header.csv"), USAGE, "csv_duplicate_header.csv", "'text' appears twice", keys=True),  # noqa: E501
    case("csv-bracketed-duplicate-header", sub("csv_bracket_header.csv"), USAGE, "csv_bracket_header.csv", "'[bold]'", keys=True),  # noqa: E501
    case("csv-invalid-utf8", sub("csv_invalid_utf8.csv"), USAGE, "csv_invalid_utf8.csv", "UTF-8", keys=True),
    case("csv-invalid-utf8-past-64k", sub("csv_invalid_utf8_late.csv"), USAGE, "csv_invalid_utf8_late.csv", ("byte 97778", "row 4000", "line 4001"), keys=True),  # noqa: E501
    case("csv-bom-only", sub("csv_bom_only.csv"), USAGE, "csv_bom_only.csv", "no rows", keys=True),
    case("csv-empty-file", sub("csv_empty.csv"), USAGE, "csv_empty.csv", "no rows", keys=True),
    case("csv-header-only", sub("csv_header_only.csv"), USAGE, "csv_header_only.csv", "no rows", keys=True),
    case("csv-blank-lines-only", sub("csv_blank_lines_only.csv"), USAGE, "csv_blank_lines_only.csv", "no rows", keys=True),  # noqa: E501
    case("csv-semicolon-delimited", sub("csv_semicolon_delimited.csv"), USAGE, "csv_semicolon_delimited.csv", "no column 'text'", keys=True),  # noqa: E501
    case("tsv-named-csv", sub("tsv_with_csv_extension.csv"), USAGE, "tsv_with_csv_extension.csv", "no column 'text'", keys=True),  # noqa: E501
    case("prompt-variable-missing", sub("csv_no_text_column.csv"), USAGE, "csv_no_text_column.csv", "{{ text }}", "no column 'text'", keys=True),  # noqa: E501
    case("system-variable-missing", sub("valid.csv", "--system", "You are {{ persona }}."), USAGE, "system template", "no column 'persona'", keys=True),  # noqa: E501
    case("id-column-missing", sub("valid.csv", "--id-column", "review_id"), USAGE, "valid.csv", "no id column 'review_id'", keys=True),  # noqa: E501
    case("csv-empty-id", sub("csv_empty_id.csv", "--id-column", "id"), USAGE, "csv_empty_id.csv", "row 3", "empty id", keys=True),  # noqa: E501
    case("csv-dup-ids-adjacent", sub("csv_dup_ids_adjacent.csv", "--id-column", "id"), USAGE, "duplicate id 'r2'", "rows 2 and 3", keys=True),  # noqa: E501
    case("csv-dup-ids-far-apart", sub("csv_dup_ids_far.csv", "--id-column", "id"), USAGE, "duplicate id 'r5'", "rows 5 and 600", keys=True),  # noqa: E501
    case("csv-dup-ids-insert-chunks", sub("csv_dup_ids_chunks.csv", "--id-column", "id"), USAGE, "duplicate id 'r7'", "rows 7 and 24993", keys=True),  # noqa: E501
    case("csv-dup-ids-across-shards", sub("csv_dup_ids_across_shards.csv", "--id-column", "id", "--max-items-per-batch", "10"), USAGE, "duplicate id 'r3'", "rows 3 and 38", keys=True),  # noqa: E501
    case("request-over-size-cap", sub("csv_oversized_row.csv", "--max-bytes-per-batch", "2000"), USAGE, "row 2", "2,000-byte limit", keys=True),  # noqa: E501
    # ---- JSONL ----------------------------------------------------------------------------
    case("jsonl-bad-line-in-middle", sub("jsonl_bad_line_middle.jsonl"), USAGE, "jsonl_bad_line_middle.jsonl", "line 3", keys=True),  # noqa: E501
    case("jsonl-truncated-last-line", sub("jsonl_truncated_last_line.jsonl"), USAGE, "jsonl_truncated_last_line.jsonl", "line 2", keys=True),  # noqa: E501
    case("jsonl-line-is-array", sub("jsonl_array_line.jsonl"), USAGE, "jsonl_array_line.jsonl", "line 2", "not an object", keys=True),  # noqa: E501
    case("jsonl-line-is-string", sub("jsonl_string_line.jsonl"), USAGE, "jsonl_string_line.jsonl", "line 2", "not an object", keys=True),  # noqa: E501
    case("jsonl-line-is-number", sub("jsonl_number_line.jsonl"), USAGE, "jsonl_number_line.jsonl", "line 4", "not an object", keys=True),  # noqa: E501
    case("jsonl-line-is-null", sub("jsonl_null_line.jsonl"), USAGE, "jsonl_null_line.jsonl", "line 2", "not an object", keys=True),  # noqa: E501
    case("jsonl-blank-lines-only", sub("jsonl_blank_lines_only.jsonl"), USAGE, "jsonl_blank_lines_only.jsonl", "no rows", keys=True),  # noqa: E501
    case("jsonl-empty-file", sub("jsonl_empty.jsonl"), USAGE, "jsonl_empty.jsonl", "no rows", keys=True),
    case("jsonl-bom-only", sub("jsonl_bom_only.jsonl"), USAGE, "jsonl_bom_only.jsonl", "line 1", keys=True),
    case("jsonl-invalid-utf8", sub("jsonl_invalid_utf8.jsonl"), USAGE, "jsonl_invalid_utf8.jsonl", "line 2", "UTF-8", keys=True, proc=True),  # noqa: E501
    case("jsonl-row-lacks-variable", sub("jsonl_missing_field_row3.jsonl"), USAGE, "jsonl_missing_field_row3.jsonl", "row 3", "'text' is undefined", keys=True),  # noqa: E501
    case("jsonl-null-id", sub("jsonl_null_id.jsonl", "--id-column", "id"), USAGE, "jsonl_null_id.jsonl", "row 2", "empty id", keys=True),  # noqa: E501
    case("jsonl-dup-ids-7-and-string-7", sub("jsonl_dup_ids_number_vs_string.jsonl", "--id-column", "id"), USAGE, "duplicate id '7'", "rows 1 and 3", keys=True),  # noqa: E501
    case("csv-content-named-jsonl", sub("csv_as_jsonl.jsonl"), USAGE, "csv_as_jsonl.jsonl", "line 1", keys=True),
    case("jsonl-read-as-parquet", sub("valid.jsonl", "--input-format", "parquet"), USAGE, "valid.jsonl", "not a readable Parquet file", keys=True),  # noqa: E501
    case("csv-read-as-jsonl", sub("valid.csv", "--input-format", "jsonl"), USAGE, "valid.csv", "line 1", keys=True),
    # ---- tasks JSONL (no --prompt) ---------------------------------------------------------
    case("tasks-without-messages", sub("tasks_no_messages.jsonl", prompt=None), USAGE, "tasks_no_messages.jsonl", "row 1", '"messages"', keys=True),  # noqa: E501
    case("tasks-message-without-role", sub("tasks_message_no_role.jsonl", prompt=None), USAGE, "tasks_message_no_role.jsonl", "row 2", '"role"', keys=True),  # noqa: E501
    case("tasks-messages-is-string", sub("tasks_messages_is_string.jsonl", prompt=None), USAGE, "tasks_messages_is_string.jsonl", "row 1", '"messages"', keys=True),  # noqa: E501
    case("tasks-messages-empty", sub("tasks_messages_empty.jsonl", prompt=None), USAGE, "tasks_messages_empty.jsonl", "row 1", '"messages"', keys=True),  # noqa: E501
    case("tasks-dup-ids", sub("tasks_dup_ids.jsonl", prompt=None), USAGE, "duplicate id 't1'", "rows 1 and 2", keys=True),  # noqa: E501
    case("tasks-only-system-anthropic", sub("tasks_only_system.jsonl", provider="anthropic", prompt=None), USAGE, "item 't1'", "no user or assistant message", keys=True),  # noqa: E501
    case("tasks-tool-role-anthropic", sub("tasks_tool_role.jsonl", provider="anthropic", prompt=None), USAGE, "item 't1'", "role 'tool'", keys=True),  # noqa: E501
    # ---- Parquet ---------------------------------------------------------------------------
    case("parquet-that-is-csv", sub("parquet_is_csv.parquet"), USAGE, "parquet_is_csv.parquet", "not a readable Parquet file", keys=True),  # noqa: E501
    case("parquet-truncated", sub("parquet_truncated.parquet"), USAGE, "parquet_truncated.parquet", "not a readable Parquet file", keys=True, proc=True),  # noqa: E501
    case("parquet-zero-rows", sub("parquet_zero_rows.parquet"), USAGE, "parquet_zero_rows.parquet", "no rows", keys=True),  # noqa: E501
    case("parquet-zero-bytes", sub("parquet_empty.parquet"), USAGE, "parquet_empty.parquet", "not a readable Parquet file", keys=True),  # noqa: E501
    case("parquet-null-id", sub("parquet_null_id.parquet", "--id-column", "id"), USAGE, "parquet_null_id.parquet", "row 2", "empty id", keys=True),  # noqa: E501
    case("parquet-dup-ids", sub("parquet_dup_ids.parquet", "--id-column", "id"), USAGE, "duplicate id 'r1'", "rows 1 and 3", keys=True),  # noqa: E501
    case("parquet-variable-missing", sub("parquet_no_text_column.parquet"), USAGE, "parquet_no_text_column.parquet", "no column 'text'", keys=True),  # noqa: E501
    # ---- prompt templates ------------------------------------------------------------------
    case("prompt-syntax-error", sub("valid.csv", prompt="Summarise {{ text "), USAGE, "prompt template", "line 1", keys=True),  # noqa: E501
    case("prompt-file-syntax-error", sub("valid.csv", "--prompt-file", "prompt_syntax_error.j2", prompt=None), USAGE, "prompt_syntax_error.j2", "line 1", keys=True),  # noqa: E501
    case("prompt-file-unknown-filter", sub("valid.csv", "--prompt-file", "prompt_unknown_filter.j2", prompt=None), USAGE, "shout", keys=True, proc=True),  # noqa: E501
    case("prompt-file-include", sub("valid.csv", "--prompt-file", "prompt_include.j2", prompt=None), USAGE, "header.j2", keys=True),  # noqa: E501
    case("prompt-file-type-error", sub("valid.csv", "--prompt-file", "prompt_type_error.j2", prompt=None), USAGE, "row 1", keys=True),  # noqa: E501
    case("prompt-file-invalid-utf8", sub("valid.csv", "--prompt-file", "prompt_invalid_utf8.j2", prompt=None), USAGE, "prompt_invalid_utf8.j2", keys=True),  # noqa: E501
    case("prompt-attribute-of-string", sub("valid.csv", prompt="{{ text.words.first }}"), USAGE, "valid.csv", "row 1", keys=True),  # noqa: E501
    case("prompt-file-missing", sub("valid.csv", "--prompt-file", "no_such_prompt.j2", prompt=None), USAGE, "no_such_prompt.j2", keys=True),  # noqa: E501
    case("prompt-file-is-directory", sub("valid.csv", "--prompt-file", "prompts", prompt=None), USAGE, "prompts", "directory", keys=True, setup=("dir:prompts",)),  # noqa: E501
    case("prompt-and-prompt-file", sub("valid.csv", "--prompt-file", "prompt_syntax_error.j2"), USAGE, "--prompt-file", keys=True),  # noqa: E501
    case("no-prompt-for-csv", sub("valid.csv", prompt=None), USAGE, "--prompt", keys=True),
    # ---- the input path ----------------------------------------------------------------------
    case("input-missing", sub("no_such_input.csv"), USAGE, "no_such_input.csv", "does not exist"),
    case("input-is-directory-read-as-csv", sub("inputs", "--input-format", "csv"), USAGE, "inputs", "directory", setup=("dir:inputs",)),  # noqa: E501
    case("input-is-empty-directory", sub("inputs", prompt="Review: {{ content }}"), USAGE, "inputs", "no rows", keys=True, setup=("dir:inputs",)),  # noqa: E501
    case("input-unknown-extension", sub("notes.txt"), USAGE, "notes.txt", "extension"),
    case("input-format-unknown", sub("valid.csv", "--input-format", "xml"), USAGE, "'xml'"),
    case("input-name-with-brackets", sub("reviews[draft].csv"), USAGE, "reviews[draft].csv"),
    case("input-name-with-closing-tag", sub("reviews[/draft].csv"), USAGE, "reviews[/draft].csv"),
    # ---- options -----------------------------------------------------------------------------
    case("provider-unknown", ("submit", "valid.csv", "-p", "openia", "-m", "gpt-4o-mini", "--prompt", PROMPT), USAGE, "'openia'"),  # noqa: E501
    case("model-empty", ("submit", "valid.csv", "-p", "openai", "-m", "", "--prompt", PROMPT), USAGE, "--model"),
    case("key-missing-openai", sub("valid.csv"), CONFIG, "OPENAI_API_KEY", "--emulate", proc=True),
    case("key-missing-anthropic", sub("valid.csv", provider="anthropic"), CONFIG, "ANTHROPIC_API_KEY"),
    case("key-missing-gemini", sub("valid.csv", provider="gemini"), CONFIG, "GOOGLE_API_KEY"),
    case("max-items-per-batch-zero", sub("valid.csv", "--max-items-per-batch", "0"), USAGE, "--max-items-per-batch"),
    case("max-bytes-per-batch-negative", sub("valid.csv", "--max-bytes-per-batch", "-5"), USAGE, "--max-bytes-per-batch"),  # noqa: E501
    case("max-attempts-zero", sub("valid.csv", "--max-attempts", "0"), USAGE, "--max-attempts"),
    case("param-without-equals", sub("valid.csv", "--param", "temperature"), USAGE, "--param", "'temperature'"),
    case("endpoint-unknown", sub("valid.csv", "--endpoint", "/v1/completions"), USAGE, "'/v1/completions'", keys=True),
    case("gemini-inline-on-openai", sub("valid.csv", "--gemini-inline"), USAGE, "--gemini-inline", keys=True),
    case("anthropic-max-tokens-zero", sub("valid.csv", "--max-tokens", "0", provider="anthropic"), USAGE, "max_tokens", keys=True),  # noqa: E501
    case("anthropic-param-stream", sub("valid.csv", "--param", "stream=true", provider="anthropic"), USAGE, "'stream'", keys=True),  # noqa: E501
    case("max-attempts-not-a-number", sub("valid.csv", "--max-attempts", "three"), USAGE, "--max-attempts"),
    case("model-option-missing", ("submit", "valid.csv", "-p", "openai", "--prompt", PROMPT), USAGE, "--model"),
    # ---- --schema: checked completely before anything is sent ---------------------------------
    case("schema-dangling-ref", sub("valid.csv", "--schema", "schema_dangling_ref.json"), USAGE, "schema_dangling_ref.json", "'#/$defs/missing'", "/properties/label/$ref", keys=True),  # noqa: E501
    case("schema-remote-ref", sub("valid.csv", "--schema", "schema_remote_ref.json"), USAGE, "schema_remote_ref.json", "https://schemas.example.com/label.json", "outside the schema", keys=True),  # noqa: E501
    case("schema-root-refers-to-itself", sub("valid.csv", "--schema", "schema_root_self_ref.json"), USAGE, "schema_root_self_ref.json", "/$ref", "no finite answer", keys=True),  # noqa: E501
    case("schema-required-self-reference", sub("valid.csv", "--schema", "schema_recursive_required.json", provider="gemini"), USAGE, "schema_recursive_required.json", "/properties/next/$ref", "no finite answer", keys=True),  # noqa: E501
    case("schema-not-a-valid-json-schema", sub("valid.csv", "--schema", "schema_invalid_type.json"), USAGE, "schema_invalid_type.json", "/properties/label/type", "'strin'", keys=True),  # noqa: E501
    case("schema-unknown-dialect", sub("valid.csv", "--schema", "schema_unknown_dialect.json"), USAGE, "schema_unknown_dialect.json", "/$schema", keys=True),  # noqa: E501
    case("schema-invalid-utf8", sub("valid.csv", "--schema", "schema_invalid_utf8.json"), USAGE, "schema_invalid_utf8.json", "UTF-8", "byte 38", keys=True, proc=True),  # noqa: E501
    case("schema-nested-too-deeply", sub("valid.csv", "--schema", "schema_too_deep.json"), USAGE, "schema_too_deep.json", "nested too deeply", keys=True),  # noqa: E501
    case("schema-missing-file", sub("valid.csv", "--schema", "no_such_schema.json"), USAGE, "no_such_schema.json", "no such file", keys=True),  # noqa: E501
    case("schema-is-a-fifo", sub("valid.csv", "--schema", "pipe.json"), USAGE, "pipe.json", "FIFO", keys=True, setup=("fifo:pipe.json",), proc=True),  # noqa: E501
    case("schema-links-to-dev-zero", sub("valid.csv", "--schema", "zero.json"), USAGE, "zero.json", "character device", keys=True, setup=("symlink:zero.json=/dev/zero",), proc=True),  # noqa: E501
    case("run-schema-dangling-ref", run("valid.csv", "--schema", "schema_dangling_ref.json", "--out", "out.csv"), USAGE, "'#/$defs/missing'", setup=("emulator",)),  # noqa: E501
    case("schema-openai-strict-recursion-without-stop", sub("valid.csv", "--schema", "schema_recursive_optional.json"), USAGE, "OpenAI strict mode", "/properties/next/$ref", keys=True),  # noqa: E501
    case("schema-anthropic-recursive", sub("valid.csv", "--schema", "schema_recursive_optional.json", provider="anthropic"), USAGE, "recursive", "Anthropic", keys=True),  # noqa: E501
    case("schema-anthropic-type-list", sub("valid.csv", "--schema", "schema_type_list.json", provider="anthropic"), USAGE, "schema_type_list.json", "Anthropic", keys=True),  # noqa: E501
    # ---- --param and the sampling options ------------------------------------------------------
    case("param-messages", sub("valid.csv", "--param", "messages=[]"), USAGE, "--param messages=[]", "'messages'"),
    case("param-model", sub("valid.csv", "--param", 'model="gpt-4o"'), USAGE, "'model'", "--model"),
    case("param-value-not-json", sub("valid.csv", "--param", "stop=END"), USAGE, "--param stop=END", "not JSON", """--param stop='"END"'"""),  # noqa: E501
    case("param-empty-name", sub("valid.csv", "--param", "=1"), USAGE, "--param =1", "name is empty"),
    case("param-name-with-space", sub("valid.csv", "--param", "top k=40"), USAGE, "'top k'"),
    case("param-json-schema", sub("valid.csv", "--param", 'json_schema={"type": "object"}'), USAGE, "'json_schema'", "--schema"),  # noqa: E501
    case("param-max-completion-tokens", sub("valid.csv", "--param", "max_completion_tokens=50"), USAGE, "'max_completion_tokens'", "--max-tokens"),  # noqa: E501
    case("param-several-answers", sub("valid.csv", "--param", "n=3"), USAGE, "--param n=3", "one answer"),
    case("param-also-set-by-option", sub("valid.csv", "--temperature", "0.5", "--param", "temperature=1"), USAGE, "--param temperature=1", "--temperature"),  # noqa: E501
    case("param-temperature-string", sub("valid.csv", "--param", 'temperature="hot"'), USAGE, "temperature", '"hot"'),
    case("param-max-tokens-float", sub("valid.csv", "--param", "max_tokens=2.5"), USAGE, "max_tokens", "whole number"),
    case("max-tokens-negative", sub("valid.csv", "--max-tokens", "-5"), USAGE, "--max-tokens -5", "at least 1"),
    case("max-tokens-zero", sub("valid.csv", "--max-tokens", "0"), USAGE, "--max-tokens 0", "at least 1"),
    case("temperature-nan", sub("valid.csv", "--temperature", "nan"), USAGE, "--temperature nan", "from 0 to 2"),
    case("temperature-infinite", sub("valid.csv", "--temperature", "inf"), USAGE, "--temperature inf"),
    case("temperature-negative", sub("valid.csv", "--temperature", "-0.5"), USAGE, "--temperature -0.5"),
    case("temperature-anthropic", sub("valid.csv", "--temperature", "0.5", provider="anthropic"), USAGE, "--temperature", "temperature is not accepted by anthropic"),  # noqa: E501
    case("top-p-over-1", sub("valid.csv", "--top-p", "1.5"), USAGE, "--top-p 1.5", "from 0 to 1"),
    case("top-p-negative", sub("valid.csv", "--top-p", "-0.1"), USAGE, "--top-p -0.1"),
    case("prompt-empty", sub("valid.csv", prompt=""), USAGE, "--prompt is empty"),
    case("prompt-whitespace-only", sub("valid.csv", prompt="  \n "), USAGE, "--prompt is empty"),
    case("prompt-file-empty", sub("valid.csv", "--prompt-file", "prompt_empty.j2", prompt=None), USAGE, "prompt_empty.j2", "empty"),  # noqa: E501
    case("run-param-model", run("valid.csv", "--param", 'model="gpt-4o"', "--out", "out.csv"), USAGE, "'model'", setup=("emulator",)),  # noqa: E501
    # ---- tasks rows ----------------------------------------------------------------------------
    case("tasks-content-is-a-number", sub("tasks_content_number.jsonl", prompt=None), USAGE, "tasks_content_number.jsonl", "row 2", "JSON number", keys=True),  # noqa: E501
    case("tasks-role-wizard", sub("tasks_role_wizard.jsonl", prompt=None), USAGE, "tasks_role_wizard.jsonl", "row 1", "'wizard'", keys=True),  # noqa: E501
    case("tasks-content-empty-list", sub("tasks_content_empty_list.jsonl", prompt=None), USAGE, "tasks_content_empty_list.jsonl", "row 1", "empty list", keys=True),  # noqa: E501
    case("tasks-row-temperature-string", sub("tasks_row_temperature_string.jsonl", prompt=None), USAGE, "tasks_row_temperature_string.jsonl", "row 2", '"temperature"', keys=True),  # noqa: E501
    case("tasks-row-max-tokens-negative", sub("tasks_row_max_tokens_negative.jsonl", prompt=None, provider="anthropic"), USAGE, "tasks_row_max_tokens_negative.jsonl", "row 1", '"max_tokens"', keys=True),  # noqa: E501
    case("tasks-system-is-a-number", sub("tasks_system_number.jsonl", prompt=None), USAGE, "tasks_system_number.jsonl", "row 1", '"system"', keys=True),  # noqa: E501
    # ---- files that are not regular files, and formats -----------------------------------------------
    case("parquet-duplicate-columns", sub("parquet_duplicate_columns.parquet"), USAGE, "parquet_duplicate_columns.parquet", "'text' appears twice", keys=True),  # noqa: E501
    case("input-is-a-fifo", sub("pipe.csv"), USAGE, "pipe.csv", "FIFO", keys=True, setup=("fifo:pipe.csv",), proc=True),
    case("input-dev-zero-read-as-csv", sub("/dev/zero", "--input-format", "csv"), USAGE, "/dev/zero", "character device", keys=True, proc=True),  # noqa: E501
    case("input-links-to-dev-zero", sub("zero.jsonl"), USAGE, "zero.jsonl", "character device", keys=True, setup=("symlink:zero.jsonl=/dev/zero",), proc=True),  # noqa: E501
    case("prompt-file-is-a-fifo", sub("valid.csv", "--prompt-file", "pipe.j2", prompt=None), USAGE, "pipe.j2", "FIFO", keys=True, setup=("fifo:pipe.j2",), proc=True),  # noqa: E501
    case("prompt-file-dev-zero", sub("valid.csv", "--prompt-file", "/dev/zero", prompt=None), USAGE, "/dev/zero", "character device", keys=True, proc=True),  # noqa: E501
    case("run-out-format-contradicts-extension", run("valid.csv", "--out", "o.csv", "--format", "parquet"), USAGE, "o.csv", "parquet", setup=("emulator",)),  # noqa: E501
    case("collect-out-format-contradicts-extension", ("collect", "{job}", "--out", "o.jsonl", "--format", "csv"), USAGE, "o.jsonl", "csv", setup=("job",)),  # noqa: E501
    # ---- hooks ---------------------------------------------------------------------------------------
    case("run-webhook-not-http", run("valid.csv", "--webhook", "file:///etc/passwd", "--out", "out.csv"), USAGE, "--webhook file:///etc/passwd", "http", setup=("emulator",)),  # noqa: E501
    case("run-webhook-without-host", run("valid.csv", "--webhook", "https://hookuser:s3cretpw@/hook?token=t0psecret", "--out", "out.csv"), USAGE, "--webhook https://***@/hook?token=***", "no host", absent=("s3cretpw", "t0psecret", "hookuser"), setup=("emulator",)),  # noqa: E501
    # ---- run ---------------------------------------------------------------------------------
    case("run-input-without-provider", ("run", "valid.csv", "--prompt", PROMPT, "--out", "out.csv"), USAGE, "--provider"),  # noqa: E501
    case("run-malformed-csv", ("run", "csv_unclosed_quote.csv", "-p", "openai", "-m", "gpt-4o-mini", "--prompt", PROMPT, "--out", "out.csv"), USAGE, "csv_unclosed_quote.csv", "line 4", keys=True, proc=True),  # noqa: E501
    case("run-unknown-job", ("run", "jnosuch"), USAGE, "'jnosuch'"),
    case("run-input-unknown-format", run("valid.csv", "--format", "xml"), USAGE, "'xml'", setup=("emulator",)),
    case("run-input-out-unknown-extension", run("valid.csv", "--out", "results.txt"), USAGE, "results.txt", setup=("emulator",)),  # noqa: E501
    case("run-input-stdout-as-csv", run("valid.csv", "--out", "-", "--format", "csv"), USAGE, "stdout", setup=("emulator",)),  # noqa: E501
    case("run-notify-on-unknown", run("valid.csv", "--notify-on", "sometimes", "--out", "out.csv"), USAGE, "sometimes", setup=("emulator",)),  # noqa: E501
    # ---- job commands --------------------------------------------------------------------------
    case("status-unknown-job", ("status", "jnosuch"), USAGE, "'jnosuch'", proc=True),
    case("collect-unknown-job", ("collect", "jnosuch", "--out", "out.csv"), USAGE, "'jnosuch'"),
    case("retry-unknown-job", ("retry", "jnosuch"), USAGE, "'jnosuch'"),
    case("cancel-unknown-job", ("cancel", "jnosuch"), USAGE, "'jnosuch'"),
    case("items-unknown-job", ("items", "jnosuch"), USAGE, "'jnosuch'"),
    case("cost-unknown-job", ("cost", "jnosuch"), USAGE, "'jnosuch'"),
    case("stats-unknown-job", ("stats", "jnosuch"), USAGE, "'jnosuch'"),
    case("items-unknown-state", ("items", "jnosuch", "--state", "bogus"), USAGE, "'bogus'"),
    case("items-unknown-state-real-job", ("items", "{job}", "--state", "bogus"), USAGE, "'bogus'", setup=("job",)),
    case("collect-unknown-format", ("collect", "{job}", "--format", "xml"), USAGE, "'xml'", setup=("job",)),
    case("collect-stdout-as-csv", ("collect", "{job}", "--out", "-", "--format", "csv"), USAGE, "stdout", setup=("job",)),  # noqa: E501
    case("collect-out-in-proc", ("collect", "{job}", "--out", "/proc/x.csv"), USAGE, "/proc/x.csv", setup=("job",)),
    case("collect-out-under-a-file", ("collect", "{job}", "--out", "valid.csv/x.csv"), USAGE, "valid.csv/x.csv", setup=("job",)),  # noqa: E501
    case("collect-out-unknown-extension", ("collect", "{job}", "--out", "results.txt"), USAGE, "results.txt", setup=("job",)),  # noqa: E501
    case("collect-existing-out-bad-format", ("collect", "{job}", "--out", "done.csv", "--format", "xml"), USAGE, "'xml'", setup=("job",)),  # noqa: E501
    case("items-out-in-proc", ("items", "{job}", "--state", "dead", "--out", "/proc/dead.csv"), USAGE, "/proc/dead.csv", setup=("job",)),  # noqa: E501
    case("run-job-unknown-format", ("run", "{job}", "--format", "xml"), USAGE, "'xml'", setup=("job",)),
    # ---- the state database --------------------------------------------------------------------
    case("db-garbage", ("jobs", "--db", "garbage.db"), CONFIG, "garbage.db", "not a database", proc=True),
    case("db-garbage-via-env-on-submit", sub("valid.csv"), CONFIG, "garbage.db", keys=True, env={"LLMBULK_DB": "garbage.db"}, files=("garbage.db",)),  # noqa: E501
    case("db-truncated", ("jobs", "--db", "truncated.db"), CONFIG, "truncated.db", "malformed"),
    case("db-newer-schema", ("jobs", "--db", "newer.db"), CONFIG, "newer.db", "9999_future", setup=("newer_db:newer.db",), proc=True),  # noqa: E501
    case("db-newer-schema-on-submit", (*sub("valid.csv"), "--db", "newer.db"), CONFIG, "newer.db", "9999_future", keys=True, setup=("newer_db:newer.db",)),  # noqa: E501
    case("db-newer-schema-on-status", ("status", "jnosuch", "--db", "newer.db"), CONFIG, "9999_future", setup=("newer_db:newer.db",)),  # noqa: E501
    case("db-is-directory", ("jobs", "--db", "statedir"), CONFIG, "statedir", "directory", setup=("dir:statedir",)),
    case("db-under-a-file", ("jobs", "--db", "valid.csv/state.db"), CONFIG, "valid.csv/state.db", files=("valid.csv",)),
    case("db-of-another-program", ("jobs", "--db", "other_app.db"), CONFIG, "other_app.db"),
    case("db-url-unknown-dialect", ("jobs", "--db", "nosuchdialect://x"), CONFIG, "nosuchdialect"),
    case("db-postgres-password-in-query", ("jobs", "--db", "postgresql+psycopg://bulk@127.0.0.1:9/llmbulk?sslmode=disable&password=s3cretpw"), CONFIG, "bulk@127.0.0.1:9", "password=***", absent=("s3cretpw",)),  # noqa: E501
    case("db-postgres-password-in-query-on-submit", (*sub("valid.csv"), "--db", "postgresql+psycopg://bulk:pw1@127.0.0.1:9/llmbulk?password=s3cretpw"), CONFIG, "bulk:***@127.0.0.1:9", absent=("s3cretpw", "pw1@"), keys=True),  # noqa: E501
    case("db-postgres-unreachable", ("jobs", "--db", "postgresql+psycopg://bulk:s3cretpw@127.0.0.1:9/llmbulk"), CONFIG, "bulk:***@127.0.0.1:9", absent=("s3cretpw",)),  # noqa: E501
    case("home-is-a-file", ("jobs",), CONFIG, "valid.csv", env={"LLMBULK_HOME": "valid.csv"}, files=("valid.csv",)),
]
# fmt: on


# ---- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed corpus plus the generated members, in one session directory."""
    root = tmp_path_factory.mktemp("bad_inputs")
    for name in COMMITTED:
        shutil.copy2(CORPUS / name, root / name)
    return make_corpus.make_corpus(root)


def _need_emulator() -> None:
    try:
        import llmbulk.emulator  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"needs the emulator, which does not import yet: {exc}")


def _isolate(mp: pytest.MonkeyPatch, cwd: Path, env: dict[str, str] | None = None) -> None:
    for var in SCRUBBED:
        mp.delenv(var, raising=False)
    mp.setenv("LLMBULK_HOME", str(cwd / ".llmbulk"))
    mp.setenv("LLMBULK_EMULATOR_SECONDS", "0")
    mp.setenv("COLUMNS", "300")
    for name, value in (env or {}).items():
        mp.setenv(name, value)
    mp.chdir(cwd)


@pytest.fixture(scope="session")
def emulated_job(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> tuple[Path, str]:
    """A finished emulated job (its state directory and id), collected once into done.csv."""
    _need_emulator()
    root = tmp_path_factory.mktemp("emulated_job")
    shutil.copy2(corpus / "valid.csv", root / "valid.csv")
    with pytest.MonkeyPatch.context() as mp:
        _isolate(mp, root)
        submitted = _in_process((*sub("valid.csv", "--id-column", "id", "--emulate", "--json"),))
        assert submitted.code == 0, submitted.stderr
        job_id = json.loads(submitted.stdout)["job_id"]
        collected = _in_process(("collect", job_id, "--out", "done.csv"))
        assert collected.code == 0, collected.stderr
    return root, job_id


# ---- running the CLI -----------------------------------------------------------------------------


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str


def _in_process(args: tuple[str, ...]) -> Outcome:
    result = CliRunner().invoke(app, list(args), catch_exceptions=True)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))  # what a real process would print
    return Outcome(result.exit_code, result.stdout, stderr)


def _subprocess(args: tuple[str, ...], cwd: Path, env: dict[str, str]) -> Outcome:
    full_env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    full_env.update(LLMBULK_HOME=str(cwd / ".llmbulk"), LLMBULK_EMULATOR_SECONDS="0", COLUMNS="300", **env)
    proc = subprocess.run(
        [sys.executable, "-m", "llmbulk", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120
    )
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


# ---- state snapshots -----------------------------------------------------------------------------


def _files(root: Path) -> dict[str, str]:
    """sha256 of every file under root (and every job directory), except the default state database."""
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        parts = rel.parts
        if parts[:1] == (".llmbulk",) and (parts[1:2] == ("emulator",) or parts[1:] in [(n,) for n in STATE_DB_FILES]):
            continue
        if path.is_file():
            found[rel.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.is_dir() and parts[:2] == (".llmbulk", "jobs") and len(parts) > 2:
            found[rel.as_posix() + "/"] = "dir"
    return found


def _jobs(root: Path) -> list[dict[str, Any]] | None:
    """`llmbulk jobs --json` on the default state database, or None when there is none."""
    home = root / ".llmbulk"
    if not (home / "llmbulk.db").is_file():
        return None
    listed = _in_process(("jobs", "--json", "--home", str(home), "--db", str(home / "llmbulk.db")))
    assert listed.code == 0, listed.stderr
    return json.loads(listed.stdout)


def _setup(case_: Case, cwd: Path, corpus: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    """Copy the case's corpus files and build what it needs; returns placeholder values."""
    values: dict[str, str] = {}
    for name in sorted(case_.corpus_files()):
        shutil.copy2(corpus / name, cwd / name)
    for step in case_.setup:
        kind, _, arg = step.partition(":")
        if kind == "dir":
            (cwd / arg).mkdir()
        elif kind == "fifo":
            os.mkfifo(cwd / arg)  # reading it would block: no writer ever comes
        elif kind == "symlink":
            name, _, target = arg.partition("=")
            (cwd / name).symlink_to(target)
        elif kind == "emulator":
            _need_emulator()
        elif kind == "job":
            root, job_id = request.getfixturevalue("emulated_job")
            shutil.copytree(root / ".llmbulk", cwd / ".llmbulk")
            for name in ("valid.csv", "done.csv"):
                shutil.copy2(root / name, cwd / name)
            values["job"] = job_id
        elif kind == "newer_db":
            from llmbulk.store import Store

            Store.open(f"sqlite:///{cwd / arg}").close()
            conn = sqlite3.connect(cwd / arg)
            with conn:
                conn.execute("INSERT INTO schema_migrations (name, applied_at) VALUES ('9999_future', 0)")
            conn.close()
        else:  # pragma: no cover - a typo in CASES
            raise AssertionError(f"unknown setup step {step!r}")
    return values


# ---- the tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("case_", CASES)
def test_bad_input_is_refused_cleanly(
    case_: Case, tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    _isolate(monkeypatch, tmp_path)
    values = _setup(case_, tmp_path, corpus, request)
    args = tuple(a.replace("{job}", values["job"]) if "job" in values else a for a in case_.args)
    files_before, jobs_before = _files(tmp_path), _jobs(tmp_path)

    if case_.proc:
        outcome = _subprocess(args, tmp_path, case_.env)
    else:
        for name, value in case_.env.items():
            monkeypatch.setenv(name, value)
        outcome = _in_process(args)
        monkeypatch.setenv("LLMBULK_HOME", str(tmp_path / ".llmbulk"))
        gc.collect()  # a refused engine is left to the collector, which closes its SQLite -wal/-shm files

    shown = f"exit {outcome.code}\n--- stdout\n{outcome.stdout}\n--- stderr\n{outcome.stderr}"
    assert "Traceback" not in outcome.stdout + outcome.stderr, shown
    assert outcome.code != 0, shown
    assert outcome.code == case_.code, shown
    lines = outcome.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), shown
    for fragment in case_.fragments:
        options = (fragment,) if isinstance(fragment, str) else fragment
        assert any(option in lines[0] for option in options), f"{fragment!r} not in the error line\n{shown}"
    for secret in case_.absent:
        assert secret not in outcome.stdout + outcome.stderr, shown

    assert _files(tmp_path) == files_before, "files were created, changed or left behind"
    jobs_after = _jobs(tmp_path)
    if jobs_before is None:
        assert not jobs_after, f"a job was recorded: {jobs_after}"
    else:
        assert jobs_after == jobs_before, "the recorded jobs changed"


def test_corpus_is_large_and_every_file_is_used() -> None:
    from llmbulk.store.unit import CHUNK

    used = set().union(*(p.values[0].corpus_files() for p in CASES))
    assert len(CASES) >= 45
    assert CORPUS_FILES - used == set(), "corpus files no case uses"
    assert make_corpus.CHUNK_ROWS > CHUNK, "csv_dup_ids_chunks.csv must span two of the store's insert chunks"
