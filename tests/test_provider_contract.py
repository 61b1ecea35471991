"""The contract every provider adapter keeps: pure line codecs, id rules, limits, status vocabulary.

One suite, parametrized over all registered providers; statuses come from each SDK's own types.
"""

from __future__ import annotations

import typing

import orjson
import pytest
from vendor_models import MODELS

from llmbulk import providers
from llmbulk.models import CUSTOM_ID_RE, BatchState, Task, make_custom_id, parse_custom_id
from llmbulk.providers.base import ProviderSettings

TASK = Task(12, "row-12", [{"role": "user", "content": "Is this positive, negative or neutral?"}], "Be terse.",
            {"max_tokens": 7, "temperature": 0.0})  # fmt: skip


def _adapter(name: str):
    return providers.create(name, ProviderSettings(model=MODELS[name]))


@pytest.mark.parametrize("name", sorted(providers.REGISTRY))
def test_encode_is_one_json_line_carrying_the_custom_id(name: str) -> None:
    custom_id = make_custom_id("jabc12", TASK.row_index, 2)
    line = _adapter(name).encode(TASK, custom_id)
    assert b"\n" not in line
    data = orjson.loads(line)
    assert (data.get("custom_id") or data.get("key")) == custom_id
    assert "Is this positive" in line.decode() and "Be terse." in line.decode()
    assert parse_custom_id(custom_id) == ("jabc12", 12, 2)


@pytest.mark.parametrize("name", sorted(providers.REGISTRY))
def test_limits_are_data_and_positive(name: str) -> None:
    limits = providers.limits(name)
    assert limits.max_items > 0 and limits.max_bytes > 0
    narrowed = limits.narrowed(5, 1000)
    assert (narrowed.max_items, narrowed.max_bytes) == (5, 1000)
    assert limits.narrowed(10**12, 10**15) == limits  # overrides only ever lower a limit


@pytest.mark.parametrize("name", sorted(providers.REGISTRY))
def test_decode_rejects_a_corrupt_line(name: str) -> None:
    with pytest.raises((ValueError, KeyError, TypeError)):
        _adapter(name).decode(b'{"truncated": ')


def test_custom_ids_fit_every_provider_rule() -> None:
    longest = make_custom_id("jzzzzz", 10**9, 99)
    assert CUSTOM_ID_RE.match(longest) and len(longest) <= 64


def _sdk_statuses() -> dict[str, set[str]]:
    from anthropic.types.messages import MessageBatch
    from google.genai import types as genai_types
    from openai.types import Batch

    return {
        "openai": set(typing.get_args(Batch.model_fields["status"].annotation)),
        "anthropic": set(typing.get_args(MessageBatch.model_fields["processing_status"].annotation)),
        "gemini": {s.value for s in genai_types.JobState},
    }


@pytest.mark.parametrize("name", sorted(providers.REGISTRY))
def test_every_sdk_status_value_is_mapped(name: str) -> None:
    """Each adapter maps its SDK's every status; a vendor's own spellings map onto those."""
    import importlib

    module = providers.info(name).module
    sdk = module.rsplit(".", 1)[1]
    states = importlib.import_module(module).STATES
    for value in _sdk_statuses()[sdk]:
        if name == "gemini" and value == "JOB_STATE_UNSPECIFIED":
            continue  # deliberately an error, never a guess
        assert value in states, f"{name} status {value!r} is not mapped"
        assert isinstance(states[value], BatchState)


@pytest.mark.parametrize("name", sorted(providers.REGISTRY))
def test_every_vendor_status_spelling_maps_to_an_sdk_status(name: str) -> None:
    profile = providers.info(name).profile
    aliases = profile.status_aliases if profile else {}
    openai_statuses = _sdk_statuses()["openai"]
    assert all(value in openai_statuses for value in aliases.values()), aliases
