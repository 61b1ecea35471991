"""The import rules of design.md §3, checked across the whole package with `ast`.

Every import counts, including the lazy ones inside functions: a rule says which module may know a
library or another part of llmbulk at all, not only at import time. Cycles are checked on module-level
imports (the ones that can break an import).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "llmbulk"

# Third-party libraries and the only places that may import them.
OWNERS: dict[str, tuple[str, ...]] = {
    "openai": ("llmbulk.providers.openai",),
    "anthropic": ("llmbulk.providers.anthropic",),
    "google": ("llmbulk.providers.gemini",),
    "sqlalchemy": ("llmbulk.store",),
    "sqlmodel": ("llmbulk.store",),
    "psycopg": ("llmbulk.store",),
    "typer": ("llmbulk.cli",),
    "click": ("llmbulk.cli",),
    "rich": ("llmbulk.cli", "llmbulk.render", "llmbulk.panel"),
    "starlette": ("llmbulk.emulator",),
    "uvicorn": ("llmbulk.emulator",),
}
ADAPTERS = (
    "llmbulk.providers.openai",
    "llmbulk.providers.openai_files",
    "llmbulk.providers.openai_lines",
    "llmbulk.providers.anthropic",
    "llmbulk.providers.gemini",
)
# The data flow: a stage may import the stages before it, never one after it (and `costs` none).
STAGES = ("tables", "tasks", "shards", "batches", "results", "merge")
# Modules split out of a larger one, which re-exports them. A part never imports its whole (the
# whole is the façade over its parts), and the parts of a stage follow the stage's rules.
PARTS = {
    "llmbulk.table_readers": "llmbulk.tables",
    "llmbulk.table_writer": "llmbulk.tables",
    "llmbulk.schema_checks": "llmbulk.schemas",
    "llmbulk.schema_rules": "llmbulk.schemas",
    "llmbulk.hooks": "llmbulk.events",
    "llmbulk.redact": "llmbulk.events",
    "llmbulk.sending": "llmbulk.batches",
    "llmbulk.batch_copies": "llmbulk.batches",
    "llmbulk.batch_polling": "llmbulk.batches",
    "llmbulk.render.console": "llmbulk.render",
    "llmbulk.render.payloads": "llmbulk.render",
    "llmbulk.render.status": "llmbulk.render",
    "llmbulk.render.cost": "llmbulk.render",
    "llmbulk.render.gc": "llmbulk.render",
    "llmbulk.jobs.gc_plan": "llmbulk.jobs.gc",
    "llmbulk.providers.gemini.errors": "llmbulk.providers.gemini",
}
WIRING = ("llmbulk.jobs", "llmbulk.api", "llmbulk.session", "llmbulk.cli", "llmbulk.render", "llmbulk.panel")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.AST, module: str, top_level_only: bool = False) -> Iterator[str]:
    nodes = tree.body if top_level_only and isinstance(tree, ast.Module) else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing package
                base = module.split(".")[: -node.level] if not module.endswith("__init__") else module.split(".")
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield target
            yield from (f"{target}.{alias.name}" for alias in node.names)


def _modules() -> dict[str, ast.Module]:
    return {_module_name(path): ast.parse(path.read_text(), str(path)) for path in sorted(PACKAGE.rglob("*.py"))}


MODULES = _modules()


def _within(module: str, owners: tuple[str, ...]) -> bool:
    return any(module == owner or module.startswith(owner + ".") for owner in owners)


def _internal(imported: str) -> str | None:
    """The llmbulk module an import names (the longest known prefix), or None if it is not ours."""
    parts = imported.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in MODULES and candidate.startswith("llmbulk"):
            return candidate
    return None


def _violations(rule: str) -> list[str]:
    found = []
    for module, tree in MODULES.items():
        for imported in set(_imports(tree, module)):
            problem = CHECKS[rule](module, imported)
            if problem:
                found.append(f"{module} imports {imported}: {problem}")
    return sorted(set(found))


def _library_owner(module: str, imported: str) -> str | None:
    library = imported.split(".")[0]
    owners = OWNERS.get(library)
    if owners is None or _within(module, owners):
        return None
    return f"{library} belongs to {', '.join(owners)} only"


def _adapters_and_emulator(module: str, imported: str) -> str | None:
    target = _internal(imported)
    if target is None:
        return None
    if _within(module, ("llmbulk.emulator",)) and _within(target, ADAPTERS):
        return "the emulator never imports the adapters (it must not share their assumptions)"
    if _within(module, ADAPTERS) and _within(target, ("llmbulk.emulator",)):
        return "the adapters never import the emulator"
    return None


def _stage_order(module: str, imported: str) -> str | None:
    target = _internal(imported)
    names = [f"llmbulk.{stage}" for stage in STAGES]
    if target is None:
        return None
    module, target = PARTS.get(module, module), PARTS.get(target, target)
    if module == target:
        return None
    if module in names and target in names and names.index(target) > names.index(module):
        return "a stage imports only the stages before it in the data flow"
    if module == "llmbulk.costs" and target in names:
        return "costs imports no stage"
    if (module in names or module == "llmbulk.costs") and _within(target, WIRING):
        return "stages never import what wires them (jobs/, session, api, cli, render)"
    return None


def _library_is_quiet(module: str, imported: str) -> str | None:
    target = _internal(imported)
    if target is None or _within(module, ("llmbulk.cli", "llmbulk.render", "llmbulk.panel", "llmbulk.entry")):
        return None
    if _within(target, ("llmbulk.cli", "llmbulk.render")):
        return "the library never prints: only the CLI imports render and cli"
    return None


def _providers_are_behind_the_contract(module: str, imported: str) -> str | None:
    target = _internal(imported)
    if target is None or not _within(target, ADAPTERS) or _within(module, ("llmbulk.providers",)):
        return None
    return "stage code reaches adapters through the registry (llmbulk.providers), never by module"


def _parts_stay_below_their_whole(module: str, imported: str) -> str | None:
    target = _internal(imported)
    if target is not None and PARTS.get(module) == target:
        return f"a part never imports {target}, which re-exports it: import the sibling part itself"
    return None


CHECKS = {
    "each library only where it belongs": _library_owner,
    "emulator and adapters never import each other": _adapters_and_emulator,
    "stages follow the data flow": _stage_order,
    "the library never prints": _library_is_quiet,
    "adapters only through the registry": _providers_are_behind_the_contract,
    "a split module's parts never import their whole": _parts_stay_below_their_whole,
}


@pytest.mark.parametrize("rule", sorted(CHECKS))
def test_import_rule(rule: str) -> None:
    assert _violations(rule) == []


def test_no_import_cycles() -> None:
    graph = {
        module: {t for i in _imports(tree, module, top_level_only=True) if (t := _internal(i)) and t != module}
        for module, tree in MODULES.items()
    }
    state: dict[str, int] = {}  # 1: on the current path, 2: explored
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module)
            assert cycle is None, " -> ".join(cycle)


def test_the_rules_see_a_violation() -> None:
    """The checks are live: a made-up adapter import from stage code and an SDK import in jobs/ are caught."""
    assert _providers_are_behind_the_contract("llmbulk.batches", "llmbulk.providers.openai_files.OpenAIFiles")
    assert _library_owner("llmbulk.jobs.doctor", "openai")
    assert _stage_order("llmbulk.tables", "llmbulk.merge")
    assert _stage_order("llmbulk.table_readers", "llmbulk.tasks")  # a stage's parts follow its rules
    assert _parts_stay_below_their_whole("llmbulk.hooks", "llmbulk.events.Events")
    assert _parts_stay_below_their_whole("llmbulk.render.status", "llmbulk.render.out")  # a package's parts too
    assert _stage_order("llmbulk.batch_polling", "llmbulk.results")
    assert set(PARTS) | set(PARTS.values()) <= set(MODULES), "a module named in PARTS no longer exists"
    assert _library_is_quiet("llmbulk.jobs.run", "llmbulk.render")
    assert _adapters_and_emulator("llmbulk.emulator.engine", "llmbulk.providers.gemini")
