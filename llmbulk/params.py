"""Model parameters: which names `--param` may set and which values every parameter may take.

Pure functions without SDK imports, shared by the CLI (`--param`, `--max-tokens`, `--temperature`,
`--top-p`, `--seed`), `api.submit` (library callers) and the tasks reader (per-row parameters).
A parameter that would silently override the job (its model, its messages, its schema) or that a
provider can only reject per item, after the batch is paid, is refused before anything is sent.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from llmbulk.errors import UsageError
from llmbulk.models import Limits

NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_TOKENS_HINT = "use --max-tokens: each provider gets it under its own name and the cost estimate counts it"
_SCHEMA_HINT = "use --schema, which is checked before anything is sent"
# Names a parameter may not take: the job sets these itself, so a value here would override it.
RESERVED: dict[str, str] = {
    "model": "choose the model with --model (the cost estimate is priced for it)",
    "messages": "messages come from --prompt/--prompt-file or the tasks file",
    "input": "the request's input comes from --prompt/--prompt-file or the tasks file",
    "contents": "the request's contents come from --prompt/--prompt-file or the tasks file",
    "prompt": "use --prompt or --prompt-file",
    "system": "use --system",
    "instructions": "use --system",
    "system_instruction": "use --system",
    "systemInstruction": "use --system",
    "stream": "batches never stream",
    "custom_id": "llmbulk sets each request's custom_id",
    "json_schema": _SCHEMA_HINT,
    "response_schema": _SCHEMA_HINT,
    "responseSchema": _SCHEMA_HINT,
    "response_json_schema": _SCHEMA_HINT,
    "responseJsonSchema": _SCHEMA_HINT,
    "max_completion_tokens": _TOKENS_HINT,
    "max_output_tokens": _TOKENS_HINT,
    "maxOutputTokens": _TOKENS_HINT,
}


def _limits(provider: str) -> Limits:
    """The provider's parameter rules are data on its limits (one for a name llmbulk does not know)."""
    from llmbulk import providers

    known = providers.REGISTRY.get(provider)
    return providers.limits(provider) if known is not None else Limits(max_items=1, max_bytes=1)


def _is_int(value: Any) -> bool:
    return type(value) is int


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


def _max_tokens(value: Any, provider: str | None) -> str | None:
    if not _is_int(value) or value < 1:
        return f"must be a whole number of at least 1, not {_shown(value)}"
    return None


def _temperature(value: Any, provider: str | None) -> str | None:
    top = _limits(provider).max_temperature if provider else 2.0
    if not _is_number(value) or not math.isfinite(value) or not 0 <= value <= top:
        where = f" for {provider}" if top != 2.0 else ""
        return f"must be a number from 0 to {top:g}{where}, not {_shown(value)}"
    return None


def _top_p(value: Any, provider: str | None) -> str | None:
    if not _is_number(value) or not math.isfinite(value) or not 0 <= value <= 1:
        return f"must be a number from 0 to 1, not {_shown(value)}"
    return None


def _whole(value: Any, provider: str | None) -> str | None:
    return None if _is_int(value) else f"must be a whole number, not {_shown(value)}"


def _not_negative(value: Any, provider: str | None) -> str | None:
    return None if _is_int(value) and value >= 0 else f"must be a whole number of at least 0, not {_shown(value)}"


def _penalty(value: Any, provider: str | None) -> str | None:
    if not _is_number(value) or not math.isfinite(value):
        return f"must be a number, not {_shown(value)}"
    return None


def _stop(value: Any, provider: str | None) -> str | None:
    if type(value) is str or (type(value) is list and all(type(v) is str for v in value)):
        return None
    return f"must be a string or a list of strings, not {_shown(value)}"


def _one_answer(value: Any, provider: str | None) -> str | None:
    return None if value == 1 and _is_int(value) else "llmbulk keeps one answer per item: only 1 is allowed"


RULES: dict[str, Callable[[Any, str | None], str | None]] = {
    "max_tokens": _max_tokens,
    "temperature": _temperature,
    "top_p": _top_p,
    "topP": _top_p,
    "top_k": _not_negative,
    "topK": _not_negative,
    "seed": _whole,
    "stop": _stop,
    "stop_sequences": _stop,
    "stopSequences": _stop,
    "presence_penalty": _penalty,
    "frequency_penalty": _penalty,
    "presencePenalty": _penalty,
    "frequencyPenalty": _penalty,
    "n": _one_answer,
    "candidate_count": _one_answer,
    "candidateCount": _one_answer,
}


def _shown(value: Any) -> str:
    try:
        text = orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):
        text = repr(value)
    if isinstance(value, float) and not math.isfinite(value):
        text = repr(value)  # orjson writes NaN and infinities as null
    return text if len(text) <= 40 else text[:37] + "..."


def value_problem(name: str, value: Any, provider: str | None = None) -> str | None:
    """Why `value` is not allowed for parameter `name` (None when it is, or the name has no rule)."""
    rule = RULES.get(name)
    if rule is not None:
        return rule(value, provider)
    if _has_non_finite(value):
        return "holds NaN or an infinity, which JSON cannot carry (it would be sent as null)"
    return None


def _has_non_finite(value: Any) -> bool:
    if type(value) is float:
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_non_finite(v) for v in value)
    return False


def check_param(name: str, value: Any, provider: str | None = None, *, label: str | None = None) -> None:
    """Raise a one-line UsageError naming `label` (default: the parameter) if `name=value` is refused."""
    label = label or f"parameter {name!r}"
    if not NAME_RE.match(name):
        raise UsageError(f"{label}: {name!r} is not a parameter name", hint="names look like top_k or stop")
    if name in RESERVED:
        raise UsageError(f"{label}: {name!r} cannot be set as a parameter", hint=RESERVED[name])
    limits = _limits(provider) if provider else None
    if limits is not None and name in limits.refused_params:
        raise UsageError(f"{label}: {name} is not accepted by {provider}", hint=limits.refused_why)
    problem = value_problem(name, value, provider)
    if problem is not None:
        raise UsageError(f"{label}: {name} {problem}")


def check_params(params: Mapping[str, Any], provider: str | None = None) -> None:
    """Check every model parameter of a job (api.submit calls this for library callers too)."""
    if not isinstance(params, Mapping):
        raise UsageError(f"params must be a mapping of parameter names to values, not {type(params).__name__}")
    for name, value in params.items():
        if not isinstance(name, str):
            raise UsageError(f"parameter name {name!r} is not a string")
        check_param(name, value, provider)


def parse_param(item: str) -> tuple[str, Any]:
    """`NAME=JSON` → (name, value); refuses an empty or odd name and a value that is not JSON."""
    label = f"--param {item}"
    if "=" not in item:
        raise UsageError(f"--param {item!r} is not NAME=VALUE", hint="e.g. --param top_k=40")
    name, raw = item.split("=", 1)
    if not name:
        raise UsageError(f"{label}: the parameter name is empty", hint="e.g. --param top_k=40")
    if not NAME_RE.match(name):
        raise UsageError(f"{label}: {name!r} is not a parameter name", hint="names look like top_k or stop")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        quoted = orjson.dumps(raw).decode().replace("'", "'\\''")
        raise UsageError(
            f"{label}: the value is not JSON", hint=f"quote strings as JSON: --param {name}='{quoted}'"
        ) from None
    return name, value
