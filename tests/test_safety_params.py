"""Model parameters, task rows and file checks that keep a job from being silently changed or hung.

`llmbulk/params.py` is pure (no SDK): its rules are tested directly here; the CLI cases (one line,
exit code, nothing recorded) are in the bad-input corpus. What the user really means goes into the
job as given: `--param max_tokens=N` is the same job, cost estimate included, as `--max-tokens N`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import QUICKSTART, Outcome

from llmbulk import params
from llmbulk.errors import InputError, UsageError
from llmbulk.models import SCHEMA_PARAM
from llmbulk.tables import InputTable, check_format_matches, not_regular_file
from llmbulk.tasks import TaskSpec, iter_tasks

# ---- --param NAME=JSON -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("top_k=40", ("top_k", 40)),
        ('stop=["END", "STOP"]', ("stop", ["END", "STOP"])),
        ('reasoning_effort="low"', ("reasoning_effort", "low")),
        ("logprobs=true", ("logprobs", True)),
        ('metadata={"team": "a=b"}', ("metadata", {"team": "a=b"})),  # only the first = splits
        ("stop=null", ("stop", None)),
    ],
)
def test_param_values_are_json(item: str, expected: tuple[str, Any]) -> None:
    assert params.parse_param(item) == expected


@pytest.mark.parametrize(
    ("item", "fragments"),
    [
        ("stop=END", ("--param stop=END", "not JSON", """--param stop='"END"'""")),
        ("effort=it's low", ("not JSON", """--param effort='"it'\\''s low"'""")),  # pastes back into a shell
        ("temperature=0,5", ("not JSON",)),
        ("seed=", ("not JSON",)),
        ("temperature=NaN", ("not JSON",)),
        ("=1", ("name is empty",)),
        ("top k=1", ("'top k'", "not a parameter name")),
        ("1st=1", ("'1st'",)),
        ("temperature", ("not NAME=VALUE",)),
    ],
)
def test_param_refusals_say_what_to_type(item: str, fragments: tuple[str, ...]) -> None:
    with pytest.raises(UsageError) as refused:
        params.parse_param(item)
    for fragment in fragments:
        assert fragment in str(refused.value), str(refused.value)


@pytest.mark.parametrize("name", sorted(params.RESERVED))
def test_reserved_names_are_refused_with_the_option_to_use(name: str) -> None:
    with pytest.raises(UsageError, match=f"'{name}' cannot be set as a parameter"):
        params.check_param(name, "x")
    assert params.RESERVED["json_schema"].startswith("use --schema") and SCHEMA_PARAM == "json_schema"


@pytest.mark.parametrize(
    ("name", "value", "provider", "ok"),
    [
        ("max_tokens", 1, None, True),
        ("max_tokens", 0, None, False),
        ("max_tokens", -5, None, False),
        ("max_tokens", 2.5, None, False),
        ("max_tokens", True, None, False),
        ("max_tokens", "100", None, False),
        ("temperature", 0, None, True),
        ("temperature", 2, "openai", True),
        ("temperature", 2.0, "anthropic", False),
        ("temperature", 1.0, "anthropic", True),
        ("temperature", -0.1, None, False),
        ("temperature", math.nan, None, False),
        ("temperature", math.inf, None, False),
        ("temperature", "hot", None, False),
        ("top_p", 1, None, True),
        ("top_p", 1.01, None, False),
        ("top_p", -0.01, None, False),
        ("top_k", 40, None, True),
        ("top_k", -1, None, False),
        ("seed", 7, None, True),
        ("seed", 7.5, None, False),
        ("stop", "END", None, True),
        ("stop", ["a", "b"], None, True),
        ("stop", ["a", 1], None, False),
        ("stop", 5, None, False),
        ("n", 1, None, True),
        ("n", 3, None, False),
        ("candidate_count", 2, "gemini", False),
        ("frequency_penalty", 0.5, None, True),
        ("frequency_penalty", math.nan, None, False),
        ("logit_bias", {"50256": -100}, None, True),
        ("logit_bias", {"50256": -math.inf}, None, False),  # would be sent as null
        ("response_format", {"type": "json_object"}, None, True),
    ],
)
def test_value_rules(name: str, value: Any, provider: str | None, ok: bool) -> None:
    problem = params.value_problem(name, value, provider)
    assert (problem is None) == ok, problem
    if not ok:
        with pytest.raises(UsageError) as refused:
            params.check_param(name, value, provider, label=f"--param {name}=…")
        assert str(refused.value).startswith(f"--param {name}=…: {name} ") and "\n" not in str(refused.value)


