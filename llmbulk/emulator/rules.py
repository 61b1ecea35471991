"""What the real APIs refuse in a request, per provider, as data the routes turn into each wire shape.

Each check names its source. Where the providers' documents and the installed SDK disagree, the SDK
wins (e.g. Anthropic's request parameters are `MessageCreateParamsBase` of anthropic 2.15, which has
no `temperature`: API version 2026-10-21 removed it). Checks run once per line, with the model's
verdict and the accepted names precomputed, so they cost a few dict lookups per request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from llmbulk import catalog
from llmbulk.catalog import Catalog


@dataclass(frozen=True)
class Problem:
    """Why a request fails: HTTP status, the provider's error type/status, message, param, code."""

    status: int
    kind: str
    message: str
    param: str | None = None
    code: str | None = None


# ---- OpenAI (one batch line's `body`) ---------------------------------------------------------------

OPENAI_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
# Numeric ranges from the OpenAI API reference (chat/create, responses/create): temperature 0-2,
# top_p 0-1, penalties -2..2, n 1-128; Responses max_output_tokens >= 16.
OPENAI_RANGES: dict[str, tuple[float, float, bool]] = {  # name: (low, high, integer)
    "temperature": (0, 2, False), "top_p": (0, 1, False), "presence_penalty": (-2, 2, False),
    "frequency_penalty": (-2, 2, False), "n": (1, 128, True), "top_logprobs": (0, 20, True),
    "max_tokens": (1, 2**31, True), "max_completion_tokens": (1, 2**31, True), "max_output_tokens": (16, 2**31, True),
    "dimensions": (1, 2**31, True), "seed": (-(2**63), 2**63 - 1, True),
}  # fmt: skip
# Reasoning models accept only the default temperature and take `max_completion_tokens`, not
# `max_tokens` (errors quoted in NVlabs/cvdp_benchmark#29 and koosoli/ESPHomeDesigner#379).
REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")


def openai_line(
    cat: Catalog, endpoint: str, body: Any, verdicts: dict[str, bool | None], models: str | None = "openai"
) -> Problem | None:
    """The error the endpoint would answer this line's body with, or None.

    `verdicts` caches `cat.serves(...)` per model for the batch (one model per file anyway). `models`
    says whose names the service serves: "openai", "azure" (deployments, checked when the batch is
    validated), a vendor's price-library id, or None for a gateway that takes any. OpenAI's own
    parameter rules apply to OpenAI and Azure; other vendors take parameters of their own (top_k…).
    """
    if not isinstance(body, dict):
        return Problem(400, "invalid_request_error", "The body of the request must be a JSON object.")
    model = body.get("model")
    if not model:  # wording of the API's answer to a body without a model
        return Problem(400, "invalid_request_error", "you must provide a model parameter")
    if model not in verdicts:
        verdicts[model] = True if models in (None, "azure") else cat.serves(models, str(model), endpoint)
    verdict = verdicts[model]
    if verdict is None:  # shape of a real error-file line: openai/openai-python#3071
        message = f"The model `{model}` does not exist or you do not have access to it."
        return Problem(404, "invalid_request_error", message, code="model_not_found")
    if verdict is False:
        return Problem(404, "invalid_request_error", _wrong_endpoint(endpoint), param="model")
    if models not in ("openai", "azure"):
        return _openai_messages(body["messages"]) if "messages" in body else None
    return _openai_params(endpoint, body, str(model))


def _wrong_endpoint(endpoint: str) -> str:
    # Chat and completions wording: egoist/chatwise-releases#1256, jakecyr/chatgpt-voice-assistant#28.
    if endpoint == "/v1/chat/completions":
        return (
            "This is not a chat model and thus not supported in the v1/chat/completions endpoint. "
            "Did you mean to use v1/completions?"
        )
    if endpoint == "/v1/completions":
        return "This is a chat model and not supported in the v1/completions endpoint. Did you mean to use v1/chat/completions?"  # noqa: E501
    return f"This model is not supported in the {endpoint.lstrip('/')} endpoint."  # wording unverified


