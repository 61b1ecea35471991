"""The emulator plays every OpenAI-compatible vendor: the real `openai` SDK over real HTTP against each
vendor's path, strict response validation where the vendor answers OpenAI's shapes, and a test per
quirk: Azure's api-key, deployments, file expiry and 100,000-request files, Groq's unpaged lists and
its 7-day windows, Doubleword's `1h`, Nebius' large files, Novita's own status spellings.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx2
import openai
import orjson
import pytest
from vendor_models import MODELS, VENDORS

from llmbulk import providers
from llmbulk.emulator import EmulatorConfig, EmulatorServer, FaultPlan
from llmbulk.emulator.quotas import QuotaPlan
from llmbulk.errors import ConfigError
from llmbulk.models import BatchState
from llmbulk.providers.base import ProviderSettings

KEY = "vendor-test-key"
STRICT = [v for v in VENDORS if v != "novita"]  # Novita documents its own status and time types


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmulatorServer]:
    config = EmulatorConfig(validating_seconds=0, running_seconds=0, finalizing_seconds=0, cancel_seconds=0, jitter=0)
    with EmulatorServer(tmp_path / "emu", config) as srv:
        yield srv


def _url(server: EmulatorServer, vendor: str) -> str:
    return f"{server.url}{providers.info(vendor).emulator_path}"


def _client(server: EmulatorServer, vendor: str, strict: bool = True) -> openai.OpenAI:
    """The SDK as the vendors' own samples configure it: base URL and key (Azure's Python samples too)."""
    return openai.OpenAI(api_key=KEY, base_url=_url(server, vendor), _strict_response_validation=strict, max_retries=0)


def _jsonl(n: int, model: str, url: str = "/v1/chat/completions", size: int = 1) -> bytes:
    body = {"model": model, "messages": [{"role": "user", "content": "x" * size}]}
    lines = [{"custom_id": f"j1-{i}-1", "method": "POST", "url": url, "body": body} for i in range(n)]
    return b"\n".join(orjson.dumps(line) for line in lines) + b"\n"


def _batch(client: object, vendor: str, n: int = 3, model: str | None = None, window: str = "24h") -> object:
    uploaded = client.files.create(  # type: ignore[attr-defined]
        file=("in.jsonl", _jsonl(n, model or MODELS[vendor]), "application/jsonl"), purpose="batch"
    )
    return client.batches.create(  # type: ignore[attr-defined]
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window=window,
        metadata={"llmbulk_job": "j1"},
    )  # fmt: skip


@pytest.mark.parametrize("vendor", STRICT)
def test_every_route_parses_strictly_with_the_sdk(server: EmulatorServer, vendor: str) -> None:
    client = _client(server, vendor)
    created = _batch(client, vendor)
    assert created.status == "validating"
    done = client.batches.retrieve(created.id)
    assert done.status == "completed" and done.request_counts.total == 3 and done.output_file_id
    listed = client.batches.list()
    assert created.id in [b.id for b in listed.data]
    content = client.files.content(done.output_file_id).text
    assert [orjson.loads(line)["response"]["status_code"] for line in content.splitlines()] == [200] * 3
    assert client.files.retrieve(done.output_file_id).purpose == "batch_output"
    second = _batch(client, vendor)
    with pytest.raises(openai.ConflictError):  # batches end at once here: too late to cancel
        client.batches.cancel(second.id)
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_missing")


def test_novita_answers_in_its_own_spelling_and_the_adapter_reads_it(server: EmulatorServer) -> None:
    """Novita's reference types `status` upper-case (PROGRESS for in_progress), `created_at` and
    `errors` as strings: strict OpenAI parsing refuses that, llmbulk's adapter maps it."""
    loose = _client(server, "novita", strict=False)
    created = _batch(loose, "novita")
    raw = httpx2.get(f"{_url(server, 'novita')}/batches/{created.id}", headers={"authorization": f"Bearer {KEY}"})
    assert raw.json()["status"] == "COMPLETED" and isinstance(raw.json()["created_at"], str)
    with pytest.raises(openai.APIResponseValidationError):
        _client(server, "novita").batches.retrieve(created.id)
    adapter = providers.create(
        "novita", ProviderSettings(MODELS["novita"], base_url=_url(server, "novita"), api_key=KEY)
    )
    (status,) = adapter.poll([created.id])
    assert status.state is BatchState.ENDED and status.raw_status == "COMPLETED" and status.total == 3
    found = adapter.find({"llmbulk_job": "j1", "llmbulk_shard": "s"}, datetime(2020, 1, 1, tzinfo=UTC), 3)
    assert [(f.batch_id, f.owned) for f in found] == [(created.id, None)]  # no metadata kept: unproven
    adapter.close()


# ---- Azure ----------------------------------------------------------------------------------------