def test_check_params_for_library_callers() -> None:
    params.check_params({"temperature": 0.2, "top_k": 40, "stop": ["END"]}, "gemini")
    params.check_params({"stop_sequences": ["END"], "max_tokens": 10}, "anthropic")
    for sampling in ("temperature", "top_p", "top_k"):  # removed by Anthropic's API version 2026-10-21
        with pytest.raises(UsageError, match=f"{sampling} is not accepted by anthropic .*2026-10-21"):
            params.check_params({sampling: 1}, "anthropic")
    for bad in ({"messages": []}, {"model": "gpt-4o"}, {"max_tokens": -5}, {"temperature": math.nan}, {"": 1}):
        with pytest.raises(UsageError, match="parameter"):
            params.check_params(bad, "openai")
    with pytest.raises(UsageError, match="mapping"):
        params.check_params([("temperature", 1)])  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="not a string"):
        params.check_params({1: 2})  # type: ignore[dict-item]


def test_api_submit_refuses_the_same_params_as_the_cli(tmp_path: Path) -> None:
    from llmbulk import api
    from llmbulk.config import load_settings

    options = api.SubmitOptions(
        input=QUICKSTART, provider="openai", model="gpt-4o-mini", prompt="{{ text }}",
        params={"model": "gpt-4o"}, emulate=True,
    )  # fmt: skip
    with pytest.raises(UsageError, match="'model'"):
        api.submit(options, dry_run=True, settings=load_settings(home=tmp_path / "state"))


