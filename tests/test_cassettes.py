"""vcrpy cassettes pin each adapter's wire traffic for one full lifecycle (upload → create → poll →
results → find), so any change in what llmbulk sends shows up as a failing test and a cassette diff.

Replay-only by default (no server, no network). To re-record after an intended change, run with
`LLMBULK_RECORD_CASSETTES=1`: an emulator is started on a fixed port and the cassettes rewritten.
Keys are filtered out of every recorded request.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import vcr
from vendor_models import MODELS, VENDORS

from llmbulk.emulator import EmulatorConfig, EmulatorServer, FaultPlan
from llmbulk.models import BatchState, Limits, Outcome, Task
from llmbulk.providers import create, info
from llmbulk.providers.base import ProviderSettings, ShardInput
from llmbulk.shards import write_shards

CASSETTES = Path(__file__).parent / "cassettes"
RECORD = os.environ.get("LLMBULK_RECORD_CASSETTES") == "1"
PORT = 18765
FAKE_KEY = "fake-cassette-key-0000"
PROVIDERS = ["openai", "anthropic", "gemini", *VENDORS]  # one cassette per profile of the OpenAI adapter too


def _body_matcher(recorded: vcr.request.Request, replayed: vcr.request.Request) -> None:
    """JSON bodies must be identical; multipart bodies are compared without their random boundary."""

    def normal(request: vcr.request.Request) -> bytes:
        body = request.body or b""
        body = body if isinstance(body, bytes) else body.encode()
        match = re.search(
            r"boundary=([^;]+)", request.headers.get("Content-Type", request.headers.get("content-type", ""))
        )
        return body.replace(match.group(1).encode(), b"BOUNDARY") if match else body

    assert normal(recorded) == normal(replayed), "request body differs from the cassette"


def _recorder() -> vcr.VCR:
    recorder = vcr.VCR(
        cassette_library_dir=str(CASSETTES),
        record_mode="all" if RECORD else "none",
        # Azure's `api-key` is kept as a placeholder, so its cassette shows which header carried the key.
        filter_headers=["authorization", "x-api-key", "x-goog-api-key", ("api-key", "REDACTED")],
        match_on=["method", "scheme", "host", "port", "path", "query", "wire_body"],
        decode_compressed_response=True,
    )
    recorder.register_matcher("wire_body", _body_matcher)
    return recorder


@pytest.fixture
def base_urls(tmp_path: Path) -> Iterator[dict[str, str]]:
    if not RECORD:
        url = f"http://127.0.0.1:{PORT}"
        yield {name: f"{url}{info(name).emulator_path}" for name in PROVIDERS}
        return
    config = EmulatorConfig(validating_seconds=0, running_seconds=0, finalizing_seconds=0, jitter=0, seed=7,
                            faults=FaultPlan(item_errors={"rate_limit": 0.25}))  # fmt: skip
    with EmulatorServer(tmp_path / "emu", config, port=PORT) as server:
        yield {name: f"{server.url}{info(name).emulator_path}" for name in PROVIDERS}


def _shard(tmp_path: Path, provider: str, adapter: object) -> ShardInput:
    tasks = [
        Task(i, f"k{i}", [{"role": "user", "content": f"Review {i}: positive, negative or neutral?"}]) for i in range(6)
    ]
    limits = Limits(max_items=100, max_bytes=10**6)
    encode = adapter.encode  # type: ignore[attr-defined]
    (packed,) = write_shards(iter(tasks), encode, "jcass1", limits, tmp_path / provider, lambda _seq, _items: None)
    return ShardInput("jcass1-s0001", packed.path, packed.n_items, packed.n_bytes, packed.sha256)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_adapter_wire_traffic_matches_cassette(
    provider: str, base_urls: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cassette = CASSETTES / f"{provider}_lifecycle.yaml"
    if not RECORD and not cassette.exists():
        pytest.fail(f"missing cassette {cassette}; record it with LLMBULK_RECORD_CASSETTES=1")
    settings = ProviderSettings(model=MODELS[provider], base_url=base_urls[provider], api_key=FAKE_KEY)
    adapter = create(provider, settings)
    labels = {"llmbulk_job": "jcass1", "llmbulk_shard": "jcass1-s0001"}
    shard = _shard(tmp_path, provider, adapter)
    with _recorder().use_cassette(cassette.name):
        file_id = adapter.files.upload(shard, labels) if adapter.files is not None else None
        ref = adapter.create(shard, file_id, labels)
        (status,) = adapter.poll([ref.batch_id])
        assert status.state is BatchState.ENDED
        outcomes = [adapter.decode(line) for line in adapter.results(status)]
        found = adapter.find(labels, datetime(2020, 1, 1, tzinfo=UTC), shard.n_items)
    adapter.close()
    assert sorted(o.custom_id for o in outcomes) == sorted(f"jcass1-{i}-1" for i in range(6))
    assert {o.outcome for o in outcomes} <= {Outcome.SUCCEEDED, Outcome.RETRYABLE}
    assert ref.batch_id in [f.batch_id for f in found]
    assert FAKE_KEY not in cassette.read_text()
    if info(provider).profile is not None and info(provider).profile.auth_header == "api-key":  # Azure
        text = cassette.read_text()
        assert "api-key:\n      - REDACTED" in text and "authorization" not in text.lower()
