"""The providers' own structured-output rules, named as data on each provider's limits (`schema_checks`).

Each rule takes the schema, the label errors name and the provider, and raises a one-line `UsageError`
when that provider's structured outputs cannot take the schema.
"""

from __future__ import annotations

from typing import Any

from llmbulk.errors import UsageError
from llmbulk.schema_checks import Finite, Refs, clip, one_line, pointer


def check_provider(schema: dict[str, Any], label: str, provider: str) -> None:
    """The provider's own rules for structured outputs, named as data on its limits."""
    from llmbulk import providers

    for rule in providers.limits(provider).schema_checks:
        _PROVIDER_RULES[rule](schema, label, provider)


def _strict_answerable(schema: dict[str, Any], label: str, provider: str) -> None:
    """OpenAI strict mode makes every property required: some finite answer must still match."""
    from llmbulk import providers

    closed = providers.sent_schema(provider, schema)
    blame = Finite(Refs(closed, label)).blame(closed)
    if blame is not None:
        raise UsageError(f"{label}: OpenAI strict mode makes every property required, and then {blame}")


def _sent_form_resolves(schema: dict[str, Any], label: str, provider: str) -> None:
    """Anthropic: what the SDK's `transform_schema` (which the adapter sends) makes of it still resolves."""
    from llmbulk import providers

    try:
        transformed = providers.sent_schema(provider, schema)
    except Exception as exc:  # the SDK's own checks (and its assertions) on an unsupported shape
        reason = one_line(exc) or exc.__class__.__name__
        raise UsageError(
            f"{label}: Anthropic structured outputs cannot take this schema ({clip(reason)})",
            hint="give every node one type (or anyOf/enum/const)",
        ) from exc
    try:
        Refs(transformed, label)
    except UsageError as exc:
        raise UsageError(
            f"{label}: for Anthropic structured outputs, {exc.message.removeprefix(label + ': ')}",
            hint="keep referenced schemas under the top-level $defs",
        ) from None


def _no_recursion(schema: dict[str, Any], label: str, provider: str) -> None:
    cycle = _ref_cycle(Refs(schema, label))
    if cycle is not None:
        raise UsageError(
            f"{label}: $ref at {pointer((*cycle, '$ref'))} makes the schema recursive, which Anthropic structured "
            "outputs do not support",
            hint="unroll the recursion to a fixed depth",
        )


_PROVIDER_RULES = {
    "strict_answerable": _strict_answerable,
    "sent_form_resolves": _sent_form_resolves,
    "no_recursion": _no_recursion,
}


def _ref_cycle(refs: Refs) -> tuple[str, ...] | None:
    """Where a `$ref` closes a recursion (the schema reaches itself through references), or None.

    The graph: from the root and every referenced schema to the targets of the references
    inside it; a recursion is a cycle in it.
    """
    nodes = {(), *refs.targets.values()}
    edges = {n: [(at, refs.targets[ref]) for at, ref in refs.refs if at[: len(n)] == n] for n in nodes}
    state: dict[tuple[str, ...], bool] = {}  # False: on the current path; True: explored, no cycle

    def visit(node: tuple[str, ...]) -> tuple[str, ...] | None:
        state[node] = False
        for at, target in edges[node]:
            if state.get(target) is False:
                return at
            if target not in state:
                found = visit(target)
                if found is not None:
                    return found
        state[node] = True
        return None

    return visit(())
