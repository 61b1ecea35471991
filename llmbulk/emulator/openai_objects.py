"""OpenAI-family batch and file objects, and the batch-level input check, as each vendor gives them.

Input problems do not fail `create`: like the real services, the batch is created and then goes
`validating → failed` with `errors.data` (envelope problems: JSON, custom_id, url, method, model
mix; too many requests or bytes for the vendor; on Azure, a model that is not a deployment).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson

from llmbulk.emulator.engine import Emulator
from llmbulk.emulator.vendors import Vendor

STATUS = {
    "validating": "validating", "failed": "failed", "running": "in_progress", "finalizing": "finalizing",
    "ended": "completed", "expired": "expired", "cancelling": "cancelling", "cancelled": "cancelled",
}  # fmt: skip


def limits(emu: Emulator, vendor: Vendor) -> tuple[int, int]:
    """Most requests and bytes one input file may hold at this vendor."""
    return (vendor.max_items or emu.config.max_batch_items, vendor.max_bytes or emu.config.max_file_bytes)


def validate_input(
    emu: Emulator, vendor: Vendor, file_id: str, endpoint: str
) -> tuple[list[dict[str, Any]], int, str | None]:
    """Check the input file like the real validator; returns (errors, request count, model)."""
    path = emu.file_path(file_id)
    max_items, max_bytes = limits(emu, vendor)
    if path.stat().st_size > max_bytes:
        return [{"code": "file_too_large", "line": None, "param": None,
                 "message": f"The input file exceeds the maximum size of {max_bytes} bytes."}], 0, None  # fmt: skip
    seen: set[str] = set()
    models: set[str] = set()
    count = 0
    errors: list[dict[str, Any]] = []
    for number, line in _numbered(path):
        if not line.strip():
            continue
        count += 1
        if errors:
            continue  # counting on: the count is reported with the first problem
        problem = _envelope_problem(vendor, line, number, endpoint, seen, models)
        if problem is not None:
            errors.append(problem)
    if not errors and count == 0:
        errors.append(_verror("empty_file", None, "The input file is empty."))
    if count > max_items:  # Azure: 100,000 per file (includes/global-batch-limits.md); code as OpenAI's
        errors.append(_verror("too_many_tasks", None, f"The batch has more than {max_items} requests."))
    model = next(iter(models), None)
    if not errors and vendor.deployments and model is not None and emu.catalog.endpoints(vendor.name, model) is None:
        # Azure resolves the deployment while validating (its enqueued-token quota is per deployment);
        # the code and wording here are unverified, the failure point follows from that.
        message = f"The provided model deployment '{model}' does not exist in this resource."
        errors.append(_verror("model_not_found", 1, message))
    return errors, count, model


def _envelope_problem(
    vendor: Vendor, line: bytes, number: int, endpoint: str, seen: set[str], models: set[str]
) -> dict[str, Any] | None:
    """Codes from the batch validator (stdapi-ai/stdapi.ai#240's list; `method` per the OpenAPI
    BatchRequestInput schema: "Currently only POST is supported" — the error code there is unverified)."""
    try:
        data = orjson.loads(line)
        custom_id = data["custom_id"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return _verror("invalid_json_line", number, "This line is not parseable as valid JSON.")
    if custom_id in seen:
        return _verror("duplicate_custom_id", number, f"The custom_id '{custom_id}' is not unique.")
    seen.add(custom_id)
    if data.get("method") != "POST":
        return {**_verror("invalid_method", number, "The method must be POST."), "param": "method"}
    if _route(vendor, data.get("url")) != _route(vendor, endpoint):
        return _verror("url_mismatch", number, f"The url must match the batch endpoint {endpoint}.")
    models.add(str((data.get("body") or {}).get("model")))
    if len(models) > 1:
        return _verror("model_mismatch", number, "All requests in a batch must use the same model.")
    return None


def _route(vendor: Vendor, url: Any) -> Any:
    """Azure takes `/chat/completions` and `/v1/chat/completions` alike (its batch guides show both)."""
    return url.removeprefix("/v1") if vendor.deployments and isinstance(url, str) else url


def _numbered(path: Any) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb") as fh:
        yield from enumerate(fh, start=1)


def _verror(code: str, line: int | None, message: str) -> dict[str, Any]:
    return {"code": code, "line": line, "message": message, "param": None}


def batch_json(emu: Emulator, vendor: Vendor, batch: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    phase = emu.phase(batch, now)
    created = int(batch["created_at"])
    results = batch.get("results") or {}
    if results and emu.results_hidden(batch["id"]):  # seen at OpenAI: completed, output_file_id still null
        results = {**results, "output_file_id": None, "error_file_id": None}
    cancel_at = emu.cancel_time(batch, now)
    stamp = lambda t: int(t) if t else None  # noqa: E731
    window = batch.get("completion_window", "24h")
    body: dict[str, Any] = {
        "id": batch["id"], "object": "batch", "endpoint": batch["endpoint"], "errors": _errors(vendor, batch, phase),
        "input_file_id": batch["input_file_id"], "completion_window": window,
        "status": vendor.status(STATUS[phase]),
        "output_file_id": results.get("output_file_id"), "error_file_id": results.get("error_file_id"),
        "created_at": created,
        "in_progress_at": stamp(batch["validated_at"]) if phase not in ("validating", "failed") else None,
        "expires_at": created + 86400, "finalizing_at": None, "completed_at": None, "failed_at": None,
        "expired_at": None, "cancelling_at": stamp(cancel_at), "cancelled_at": None,
        "request_counts": _counts(emu, batch, phase, results, cancel_at),
        "metadata": batch.get("metadata") if vendor.keeps_metadata else None,
        "model": batch.get("model"), "usage": None,
    }  # fmt: skip
    if phase in ("finalizing", "ended"):
        body["finalizing_at"] = stamp(batch["ran_at"])
    ended = {"ended": "completed_at", "failed": "failed_at", "expired": "expired_at", "cancelled": "cancelled_at"}
    if phase in ended:
        when = batch["finalized_at"] if phase == "ended" else batch["validated_at"]
        if phase == "cancelled":
            when = (cancel_at or created) + emu.config.cancel_seconds
        if phase == "expired":
            when = batch["ran_at"]
        body[ended[phase]] = stamp(when) or created
    if results:
        used = results["usage"]
        body["usage"] = {
            "input_tokens": used["input"], "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": used["output"], "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": used["input"] + used["output"],
        }  # fmt: skip
    if vendor.text_times:  # Novita's list and create answers type `created_at` as a string
        body["created_at"] = datetime.fromtimestamp(created, UTC).isoformat().replace("+00:00", "Z")
    return body


def _counts(
    emu: Emulator, batch: dict[str, Any], phase: str, results: dict[str, Any], cancel_at: float | None
) -> dict[str, int]:
    total = batch.get("total", 0)
    if phase in ("running", "cancelling"):
        done = int(total * emu.fraction(batch, cancel_at))
        failed = int(done * sum(emu.config.faults.item_errors.values()))
        return {"total": total, "completed": done - failed, "failed": failed}
    if results:
        return {"total": total, **results["counts"]}
    return {"total": total if phase != "validating" else 0, "completed": 0, "failed": 0}


def _errors(vendor: Vendor, batch: dict[str, Any], phase: str) -> dict[str, Any] | str | None:
    if phase != "failed":
        return None
    data = batch.get("validation_errors") or []
    if batch["token_limit"]:
        data = [_verror("token_limit_exceeded", None, "Enqueued token limit reached for this model.")]
    elif batch["fail_validation"] and not data:
        data = [_verror("invalid_json_line", 1, "This line is not parseable as valid JSON.")]
    if vendor.text_errors:  # Novita types `errors` as a string
        return "; ".join(f"{e['code']}: {e['message']}" for e in data)
    return {"object": "list", "data": data}


def file_json(meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": meta["id"], "object": "file", "bytes": meta["bytes"], "created_at": meta["created_at"],
        "filename": meta.get("filename", "file.jsonl"), "purpose": meta.get("purpose", "batch"),
        "status": "processed", "status_details": None, "expires_at": meta.get("expires_at"),
    }  # fmt: skip