def _openai_params(endpoint: str, body: dict[str, Any], model: str) -> Problem | None:
    accepted = catalog.request_params("openai", endpoint)
    if accepted:
        unknown = [name for name in body if name not in accepted]
        if unknown:  # "Unrecognized request argument supplied: top_k" (xlinx/sd-webui-…#29, tbxark/…#5)
            plural = "s" if len(unknown) > 1 else ""
            return Problem(400, "invalid_request_error", f"Unrecognized request argument{plural} supplied: "
                           + ", ".join(unknown))  # fmt: skip
    for name in catalog.required_params("openai", endpoint):
        if name not in body:
            return Problem(400, "invalid_request_error", f"Missing required parameter: '{name}'.", name,
                           "missing_required_parameter")  # fmt: skip
    reasoning = model.startswith(REASONING_PREFIXES) and "chat" not in model
    for name, value in body.items():
        problem = _openai_value(name, value, reasoning)
        if problem is not None:
            return problem
    if "messages" in body:
        problem = _openai_messages(body["messages"])
        if problem is not None:
            return problem
    return _openai_output_limit(body, model)


def _openai_value(name: str, value: Any, reasoning: bool) -> Problem | None:
    if reasoning and name == "max_tokens":
        message = (
            "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead."
        )
        return Problem(400, "invalid_request_error", message, name, "unsupported_parameter")
    if name not in OPENAI_RANGES or value is None:
        return None
    low, high, integer = OPENAI_RANGES[name]
    if not _is_number(value, integer):
        kind = "an integer" if integer else "a decimal"
        message = f"Invalid type for '{name}': expected {kind}, but got {_json_type(value)} instead."
        return Problem(400, "invalid_request_error", message, name, "invalid_type")
    word = "integer" if integer else "decimal"
    if value > high or value < low:
        side, bound, sign = ("above maximum", high, "<=") if value > high else ("below minimum", low, ">=")
        short = "above_max" if value > high else "below_min"
        message = (f"Invalid '{name}': {word} {side} value. Expected a value {sign} {_num(bound)}, "
                   f"but got {_num(value)} instead.")  # fmt: skip
        return Problem(400, "invalid_request_error", message, name, f"{word}_{short}_value")
    if reasoning and name == "temperature" and value != 1:
        message = f"Unsupported value: 'temperature' does not support {_num(value)} with this model. Only the default (1) value is supported."  # noqa: E501
        return Problem(400, "invalid_request_error", message, name, "unsupported_value")
    return None


def _openai_messages(messages: Any) -> Problem | None:
    if not isinstance(messages, list):
        message = f"Invalid type for 'messages': expected an array, but got {_json_type(messages)} instead."
        return Problem(400, "invalid_request_error", message, "messages", "invalid_type")
    if not messages:
        message = (
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead."
        )
        return Problem(400, "invalid_request_error", message, "messages", "empty_array")
    for index, item in enumerate(messages):
        role = item.get("role") if isinstance(item, dict) else None
        if role not in OPENAI_ROLES:
            supported = ", ".join(f"'{r}'" for r in OPENAI_ROLES)
            message = f"Invalid value: {role!r}. Supported values are: {supported}."
            return Problem(400, "invalid_request_error", message, f"messages[{index}].role", "invalid_value")
    return None


def _openai_output_limit(body: dict[str, Any], model: str) -> Problem | None:
    limit = catalog.output_limit("openai", model)
    for name in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        value = body.get(name)
        if limit is not None and isinstance(value, int) and value > limit:
            # NextChat#3195: "max_tokens is too large: 8192. This model supports at most 4096 completion tokens…"
            message = (f"{name} is too large: {value}. This model supports at most {limit} completion tokens, "
                       f"whereas you provided {value}.")  # fmt: skip
            return Problem(400, "invalid_request_error", message, name)
    return None


# ---- Anthropic (one batch request's `params`, checked while the batch runs) --------------------------

# Versions of the `anthropic-version` header; 2026-10-21 removed temperature/top_p/top_k ("temperature:
# Extra inputs are not permitted" even at 1.0 — Anthropic's 2026-10-21 migration notes).
ANTHROPIC_VERSIONS = ("2023-01-01", "2023-06-01", "2026-10-21")
SAMPLING = {"temperature": (0.0, 1.0), "top_p": (0.0, 1.0), "top_k": (0, 2**31)}


