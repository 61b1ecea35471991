"""The pytest side of `llmbulk.testing`, registered through the `pytest11` entry point.

The `llmbulk_emulator` fixture runs the emulator for one test with the providers' base URLs and
fake keys set; mark a test `@pytest.mark.llmbulk_faults({...})` to give it a fault plan. This is
the only llmbulk module that imports pytest.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmbulk.testing import emulated


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "llmbulk_faults(plan): fault plan for the llmbulk_emulator fixture")


@pytest.fixture
def llmbulk_emulator(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A running emulator with the providers' base URLs and fake keys set for the test."""
    marker = request.node.get_closest_marker("llmbulk_faults")
    faults = marker.args[0] if marker and marker.args else None
    with emulated(tmp_path / "llmbulk-emulator", faults=faults) as server:
        yield server