def test_azure_wants_its_api_key_header(tmp_path: Path) -> None:
    """`api-key: KEY` (the REST docs) or the bearer form (the Python samples); neither is Azure's 401."""
    config = EmulatorConfig(validating_seconds=0, running_seconds=0, finalizing_seconds=0, jitter=0, api_key=KEY)
    with EmulatorServer(tmp_path / "emu", config) as server, httpx2.Client() as raw:
        url = f"{_url(server, 'azure')}/batches"
        missing, wrong = raw.get(url), raw.get(url, headers={"api-key": "not-the-key"})
        assert missing.status_code == 401 and "missing subscription key" in missing.json()["message"]
        assert wrong.status_code == 401 and "invalid subscription key" in wrong.json()["error"]["message"]
        assert raw.get(url, headers={"api-key": KEY}).status_code == 200
        assert _client(server, "azure").batches.list().data == []
        reach = ProviderSettings("gpt-4o-mini", base_url=_url(server, "azure"), api_key=KEY)
        adapter = providers.create("azure", reach)
        assert adapter.find({"llmbulk_job": "j"}, datetime.now(UTC), 1) == []  # no bearer: api-key it is
        adapter.close()
        keyless = providers.create("azure", ProviderSettings("gpt-4o-mini", base_url=_url(server, "azure")))
        with pytest.raises(ConfigError, match="AZURE_OPENAI_API_KEY"):
            keyless.find({"llmbulk_job": "j"}, datetime.now(UTC), 1)
        keyless.close()


def test_azure_fails_a_file_of_100001_requests_and_a_model_that_is_no_deployment(server: EmulatorServer) -> None:
    client = _client(server, "azure")
    big = client.batches.retrieve(_batch(client, "azure", n=100_001).id)
    assert big.status == "failed" and big.errors.data[0].code == "too_many_tasks"
    fits = client.batches.retrieve(_batch(client, "azure", n=3).id)
    assert fits.status == "completed"
    stray = client.batches.retrieve(_batch(client, "azure", model="my-deployment").id)
    assert stray.status == "failed" and stray.errors.data[0].code == "model_not_found"
    assert "my-deployment" in stray.errors.data[0].message


def test_azure_caps_input_files_without_expiry_and_checks_the_expiry_range(tmp_path: Path) -> None:
    """500 batch input files per resource without `expires_after`; 14-30 days when it is set."""
    with EmulatorServer(tmp_path / "emu", EmulatorConfig()) as server:
        client = _client(server, "azure")
        with pytest.raises(openai.BadRequestError, match="expires_after"):
            client.files.create(file=("a.jsonl", b"{}\n"), purpose="batch",
                                expires_after={"anchor": "created_at", "seconds": 3600})  # fmt: skip
        for _ in range(500):
            client.files.create(file=("a.jsonl", b"{}\n"), purpose="batch")
        full = r"files without expiry is reached\. The maximum is 500"
        with pytest.raises(openai.BadRequestError, match=full) as over:
            client.files.create(file=("a.jsonl", b"{}\n"), purpose="batch")
        assert over.value.code == "quotaExceeded"  # Azure's answer (azure-sdk-for-java#47401)
        kept = client.files.create(file=("a.jsonl", b"{}\n"), purpose="batch",
                                   expires_after={"anchor": "created_at", "seconds": 14 * 86400})  # fmt: skip
        assert kept.expires_at == kept.created_at + 14 * 86400


def test_azure_caps_input_files_with_expiry_and_a_deleted_file_frees_its_place(tmp_path: Path) -> None:
    config = EmulatorConfig(faults=FaultPlan(quotas=QuotaPlan(files=2)))  # 10,000 on a real resource
    expiring = {"anchor": "created_at", "seconds": 14 * 86400}
    with EmulatorServer(tmp_path / "emu", config) as server:
        client = _client(server, "azure")
        first, _ = (client.files.create(file=("a.jsonl", b"{}\n"), purpose="batch", expires_after=expiring)
                    for _ in range(2))  # fmt: skip
        with pytest.raises(openai.BadRequestError, match=r"files with expiry is reached\. The maximum is 2"):
            client.files.create(file=("a.jsonl", b"{}\n"), purpose="batch", expires_after=expiring)
        client.files.delete(first.id)
        assert client.files.create(file=("a.jsonl", b"{}\n"), purpose="batch", expires_after=expiring).id


# ---- the other vendors' quirks --------------------------------------------------------------------