def anthropic_params(cat: Catalog, params: Any, version: str, verdicts: dict[str, bool | None]) -> Problem | None:
    """The error a Messages request with these params gets: body first (400), then the model (404).

    Messages follow the API's pydantic-style wording (`max_tokens: Field required`,
    `temperature: Extra inputs are not permitted`); sources: Anthropic API errors page, and the
    2026-10-21 migration notes for the sampling parameters.
    """
    if not isinstance(params, dict):
        return Problem(400, "invalid_request_error", "params: Input should be a valid dictionary")
    accepted = catalog.request_params("anthropic", catalog.ANTHROPIC_MESSAGES)
    if version < "2026-10-21":
        accepted = accepted | SAMPLING.keys()
    for name in ("model", "max_tokens", "messages"):  # catalog.required_params, in the API's reporting order
        if name not in params:
            return Problem(400, "invalid_request_error", f"{name}: Field required")
    for name in params:
        if name == "stream":
            return Problem(400, "invalid_request_error", "stream: Message Batches requests cannot stream")
        if name not in accepted:
            return Problem(400, "invalid_request_error", f"{name}: Extra inputs are not permitted")
    problem = _anthropic_values(params)
    if problem is not None:
        return problem
    model = str(params["model"])
    if model not in verdicts:
        verdicts[model] = cat.serves("anthropic", model, catalog.ANTHROPIC_MESSAGES)
    if verdicts[model] is None:
        return Problem(404, "not_found_error", f"model: {model}")
    limit = catalog.output_limit("anthropic", model)
    if limit is not None and params["max_tokens"] > limit:
        message = f"max_tokens: {params['max_tokens']} > {limit}, which is the maximum allowed number of output tokens for {model}"  # noqa: E501
        return Problem(400, "invalid_request_error", message)
    return None


def _anthropic_values(params: dict[str, Any]) -> Problem | None:
    max_tokens = params["max_tokens"]
    if not _is_number(max_tokens, True):
        return Problem(400, "invalid_request_error", "max_tokens: Input should be a valid integer")
    if max_tokens < 1:
        return Problem(400, "invalid_request_error", "max_tokens: Input should be greater than or equal to 1")
    for name, (low, high) in SAMPLING.items():
        value = params.get(name)
        if value is None:
            continue
        if not _is_number(value, name == "top_k"):
            return Problem(400, "invalid_request_error", f"{name}: Input should be a valid number")
        if not low <= value <= high:
            side = f"less than or equal to {_num(high)}" if value > high else f"greater than or equal to {_num(low)}"
            return Problem(400, "invalid_request_error", f"{name}: Input should be {side}")
    problem = _anthropic_messages(params["messages"])
    return problem if problem is not None else _output_config(params)


def _anthropic_messages(messages: Any) -> Problem | None:
    if not isinstance(messages, list):
        return Problem(400, "invalid_request_error", "messages: Input should be a valid list")
    if not messages:
        return Problem(
            400, "invalid_request_error", "messages: List should have at least 1 item after validation, not 0"
        )
    for index, item in enumerate(messages):
        role = item.get("role") if isinstance(item, dict) else None
        if role == "system":  # the API's own wording for a system turn
            message = ('messages: Unexpected role "system". The Messages API accepts a top-level `system` '
                       'parameter, not "system" as an input message role.')  # fmt: skip
            return Problem(400, "invalid_request_error", message)
        if role not in ("user", "assistant"):
            return Problem(
                400, "invalid_request_error", f"messages.{index}.role: Input should be 'user' or 'assistant'"
            )
        if "content" not in item:
            return Problem(400, "invalid_request_error", f"messages.{index}.content: Field required")
    return None


def _output_config(params: dict[str, Any]) -> Problem | None:
    """`output_config` as anthropic 2.15's OutputConfigParam types it (format: json_schema + schema)."""
    if "output_config" not in params:
        return None
    config = params["output_config"]
    problem: str | None = None
    if not isinstance(config, dict):
        problem = "output_config: Input should be a valid dictionary"
    elif config.get("format") is not None:
        fmt = config["format"]
        if not isinstance(fmt, dict):
            problem = "output_config.format: Input should be a valid dictionary"
        elif fmt.get("type") != "json_schema":
            problem = "output_config.format.type: Input should be 'json_schema'"
        elif "schema" not in fmt:
            problem = "output_config.format.schema: Field required"
        elif not isinstance(fmt["schema"], dict):
            problem = "output_config.format.schema: Input should be a valid dictionary"
    return None if problem is None else Problem(400, "invalid_request_error", problem)


# ---- Gemini (one GenerateContentRequest) -------------------------------------------------------------

