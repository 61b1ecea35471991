"""Values that cross stage boundaries: tasks, limits, batch references and outcomes.

`Task` and `ItemOutcome` are created once per item (up to millions per job), so they are
slotted dataclasses rather than pydantic models; the rest are pydantic for validation and JSON.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import BaseModel, Field

# The state enums live in `states` (no pydantic); they are part of this module's vocabulary too.
from llmbulk.states import OPEN_JOB_STATES as OPEN_JOB_STATES
from llmbulk.states import TERMINAL_ITEM_STATES as TERMINAL_ITEM_STATES
from llmbulk.states import BatchState as BatchState
from llmbulk.states import ItemState as ItemState
from llmbulk.states import JobState as JobState
from llmbulk.states import Outcome as Outcome

CUSTOM_ID_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


@dataclass(slots=True)
class Task:
    """One provider-neutral chat request for one item."""

    row_index: int
    key: str
    messages: list[dict[str, Any]]
    system: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    output_schema: dict[str, Any] | None = None  # --schema: the answer is JSON matching it
    request_key: str | None = None  # what the request asks, hashed (reuse.py); set while packing


@dataclass(slots=True)
class ItemOutcome:
    """One decoded result line."""

    custom_id: str
    outcome: Outcome
    output: str | None = None
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    error_type: str | None = None
    error_code: str | None = None
    error_message: str | None = None


class Limits(BaseModel):
    """A provider's capabilities and limits, as data (never isinstance checks in stage code)."""

    max_items: int = Field(description="Most requests one batch may hold.")
    max_bytes: int = Field(description="Most bytes one shard (file or body) may hold, as sent.")
    max_request_bytes: int | None = Field(default=None, description="Most bytes of one request line.")
    counts_live: bool = Field(default=True, description="Whether per-item progress counts move while the batch runs.")
    counts_available: bool = Field(default=True, description="Whether the SDK exposes item counts at all.")
    endpoints: tuple[str, ...] = Field(default=(), description="Request endpoints offered; the first is the default.")
    refused_params: frozenset[str] = Field(
        default=frozenset(), description="Request parameters the provider's current API refuses for every request."
    )
    refused_why: str | None = Field(default=None, description="Why `refused_params` are refused, for the hint.")
    max_temperature: float = Field(default=2.0, description="The largest sampling temperature the API accepts.")
    schema_checks: tuple[str, ...] = Field(
        default=(),
        description="What the provider's structured outputs require of a schema, by rule name (schema_rules.py).",
    )
    input_modes: tuple[str, ...] = Field(
        default=("file",), description="How requests reach the provider: `file` (a file or the create body), `inline`."
    )

    def narrowed(self, max_items: int | None, max_bytes: int | None) -> Limits:
        """These limits, lowered by user overrides (never raised above the provider's)."""
        return self.model_copy(
            update={
                "max_items": min(self.max_items, max_items or self.max_items),
                "max_bytes": min(self.max_bytes, max_bytes or self.max_bytes),
            }
        )


class BatchRef(BaseModel):
    """Where a batch lives at its provider."""

    provider: str
    batch_id: str
    input_file_id: str | None = None
    created_at: float | None = None
    owned: bool | None = Field(
        default=True,
        description="Whether the batch provably belongs to the labels it was found by; None when it matched"
        " by shape only (no labels at the provider) and ownership must be proven from its result ids.",
    )


@dataclass(frozen=True, slots=True)
class Fence:
    """A lease holder's fencing token: the job, the holder, and the lease generation it holds."""

    job_id: str
    owner: str
    gen: int


