"""The helpers users get for their own tests: the emulator fixture, its fault marker, the context manager."""

from __future__ import annotations

import os
from typing import Any

import openai
import pytest

from llmbulk.testing import emulated


def test_fixture_points_the_sdks_at_the_emulator(llmbulk_emulator: Any) -> None:
    assert os.environ["OPENAI_BASE_URL"] == llmbulk_emulator.openai_base_url
    client = openai.OpenAI()  # reads the variables the fixture set, as a user's code would
    assert client.batches.list().data == []


@pytest.mark.llmbulk_faults({"http_faults": [{"path_regex": "/batches", "status": 503, "times": 5}]})
def test_fault_marker_reaches_the_emulator(llmbulk_emulator: Any) -> None:
    with pytest.raises(openai.InternalServerError):
        openai.OpenAI(max_retries=0).batches.list()


def test_context_manager_restores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://before.invalid/v1")
    with emulated() as server:
        assert os.environ["OPENAI_BASE_URL"] == server.openai_base_url
    assert os.environ["OPENAI_BASE_URL"] == "http://before.invalid/v1"
