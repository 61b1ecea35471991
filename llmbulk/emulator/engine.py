"""Provider-neutral emulator core: persistent files and batches, a clock-driven lifecycle, faults, audit.

State lives in a directory (files, batch records as JSON, an audit log), written atomically under
a file lock, so an emulator in one process and a new one in a later process see the same batches
progress by wall-clock time. Results are generated once, lazily, by streaming the input file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import random
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import orjson
from pydantic import BaseModel, Field, model_validator

from llmbulk.catalog import Catalog
from llmbulk.emulator.quotas import Admission, QuotaPlan, admit, batch_tokens, max_enqueued_tokens, record_enqueued

ITEM_ERROR_KINDS = ("rate_limit", "server_error", "invalid_request", "timeout")


HTTP_FAULT_ACTIONS = ("status", "reset", "timeout", "truncate", "corrupt")


class HttpFault(BaseModel):
    """Spoil `times` requests matching `method` and `path_regex` (searched in the request path).

    `status` answers with that HTTP error; `reset` drops the connection with no answer; `timeout`
    holds the answer for `delay_ms`, then drops the connection; `truncate` cuts the response body
    halfway; `corrupt` garbles a byte of the body so a JSON line no longer parses. With `after`,
    `reset` and `timeout` happen once the request has been handled: the side effect (an upload, a
    created batch) took place but its answer is lost, the case that makes creates unsafe to repeat.
    """

    method: str | None = Field(default=None, description="HTTP method to match, or any.")
    path_regex: str = Field(description="Regular expression searched in the request path.")
    action: Literal["status", "reset", "timeout", "truncate", "corrupt"] = Field(
        default="status", description="What happens to a matching request."
    )
    status: int | None = Field(default=None, description="HTTP status to answer with (action 'status').")
    times: int = Field(default=1, description="How many matching requests fail.")
    skip: int = Field(default=0, description="Matching requests let through before the first one fails.")
    retry_after_ms: int | None = Field(default=None, description="retry-after-ms / retry-after to send.")
    delay_ms: int = Field(default=2000, description="How long a 'timeout' holds the answer.")
    after: bool = Field(default=False, description="reset/timeout after handling the request.")

    @model_validator(mode="after")
    def _status_given(self) -> HttpFault:
        if self.action == "status" and self.status is None:
            raise ValueError("an http fault with action 'status' needs a status")
        return self


class FaultPlan(BaseModel):
    """Seeded, reproducible faults; JSON-serialisable so it can come from a file or an env variable."""

    item_errors: dict[str, float] = Field(default_factory=dict, description="Per-item error rate by kind.")
    expire_batches: list[int] = Field(default_factory=list, description="Creation ordinals that expire.")
    expire_fraction: float = Field(default=0.5, description="Fraction of items finished before expiry.")
    cancel_batches: list[int] = Field(
        default_factory=list, description="Creation ordinals the provider cancels halfway through their run."
    )
    fail_validation_batches: list[int] = Field(default_factory=list, description="Ordinals failing validation.")
    token_limit_batches: list[int] = Field(default_factory=list, description="Ordinals failing on token limit.")
    late_results: int = Field(
        default=0,
        description="Reads of an ended batch that do not show its results yet (OpenAI output_file_id null, "
        "Gemini no dest, Anthropic results_url answering 404).",
    )
    http_faults: list[HttpFault] = Field(default_factory=list, description="HTTP errors to inject.")
    invalid_json_rate: float = Field(default=0.0, description="Fraction of schema answers that are not JSON.")
    quotas: QuotaPlan = Field(
        default_factory=QuotaPlan, description="Account limits enforced at create (emulator/quotas.py)."
    )
    shuffle_results: bool = Field(
        default=False,
        description="Write results in an adversarial (seeded, shuffled) order on every provider, Gemini "
        "included, instead of each provider's documented order.",
    )


@dataclass
class EmulatorConfig:
    """How the emulated batches behave."""

    validating_seconds: float = 0.3
    running_seconds: float = 1.5
    finalizing_seconds: float = 0.2
    cancel_seconds: float = 0.3
    jitter: float = 0.3
    seed: int = 0
    api_key: str | None = None
    max_file_bytes: int = 200 * 1024 * 1024
    max_batch_items: int = 50_000
    faults: FaultPlan = field(default_factory=FaultPlan)
    clock: Callable[[], float] = time.time
    extra_models: dict[str, dict[str, frozenset[str]]] = field(
        default_factory=dict
    )  # models beyond the catalog (catalog.parse_models)


def unit(seed: int, *parts: str) -> float:
    """A deterministic number in [0, 1) from the seed and the parts."""
    digest = hashlib.blake2b("\x1f".join((str(seed), *parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def new_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(12)}"


class Codec(Protocol):
    """What a provider's routes tell the core: its quirks as data, and how it writes results.

    `whole_batch_failures`: a batch can fail validation as a whole (OpenAI, Gemini; Anthropic refuses
    a bad create with a 400 instead). `token_limits`: a batch can fail on the enqueued-token limit
    (OpenAI's `token_limit_exceeded`). `input_order`: results come in input order by default.
    """

    whole_batch_failures: bool
    token_limits: bool
    input_order: bool

    def results(self, emulator: Emulator, batch: dict[str, Any], done: float, reason: str) -> dict[str, Any]:
        """Generate result file(s) for a terminal batch; returns fields to store on the batch record."""
        ...

    def http_error(self, status: int, message: str) -> Any:
        """An HTTP error response in the provider's shape (for injected faults)."""
        ...


class Emulator:
    """Files, batches and their lifecycle, persisted under `state_dir`."""

    def __init__(self, state_dir: Path, config: EmulatorConfig | None = None) -> None:
        self.dir = Path(state_dir)
        self.config = config or EmulatorConfig()
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.dir.chmod(0o700)  # uploaded prompts live here: this user only, whatever the umask
        for sub in ("files", "batches"):
            (self.dir / sub).mkdir(exist_ok=True, mode=0o700)
        self.catalog = Catalog(self.config.extra_models)
        self.calls: dict[str, int] = {}
        self.codecs: dict[str, Codec] = {}
        self.sessions: dict[str, dict[str, Any]] = {}  # upload sessions in progress, by id
        self._http_budget = [f.times for f in self.config.faults.http_faults]
        self._http_skips = [f.skip for f in self.config.faults.http_faults]

    # ---- persistence ---------------------------------------------------------------------------

    @contextmanager
    def locked(self) -> Iterator[None]:
        with open(self.dir / ".lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _write_json(self, path: Path, value: dict[str, Any]) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(orjson.dumps(value))
        os.replace(tmp, path)

    def audit(self, event: str, provider: str, object_id: str, **extra: Any) -> None:
        record = {"event": event, "provider": provider, "id": object_id, "ts": self.config.clock(), **extra}
        fd = os.open(self.dir / "audit.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "ab") as fh:
            fh.write(orjson.dumps(record) + b"\n")

    def audit_events(self) -> list[dict[str, Any]]:
        path = self.dir / "audit.jsonl"
        if not path.exists():
            return []
        return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]

    # ---- files ---------------------------------------------------------------------------------

    def file_path(self, file_id: str) -> Path:
        return self.dir / "files" / f"{_safe(file_id)}.data"

    def add_file(self, provider: str, file_id: str, meta: dict[str, Any]) -> dict[str, Any]:
        """Record a file whose bytes are already at `file_path(file_id)`."""
        meta = {**meta, "id": file_id, "provider": provider, "bytes": self.file_path(file_id).stat().st_size}
        meta.setdefault("created_at", int(self.config.clock()))
        self._write_json(self.dir / "files" / f"{_safe(file_id)}.json", meta)
        name = meta.get("filename") or meta.get("display_name")  # so a test can tell a shard's uploads once deleted
        self.audit("file.created", provider, file_id, bytes=meta["bytes"], purpose=meta.get("purpose"), name=name)
        return meta

    def get_file(self, file_id: str) -> dict[str, Any] | None:
        path = self.dir / "files" / f"{_safe(file_id)}.json"
        return orjson.loads(path.read_bytes()) if path.exists() else None

    def list_files(self, provider: str) -> list[dict[str, Any]]:
        metas = [orjson.loads(p.read_bytes()) for p in (self.dir / "files").glob("*.json")]
        return sorted((m for m in metas if m["provider"] == provider), key=lambda m: (m["created_at"], m["id"]))

    def deleted_path(self, file_id: str) -> Path:
        """Where a deleted file's bytes are kept aside: gone for every client, still readable by a test's
        audit of what each batch was sent."""
        return self.dir / "deleted" / f"{_safe(file_id)}.data"

    def delete_file(self, file_id: str) -> bool:
        meta = self.get_file(file_id)
        if meta is None:
            return False
        self.deleted_path(file_id).parent.mkdir(exist_ok=True, mode=0o700)
        with contextlib.suppress(FileNotFoundError):
            self.file_path(file_id).replace(self.deleted_path(file_id))
        (self.dir / "files" / f"{_safe(file_id)}.json").unlink(missing_ok=True)
        self.audit("file.deleted", meta["provider"], file_id)
        return True

    # ---- batches -------------------------------------------------------------------------------

    def create_batch(self, provider: str, batch_id: str, record: dict[str, Any]) -> dict[str, Any]:
        """Persist a new batch with its timeline and the faults chosen for it."""
        cfg, now = self.config, self.config.clock()
        codec = self.codecs[provider]
        with self.locked():
            others = self._all_batches()
            ordinal = 1 + sum(1 for b in others if b["provider"] == provider)
            admission = self._admit(provider, record, others, now)  # QuotaRefused: the provider's 429
            stretch = 1 + cfg.jitter * unit(cfg.seed, "jitter", batch_id)
            validated = now + cfg.validating_seconds * stretch
            ran = validated + cfg.running_seconds * stretch
            faults = cfg.faults
            record = {
                **record,
                "id": batch_id,
                "provider": provider,
                "ordinal": ordinal,
                "created_at": now,
                "validated_at": validated,
                "ran_at": ran,
                "finalized_at": ran + cfg.finalizing_seconds * stretch,
                # A vendor that lets long batches run on (Azure) never expires one.
                "expire": ordinal in faults.expire_batches and getattr(codec, "expires", True),
                "fail_validation": ordinal in faults.fail_validation_batches and codec.whole_batch_failures,
                "token_limit": (ordinal in faults.token_limit_batches or admission.token_limit) and codec.token_limits,
                "enqueued_tokens": admission.tokens,
                # A provider-side cancel is a cancel request dated halfway through the run.
                "cancel_requested_at": validated + (ran - validated) / 2 if ordinal in faults.cancel_batches else None,
                "late_reads": faults.late_results,
                "results": None,
            }
            self._write_json(self._batch_path(batch_id), record)
            if not record["token_limit"]:
                record_enqueued(self.dir, str(record.get("model") or ""), others, self.phase, record)
        self.audit(
            "batch.created", provider, batch_id, ordinal=ordinal, request_count=record.get("total"),
            metadata=record.get("metadata"), display_name=record.get("display_name"),
        )  # fmt: skip
        return record

    def _admit(self, provider: str, record: dict[str, Any], others: list[dict[str, Any]], now: float) -> Admission:
        source = record.get("input_file_id") or record.get("input_file")
        tokens = batch_tokens(None if source is None else self.file_path(str(source)))
        codec = self.codecs[provider]
        return admit(self.config.faults.quotas, provider, str(record.get("model") or ""), tokens, others,
                            self.phase, now, fails_in_validation=codec.token_limits)  # fmt: skip

    def max_enqueued_tokens(self) -> dict[str, int]:
        """The most tokens enqueued at once per model, over this emulator's life (quotas.py)."""
        return max_enqueued_tokens(self.dir)

    def _batch_path(self, batch_id: str) -> Path:
        return self.dir / "batches" / f"{_safe(batch_id)}.json"

    def _all_batches(self) -> list[dict[str, Any]]:
        return [orjson.loads(p.read_bytes()) for p in (self.dir / "batches").glob("*.json")]

    def list_batches(self, provider: str) -> list[dict[str, Any]]:
        """This provider's batches, newest first."""
        mine = [b for b in self._all_batches() if b["provider"] == provider]
        return sorted(mine, key=lambda b: (b["created_at"], b["id"]), reverse=True)

    def get_batch(self, batch_id: str) -> dict[str, Any] | None:
        """The batch as of now, its results generated if it just ended."""
        path = self._batch_path(batch_id)
        if not path.exists():
            return None
        batch = orjson.loads(path.read_bytes())
        phase = self.phase(batch)
        if phase in ("ended", "expired", "cancelled") and batch["results"] is None:
            with self.locked():
                batch = orjson.loads(path.read_bytes())
                if batch["results"] is None:
                    done = {"ended": 1.0, "expired": self.config.faults.expire_fraction}.get(phase)
                    if done is None:
                        done = self.fraction(batch, batch["cancel_requested_at"])
                    results = self.codecs[batch["provider"]].results(self, batch, done, phase)
                    batch["results"] = {**results, "done_fraction": done}
                    self._write_json(path, batch)
        return batch

    def cancel_batch(self, batch_id: str) -> dict[str, Any] | None:
        path = self._batch_path(batch_id)
        with self.locked():
            if not path.exists():
                return None
            batch = orjson.loads(path.read_bytes())
            not_cancelled = self.cancel_time(batch) is None
            if not_cancelled and self.phase(batch) in ("validating", "running"):
                batch["cancel_requested_at"] = self.config.clock()
                self._write_json(path, batch)
                self.audit("batch.cancelled", batch["provider"], batch_id)
        return self.get_batch(batch_id)

    def cancel_time(self, batch: dict[str, Any], now: float | None = None) -> float | None:
        """When the batch's cancel took effect, if it has by `now` (a provider cancel is dated ahead)."""
        now = self.config.clock() if now is None else now
        cancel_at = batch.get("cancel_requested_at")
        return cancel_at if cancel_at is not None and now >= cancel_at else None

    def results_hidden(self, batch_id: str) -> bool:
        """Whether this read of an ended batch must not show its results yet (`late_results`)."""
        if not self.config.faults.late_results:
            return False
        path = self._batch_path(batch_id)
        with self.locked():
            if not path.exists():
                return False
            batch = orjson.loads(path.read_bytes())
            if batch.get("results") is None or batch.get("late_reads", 0) <= 0:
                return False
            batch["late_reads"] -= 1
            self._write_json(path, batch)
        self.audit("batch.results_hidden", batch["provider"], batch_id)
        return True

    def delete_batch(self, batch_id: str) -> None:
        self._batch_path(batch_id).unlink(missing_ok=True)

    # ---- lifecycle -----------------------------------------------------------------------------

    def phase(self, batch: dict[str, Any], now: float | None = None) -> str:
        """validating, failed, running, finalizing, ended, expired, cancelling or cancelled."""
        now = self.config.clock() if now is None else now
        cancel_at = batch.get("cancel_requested_at")
        if cancel_at is not None and now >= cancel_at:
            return "cancelling" if now < cancel_at + self.config.cancel_seconds else "cancelled"
        if now <= batch["created_at"] or now < batch["validated_at"]:
            return "validating"  # a create response always says validating, as the real APIs do
        if batch.get("validation_errors") or batch["fail_validation"] or batch["token_limit"]:
            return "failed"
        if now < batch["ran_at"]:
            return "running"
        if batch["expire"]:
            return "expired"
        return "finalizing" if now < batch["finalized_at"] else "ended"

    def fraction(self, batch: dict[str, Any], now: float | None = None) -> float:
        """Share of items finished by `now` (items finish in a stable, seeded order)."""
        now = self.config.clock() if now is None else now
        span = batch["ran_at"] - batch["validated_at"]
        if span <= 0:
            return 1.0 if now >= batch["ran_at"] else 0.0
        return min(1.0, max(0.0, (now - batch["validated_at"]) / span))

    def finished_by(self, custom_id: str, done: float) -> bool:
        """Whether an item is among the first `done` share of its batch to finish."""
        return unit(self.config.seed, "order", custom_id) < done

    def item_error(self, custom_id: str) -> str | None:
        """The injected error kind for this item, if any."""
        draw = unit(self.config.seed, "error", custom_id)
        total = 0.0
        for kind in ITEM_ERROR_KINDS:
            total += self.config.faults.item_errors.get(kind, 0.0)
            if draw < total:
                return kind
        return None

    def invalid_json(self, custom_id: str) -> bool:
        return unit(self.config.seed, "json", custom_id) < self.config.faults.invalid_json_rate

    # ---- HTTP faults ---------------------------------------------------------------------------

    def http_fault(self, method: str, path: str) -> HttpFault | None:
        import re

        for index, fault in enumerate(self.config.faults.http_faults):
            if self._http_budget[index] <= 0:
                continue
            if fault.method and fault.method.upper() != method.upper():
                continue
            if re.search(fault.path_regex, path):
                if self._http_skips[index] > 0:
                    self._http_skips[index] -= 1
                    continue
                self._http_budget[index] -= 1
                return fault
        return None


def _safe(object_id: str) -> str:
    return object_id.replace("/", "_")


def ordered(emulator: Emulator, provider: str, lines: Iterator[bytes]) -> Iterator[bytes]:
    """Result lines in the provider's documented order, or shuffled when the fault plan asks.

    Gemini documents input order (ai.google.dev/gemini-api/docs/batch-mode); OpenAI and Anthropic
    promise no order (join on custom_id), so by default their results come back reordered.
    """
    if emulator.config.faults.shuffle_results:
        return shuffled(lines, emulator.config.seed)
    return lines if emulator.codecs[provider].input_order else reversed_blocks(lines)


def shuffled(lines: Iterator[bytes], seed: int, window: int = 512) -> Iterator[bytes]:
    """A seeded shuffle within windows of `window` lines (bounded memory), never the input order."""
    rng = random.Random(seed)
    buffer: list[bytes] = []
    for line in lines:
        buffer.append(line)
        if len(buffer) >= window:
            yield from _derange(buffer, rng)
            buffer = []
    yield from _derange(buffer, rng)


def _derange(buffer: list[bytes], rng: random.Random) -> list[bytes]:
    out = buffer[:]
    rng.shuffle(out)
    return out[::-1] if out == buffer else out


def reversed_blocks(lines: Iterator[bytes], block: int = 7) -> Iterator[bytes]:
    """Lines in an order unlike the input (each small block reversed), in bounded memory."""
    buffer: list[bytes] = []
    for line in lines:
        buffer.append(line)
        if len(buffer) >= block:
            yield from reversed(buffer)
            buffer = []
    yield from reversed(buffer)