class BatchStatus(BaseModel):
    """One poll of one batch, normalized, with the raw payload kept."""

    batch_id: str
    state: BatchState
    raw_status: str
    total: int | None = Field(default=None, description="Requests in the batch, when known.")
    completed: int | None = Field(default=None, description="Requests finished (any outcome), when known.")
    failed: int | None = Field(default=None, description="Requests failed so far, when known.")
    counts_known: bool = Field(default=True, description="False when the provider hides live progress.")
    result_refs: dict[str, str] = Field(default_factory=dict, description="Provider handles for results.")
    error: str | None = Field(default=None, description="Why a batch failed as a whole.")
    error_code: str | None = None
    ended_at: float | None = None
    raw: dict[str, Any] = Field(default_factory=dict)


def make_custom_id(job_id: str, row_index: int, attempt: int) -> str:
    """The id sent to providers: job, row and attempt, valid for every provider's id rule."""
    return f"{job_id}-{row_index}-{attempt}"


def parse_custom_id(custom_id: str) -> tuple[str, int, int]:
    """Inverse of `make_custom_id`; raises ValueError for ids llmbulk did not make."""
    job_id, row, attempt = custom_id.rsplit("-", 2)
    return job_id, int(row), int(attempt)


SCHEMA_PARAM = "json_schema"  # where the stored spec keeps the schema (the layout of earlier versions)


class JobSpec(BaseModel):
    """What a job was asked to do, beyond its row in `jobs`: stored as JSON, handed out parsed."""

    prompt: str | None = None
    system: str | None = None
    id_column: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    output_schema: dict[str, Any] | None = None
    attach: list[str] = Field(default_factory=list)  # --attach columns (#22)
    base_url: str | None = None  # --base-url: the gateway or resource this job's batches live at
    completion_window: str | None = None  # --completion-window, where the provider offers several
    inline: bool = False
    pacing: dict[str, Any] = Field(default_factory=dict)
    max_cost: float | None = None
    fresh: bool = False  # send every row: no earlier answers reused, repeated rows not folded
    reuse_max_age: float | None = None  # seconds: reuse only answers recorded this recently
    sample: int | None = None  # a sample number in the request key (reuse.py)
    keep_files: bool = False  # --keep-files: leave input and result files at the provider after collect

    @classmethod
    def from_stored(cls, text: str) -> JobSpec:
        data = orjson.loads(text)
        params = dict(data.get("params") or {})
        schema = params.pop(SCHEMA_PARAM, None)
        return cls(
            prompt=data.get("prompt"),
            system=data.get("system"),
            id_column=data.get("id_column"),
            params=params,
            output_schema=schema,
            attach=list(data.get("attach") or []),
            base_url=data.get("base_url"),
            completion_window=data.get("completion_window"),
            inline=bool(data.get("inline")),
            pacing=data.get("pacing") or {},
            max_cost=data.get("max_cost"),
            fresh=bool(data.get("fresh")),
            reuse_max_age=data.get("reuse_max_age"),
            sample=data.get("sample"),
            keep_files=bool(data.get("keep_files")),
        )

    def task_json(self) -> dict[str, Any]:
        """The part that renders tasks, in the stored layout (the schema among the params)."""
        params = dict(self.params)
        if self.output_schema is not None:
            params[SCHEMA_PARAM] = self.output_schema
        task: dict[str, Any] = {
            "prompt": self.prompt,
            "system": self.system,
            "id_column": self.id_column,
            "params": params,
        }
        if self.attach:  # only when set: the stored layout (and fingerprints) of jobs without it is unchanged
            task["attach"] = self.attach
        return task

    def to_stored(self) -> str:
        stored = {**self.task_json(), "inline": self.inline, "pacing": self.pacing, "max_cost": self.max_cost}
        # Only when set: the stored layout (and the fingerprints made from it) of jobs without them is unchanged.
        optional = {
            "base_url": self.base_url, "completion_window": self.completion_window,
            "fresh": self.fresh, "reuse_max_age": self.reuse_max_age, "sample": self.sample,
            "keep_files": self.keep_files,
        }  # fmt: skip
        stored.update((k, v) for k, v in optional.items() if v)
        return orjson.dumps(stored).decode()
