"""The prompt template and the model parameters, as the options give them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmbulk.errors import UsageError


def read_prompt(prompt: str | None, prompt_file: Path | None) -> str | None:
    """The template from --prompt or --prompt-file (not both, not empty, UTF-8, a regular file)."""
    if prompt is not None and prompt_file is not None:
        raise UsageError("pass --prompt or --prompt-file, not both")
    if prompt is not None and not prompt.strip():
        raise UsageError("--prompt is empty", hint="give the prompt template, e.g. --prompt 'Summarise: {{ text }}'")
    if prompt_file is None:
        return prompt
    from llmbulk import tables

    problem = tables.not_regular_file(prompt_file)
    if problem is not None:  # a FIFO would block the read, /dev/zero never end it
        raise UsageError(f"cannot read --prompt-file {prompt_file}: it {problem}", hint="pass a text file")
    try:
        text = prompt_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read --prompt-file {prompt_file}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"--prompt-file {prompt_file} is not valid UTF-8 (byte {exc.start})", hint="re-save it as UTF-8"
        ) from exc
    if not text.strip():
        raise UsageError(f"--prompt-file {prompt_file} is empty", hint="write the prompt template into it")
    return text


def job_params(
    max_tokens: int | None,
    temperature: float | None,
    top_p: float | None,
    seed: int | None,
    param: list[str],
    provider: str | None = None,
) -> dict[str, Any]:
    """The job's model parameters from the options; each refused value names its option."""
    from llmbulk import params as rules

    params: dict[str, Any] = {}
    given: dict[str, str] = {}  # parameter name -> the option that set it
    for name, option, value in (
        ("max_tokens", "--max-tokens", max_tokens),
        ("temperature", "--temperature", temperature),
        ("top_p", "--top-p", top_p),
        ("seed", "--seed", seed),
    ):
        if value is not None:
            rules.check_param(name, value, provider, label=f"{option} {value}")
            params[name], given[name] = value, option
    for item in param:
        name, value = rules.parse_param(item)
        if name in given:
            raise UsageError(f"--param {item}: {name} is already set by {given[name]}", hint="give each parameter once")
        rules.check_param(name, value, provider, label=f"--param {item}")
        params[name], given[name] = value, f"--param {name}=…"
    return params