# Proto3 JSON: both lowerCamelCase and the original snake_case field names parse. Ranges from the
# Gemini API reference (GenerationConfig): temperature [0, 2], topP [0, 1], topK >= 1,
# candidateCount >= 1, maxOutputTokens >= 1.
GEMINI_RANGES = {
    "temperature": (0.0, 2.0, False), "topP": (0.0, 1.0, False), "topK": (1, 2**31, True),
    "candidateCount": (1, 8, True), "maxOutputTokens": (1, 2**31, True),
}  # fmt: skip
GEMINI_ROLES = ("user", "model")
_SNAKE = {name: "".join(f"_{c.lower()}" if c.isupper() else c for c in name) for name in GEMINI_RANGES}


def gemini_unknown_field(request: Any) -> str | None:
    """Proto JSON parsing: the first field the request type does not have, as the API names it.

    The API answers `Invalid JSON payload received. Unknown name "x" at 'path': Cannot find field.`
    (google.rpc BadRequest from the JSON transcoder); this returns `"x" at 'path'`.
    """
    if not isinstance(request, dict):
        return None
    top = catalog.request_params("gemini", catalog.GEMINI_GENERATE)
    for name in request:
        if name not in top:
            return f'"{name}"'
    config = request.get("generationConfig", request.get("generation_config"))
    if isinstance(config, dict):
        known = catalog.request_params("gemini", "generationConfig")
        for name in config:
            if name not in known:
                return f"\"{name}\" at 'generation_config'"
    return None


def gemini_request(request: Any, model: str) -> Problem | None:
    """What generateContent answers this request with (400 INVALID_ARGUMENT), or None.

    Wording: "contents is not specified" and "Please use a valid role: user, model." are the
    API's answers for those cases; the range messages are modelled on them [wording unverified].
    """
    if not isinstance(request, dict):
        return Problem(400, "INVALID_ARGUMENT", "Invalid JSON payload received. Expected an object.")
    unknown = gemini_unknown_field(request)
    if unknown is not None:
        return Problem(
            400, "INVALID_ARGUMENT", f"Invalid JSON payload received. Unknown name {unknown}: Cannot find field."
        )
    contents = request.get("contents")
    if not contents:
        return Problem(400, "INVALID_ARGUMENT", "* GenerateContentRequest.contents: contents is not specified\n")
    if not isinstance(contents, list):
        return Problem(400, "INVALID_ARGUMENT", "Invalid value at 'contents': expected a list.")
    for item in contents:
        role = item.get("role", "user") if isinstance(item, dict) else None
        if role not in GEMINI_ROLES:
            return Problem(400, "INVALID_ARGUMENT", "Please use a valid role: user, model.")
    config = request.get("generationConfig", request.get("generation_config")) or {}
    return _gemini_config(config, model) if isinstance(config, dict) else None


def _gemini_config(config: dict[str, Any], model: str) -> Problem | None:
    for name, (low, high, integer) in GEMINI_RANGES.items():
        value = config.get(name, config.get(_SNAKE[name]))
        if value is None:
            continue
        if not _is_number(value, integer):
            kind = "TYPE_INT32" if integer else "TYPE_FLOAT"
            return Problem(
                400, "INVALID_ARGUMENT", f"Invalid value at 'generation_config.{_snake(name)}' ({kind}), {value!r}"
            )
        if not low <= value <= high:
            return Problem(
                400,
                "INVALID_ARGUMENT",
                f"* GenerateContentRequest.generation_config.{_snake(name)}: "
                f"must be in the range [{_num(low)}, {_num(high)}]\n",
            )
    limit = catalog.output_limit("gemini", model)
    tokens = config.get("maxOutputTokens", config.get("max_output_tokens"))
    if limit is not None and isinstance(tokens, int) and tokens > limit:
        message = (
            f"The requested maxOutputTokens ({tokens}) exceeds the limit of {limit} output tokens for models/{model}."
        )
        return Problem(400, "INVALID_ARGUMENT", message)
    return None


# ---- shared ------------------------------------------------------------------------------------------


def _is_number(value: Any, integer: bool) -> bool:
    if isinstance(value, bool):
        return False
    if integer:
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    return isinstance(value, (int, float)) and math.isfinite(value)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _json_type(value: Any) -> str:
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null" if value is None else "a number"


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)