def test_max_tokens_as_a_param_is_the_same_job_and_estimate_as_the_option(llmbulk: Callable[..., Outcome]) -> None:
    def estimate(*extra: str) -> dict[str, Any]:
        result = llmbulk(
            "submit", str(QUICKSTART), "-p", "openai", "-m", "gpt-4o-mini", "--prompt", "{{ text }}",
            "--dry-run", "--json", "--emulate", *extra,
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        return result.json()["estimate"]

    by_option, by_param, default = estimate("--max-tokens", "7"), estimate("--param", "max_tokens=7"), estimate()
    assert by_option == by_param
    assert by_option["max_output_tokens"] == 50 * 7 != default["max_output_tokens"]


# ---- tasks rows ------------------------------------------------------------------------------------


def _tasks(tmp_path: Path, *rows: dict[str, Any]) -> list[Any]:
    path = tmp_path / "tasks.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return list(iter_tasks(InputTable(path), TaskSpec()))


def test_task_rows_in_every_accepted_shape_still_pack(tmp_path: Path) -> None:
    parts = [{"type": "text", "text": "Describe "}, {"type": "text", "text": "this."}]
    user = {"role": "user", "content": "hi"}
    tasks = _tasks(
        tmp_path,
        {"id": "a", "messages": [{"role": "developer", "content": "Be terse."}, {"role": "user", "content": parts}]},
        {
            "id": "b",
            "messages": [user, {"role": "assistant", "content": None}, user],
            "temperature": 0.3,
            "stop": ["END"],
        },
        {"id": "c", "system": "Rules.", "messages": [{"role": "user", "content": ["plain", {"type": "text"}]}]},
        {"id": "d", "messages": [{"role": "system", "content": [{"type": "text", "text": "Part one."}]}, user]},
    )
    assert [t.key for t in tasks] == ["a", "b", "c", "d"]
    assert tasks[1].params == {"temperature": 0.3, "stop": ["END"]}
    assert tasks[2].system == "Rules."
    assert tasks[3].system == "Part one."  # a system message's parts as text, not the list's repr


@pytest.mark.parametrize(
    ("row", "fragment"),
    [
        ({"messages": [{"role": "user", "content": 42}]}, "a user message's content is a JSON number"),
        ({"messages": [{"role": "user", "content": {"text": "hi"}}]}, "JSON object, not a string or a list"),
        ({"messages": [{"role": "user", "content": None}]}, "content is null"),
        ({"messages": [{"role": "user", "content": [1, 2]}]}, "content list holds a JSON number"),
        ({"messages": [{"role": "user", "content": []}]}, "empty list"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "role 'wizard'"),
        ({"messages": [{"role": ["user"], "content": "x"}]}, "role ['user']"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, '"max_tokens" must be'),
        ({"messages": [{"role": "user", "content": "x"}], "top_p": 3}, '"top_p" must be'),
        ({"messages": [{"role": "user", "content": "x"}], "seed": "7"}, '"seed" must be'),
        ({"messages": [{"role": "user", "content": "x"}], "system": ["a"]}, '"system" is a JSON array'),
    ],
)
def test_bad_task_rows_name_the_file_and_row(tmp_path: Path, row: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InputError) as refused:
        _tasks(tmp_path, {"id": "ok", "messages": [{"role": "user", "content": "fine"}]}, {"id": "bad", **row})
    message = str(refused.value)
    assert message.startswith(f"{tmp_path / 'tasks.jsonl'}: row 2: ") and fragment in message, message


def test_an_empty_prompt_template_is_refused_for_library_callers_too(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("text\nhello\n")
    with pytest.raises(InputError, match="prompt template is empty"):
        list(iter_tasks(InputTable(path), TaskSpec(prompt=" \n")))


# ---- files and formats -----------------------------------------------------------------------------


def test_only_regular_files_are_read(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    regular = tmp_path / "rows.csv"
    regular.write_text("text\nx\n")
    link = tmp_path / "link.csv"
    link.symlink_to(regular)
    assert not_regular_file(regular) is None and not_regular_file(link) is None
    assert not_regular_file(tmp_path / "missing.csv") is None  # the caller says "does not exist"
    assert not_regular_file(fifo) == "is a FIFO (named pipe), not a regular file"
    assert not_regular_file(Path("/dev/zero")) == "is a character device, not a regular file"
    assert not_regular_file(tmp_path) == "is a directory"
    with pytest.raises(InputError, match="FIFO"):
        InputTable(fifo)
    with pytest.raises(InputError, match="character device"):
        InputTable(Path("/dev/null"), "jsonl")


@pytest.mark.parametrize(
    ("out", "fmt", "ok"),
    [
        ("o.csv", "parquet", False),
        ("o.parquet", "csv", False),
        ("o.JSONL", "csv", False),
        ("o.tsv", "jsonl", False),
        ("o.csv", "csv", True),
        ("o.tsv", "csv", True),
        ("o.pq", "parquet", True),
        ("o.ndjson", "jsonl", True),
        ("results.dat", "csv", True),  # an extension llmbulk does not know takes the explicit format
        ("-", "jsonl", True),
        ("o.csv", None, True),
    ],
)
def test_an_explicit_format_must_match_the_output_extension(out: str, fmt: str | None, ok: bool) -> None:
    if ok:
        check_format_matches(Path(out), fmt)
        return
    with pytest.raises(UsageError) as refused:
        check_format_matches(Path(out), fmt)
    assert f"--out {out}" in str(refused.value) and f"--format {fmt}" in str(refused.value)
