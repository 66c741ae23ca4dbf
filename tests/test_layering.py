"""The package's import graph points one way: no cycles, and the layers hold.

Every ``import`` in ``lib/cradle`` counts, including those inside functions: a lazy
import still makes the two modules depend on each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lib" / "cradle"


def module_name(path: Path) -> str:
    parts = ("cradle", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The cradle modules ``path`` imports (``from cradle.x import y`` counts y when y is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("cradle")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cradle"):
            subs = {f"{node.module}.{a.name}" for a in node.names} & modules
            found |= subs or {node.module}
    return {m for m in found if m in modules}


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    # A package's __init__ is imported with any of its modules; it must stay import-free.
    return {name: imports_of(path, modules) - {name} for name, path in paths.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_package_has_no_import_cycles() -> None:
    assert find_cycle(import_graph()) is None, " -> ".join(find_cycle(import_graph()) or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


LOWER = ("cradle.config", "cradle.catalog", "cradle.privacy", "cradle.lake", "cradle.runs", "cradle.pipeline")


@pytest.mark.parametrize("module", LOWER)
def test_the_runner_and_its_foundations_never_import_the_cli_or_a_stage(module: str) -> None:
    """The runner and the modules under it stay below every stage and the CLI."""
    above = (
        "cradle.cli",
        "cradle.demo",
        "cradle.evals",
        "cradle.generate",
        "cradle.ingest",
        "cradle.identity",
        "cradle.profile",
        "cradle.tags",
        "cradle.segments",
    )
    reached, todo = set(), [module]
    graph = import_graph()
    while todo:
        for nxt in graph[todo.pop()] - reached:
            reached.add(nxt)
            todo.append(nxt)
    bad = sorted(m for m in reached if m.startswith(above))
    assert bad == [], f"{module} reaches {bad}"


def test_no_stage_imports_another_stage_module() -> None:
    """Stages learn schemas from the catalogue, not from each other's stage modules."""
    graph = import_graph()
    stages = {m for m in graph if m.endswith(".stage")}
    offenders = sorted(
        (m, d)
        for m in graph
        for d in graph[m] & stages
        if not m.startswith(("cradle.evals", d.rsplit(".", 1)[0] + "."))
    )
    assert offenders == [], offenders


def test_pipeline_stages_never_import_the_generator() -> None:
    graph = import_graph()
    pipeline = [
        m for m in graph if not m.startswith(("cradle.generate", "cradle.evals", "cradle.cli", "cradle.demo"))
    ]
    offenders = sorted((m, d) for m in pipeline for d in graph[m] if d.startswith("cradle.generate"))
    assert offenders == [], offenders