def test_groq_lists_without_paging_and_the_adapter_does_not_page_forever(server: EmulatorServer) -> None:
    client = _client(server, "groq")
    ids = [_batch(client, "groq").id for _ in range(5)]
    first = httpx2.get(f"{_url(server, 'groq')}/batches?limit=2", headers={"authorization": f"Bearer {KEY}"}).json()
    after = httpx2.get(f"{_url(server, 'groq')}/batches?after={ids[0]}", headers={"authorization": f"Bearer {KEY}"})
    assert "has_more" not in first and len(first["data"]) == 5 and after.json() == first  # `after` ignored
    adapter = providers.create("groq", ProviderSettings(MODELS["groq"], base_url=_url(server, "groq"), api_key=KEY))
    before = server.emulator.calls.get(f"GET {providers.info('groq').emulator_path}/batches", 0)
    assert [s.batch_id for s in adapter.poll(ids)] == ids
    found = adapter.find({"llmbulk_job": "j1"}, datetime(2020, 1, 1, tzinfo=UTC), 3)
    adapter.close()
    assert sorted(f.batch_id for f in found) == sorted(ids)
    assert server.emulator.calls[f"GET {providers.info('groq').emulator_path}/batches"] - before == 2  # one each


@pytest.mark.parametrize(
    ("vendor", "window", "accepted"),
    [("groq", "7d", True), ("groq", "48h", True), ("groq", "8d", False), ("doubleword", "1h", True),
     ("doubleword", "2h", False), ("openai", "1h", False), ("azure", "48h", False), ("nebius", "24h", True)],
)  # fmt: skip
def test_completion_windows_per_vendor(server: EmulatorServer, vendor: str, window: str, accepted: bool) -> None:
    client = _client(server, vendor)
    if accepted:
        assert _batch(client, vendor, window=window).completion_window == window
        assert providers.info(vendor).profile.window_ok(window)  # the profile agrees with the service
    else:
        with pytest.raises(openai.BadRequestError, match="completion_window"):
            _batch(client, vendor, window=window)
        assert not providers.info(vendor).profile.window_ok(window)


def test_nebius_takes_files_beyond_openais_request_limit(server: EmulatorServer) -> None:
    """Nebius: up to 5,000,000 requests per file; the same 60,000-line file fails validation at OpenAI."""
    nebius = _client(server, "nebius").batches.retrieve(_batch(_client(server, "nebius"), "nebius", n=60_000).id)
    assert nebius.status == "completed" and nebius.request_counts.total == 60_000
    openai_client = _client(server, "openai")
    refused = openai_client.batches.retrieve(_batch(openai_client, "openai", n=60_000).id)
    assert refused.status == "failed" and refused.errors.data[0].code == "too_many_tasks"


def test_vendor_models_are_checked_by_each_vendors_names(server: EmulatorServer) -> None:
    """Groq serves its own model names (an OpenAI name is unknown there); a gateway takes any name."""
    groq = _client(server, "groq")
    wrong = groq.batches.retrieve(_batch(groq, "groq", model="gpt-4o-mini").id)
    line = orjson.loads(groq.files.content(wrong.error_file_id).text.splitlines()[0])
    assert line["response"]["status_code"] == 404 and line["response"]["body"]["error"]["code"] == "model_not_found"
    gateway = _client(server, "openai-compatible")
    assert gateway.batches.retrieve(_batch(gateway, "openai-compatible", model="anything-at-all").id).output_file_id


def test_emulated_profile_limits_agree_with_the_adapter_profiles() -> None:
    """Two witnesses, written apart: the adapter's profile and the emulator's vendor say the same numbers."""
    from llmbulk.emulator.vendors import BY_NAME

    for vendor in VENDORS:
        profile, played = providers.info(vendor).profile, BY_NAME[vendor]
        assert (profile.max_items, profile.max_bytes) == (played.max_items or 50_000, played.max_bytes or 200 * 2**20)
        assert set(profile.endpoints) <= set(played.endpoints), vendor
        assert all(played.window_ok(w) for w in profile.windows), vendor
        assert profile.keeps_metadata == played.keeps_metadata and profile.expires == played.expires, vendor
        assert (profile.auth_header == "api-key") == played.api_key_header, vendor


def test_a_list_that_repeats_itself_ends_instead_of_paging_forever() -> None:
    """A gateway that says `has_more: true` yet ignores `after` (it answers every page alike): the
    SDK's own auto-pager would ask forever; the adapter stops at the first page with nothing new."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    batch = {"id": "batch_1", "object": "batch", "endpoint": "/v1/chat/completions", "input_file_id": "file-1",
             "completion_window": "24h", "created_at": 1, "status": "completed"}  # fmt: skip
    asked: list[str] = []

    class Gateway(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            body = orjson.dumps({"object": "list", "data": [batch], "has_more": True})
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        adapter = providers.create("openai-compatible", ProviderSettings("m", base_url=url, timeout=5))
        found = adapter.find({"llmbulk_job": "j"}, datetime(1970, 1, 1, tzinfo=UTC), 3)
        adapter.close()
    finally:
        server.shutdown()
        server.server_close()
    assert [(f.batch_id, f.owned) for f in found] == [("batch_1", None)]  # once, and left to be proven
    assert len(asked) == 2 and "after=batch_1" in asked[1]
