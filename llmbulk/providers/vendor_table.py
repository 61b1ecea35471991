"""The README's table of the OpenAI adapter's profiles, generated from the registry itself.

`tests/test_vendors.py` checks that README.md holds exactly this table, so the documented limits,
windows, keys and prices cannot drift from what llmbulk enforces.
"""

from __future__ import annotations

from llmbulk.providers import REGISTRY, ProviderInfo
from llmbulk.providers.profiles import GB, MB, Profile

START, END = "<!-- vendor-table:start -->", "<!-- vendor-table:end -->"
HEADER = (
    "| provider | key variable | base URL | per input file | completion windows | endpoints | batch price |"
    " crash reconciliation |"
)


def markdown() -> str:
    """The table, one row per OpenAI-family provider, between its README markers."""
    rows = [START, HEADER, "|---|---|---|---|---|---|---|---|"]
    for name, info in REGISTRY.items():
        if info.profile is not None:
            rows.append(_row(name, info, info.profile))
    rows.append(END)
    return "\n".join(rows)


def _row(name: str, info: ProviderInfo, profile: Profile) -> str:
    cells = [
        f"`{name}`",
        " or ".join(f"`{var}`" for var in info.key_env) + ("" if profile.key_required else " (optional)"),
        _base_url(info, profile),
        f"{profile.max_items:,} requests, {_size(profile.max_bytes)}",
        profile.windows_text,
        ", ".join(f"`{e}`" for e in profile.endpoints),
        _price(info, profile),
        "metadata labels" if profile.keeps_metadata else "proof from result ids (metadata not kept)",
    ]
    return "| " + " | ".join(cells) + " |"


def _base_url(info: ProviderInfo, profile: Profile) -> str:
    if profile.base_url_required:
        what = "your resource" if profile.deployment_names else "your gateway"
        return f"{what}: `--base-url` or `{info.base_url_env}`"
    default = f"`{profile.base_url}`" if profile.base_url else "the SDK's"
    return f"{default} (`{info.base_url_env}` overrides)"


def _price(info: ProviderInfo, profile: Profile) -> str:
    if profile.price_note:
        return f"unknown: {profile.price_note}"
    discount = f", else {profile.batch_discount:.0%} off the synchronous rate" if profile.batch_discount else ""
    return f"price library (`{info.price_id}`) batch rate{discount}"


def _size(n_bytes: int) -> str:
    return f"{n_bytes // GB} GB" if n_bytes % GB == 0 else f"{n_bytes // MB} MB"
