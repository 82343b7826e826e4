"""The house's rules (issue 18, docs/layout.md), read from the source: every import of an sslmon module (function-level
ones included) goes to the same or an earlier stage of the data's way, the imports form no circle, the command line
imports at most six sslmon modules, and no file of the package is over 600 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "sslmon"
# The stages in the data's order: a module may import its own stage and earlier ones only. Longest prefix decides.
STAGES = {
    "sslmon": 0, "sslmon._lazy": 0, "sslmon._text": 0, "sslmon.errors": 0, "sslmon.versions": 0, "sslmon.paths": 0,
    "sslmon.callbacks": 0, "sslmon.rules": 0, "sslmon.executors": 0, "sslmon.io": 0, "sslmon.io.milestones": 0,
    "sslmon.io.safe_pickle": 0, "sslmon.io.output": 0,
    "sslmon.io.inputs": 1, "sslmon.io.datasets": 1, "sslmon.io.config": 1, "sslmon.io.z3file": 1, "sslmon.models": 1,
    "sslmon.models.embed": 2, "sslmon.models.sources": 2,  # inputs -> embeddings
    "sslmon.engine": 3,
    "sslmon.metrics": 4, "sslmon.selection": 4,
    "sslmon.evaluation": 5,
    "sslmon.results": 6, "sslmon.alarms": 6, "sslmon.recommend": 6, "sslmon.conditions": 6, "sslmon.io.cache": 6,
    "sslmon.io.runfile": 6, "sslmon.io.tensorboard": 6,
    "sslmon.report": 7, "sslmon.meta": 7,  # reports
    "sslmon.options": 8, "sslmon.run": 8, "sslmon.training": 8, "sslmon.watch": 8,  # the run layer
    "sslmon.api": 9,  # the door
    "sslmon.cli": 10, "sslmon.cli_options": 10, "sslmon.cli_output": 10, "sslmon.integrations": 10, "sslmon.lightning": 10,
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """The sslmon modules ``path`` imports anywhere in its code (``from sslmon.x import y`` counts ``sslmon.x.y`` when
    that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.split(".")[0] == "sslmon":
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in MODULES else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "sslmon")
    return found


GRAPH = {name: {m for m in _imports(path) if m in MODULES and m != name} for name, path in MODULES.items()}


def stage(module: str) -> int:
    prefix = max((p for p in STAGES if module == p or module.startswith(p + ".")), key=len)
    return STAGES[prefix]


def test_every_module_has_a_stage_and_the_graph_is_read():
    assert {stage(m) for m in MODULES} == set(range(11))
    assert GRAPH["sslmon.cli"] and "sslmon.engine.layout" in GRAPH["sslmon.engine.pool"]  # the reader sees imports


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_from_an_earlier_stage_to_a_later_one(module):
    later = sorted(m for m in GRAPH[module] if stage(m) > stage(module))
    assert later == [], f"{module} (stage {stage(module)}) imports a later stage: {later}"


def test_the_imports_form_no_circle():
    state: dict[str, int] = {}  # 1 on the path, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(GRAPH[node]):
            if nxt == "sslmon" or nxt == node.rsplit(".", 1)[0]:
                continue  # a package's __init__ is loaded with any of its modules (sslmon.__version__): not an edge of the design
            assert state.get(nxt) != 1, f"import circle: {' -> '.join(path[path.index(nxt):] + [nxt])}"
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])


def test_the_command_line_imports_at_most_six_sslmon_modules():
    assert len(GRAPH["sslmon.cli"]) <= 6, sorted(GRAPH["sslmon.cli"])


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_file_over_600_lines(module):
    assert len(MODULES[module].read_text().splitlines()) <= 600
