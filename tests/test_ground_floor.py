"""publisher/ has a ground floor (issue 24): the TR catalogue and records in publisher/trs/ build on nothing of the
publisher's, no import circle runs through the publisher (lazy imports too), and every TR has its simulator entry."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from publisher.controls import sim_ranking
from publisher.trs import TRS

ROOT = Path(__file__).resolve().parent.parent


def _imports() -> dict[str, set[str]]:
    """publisher module -> the publisher modules it imports anywhere (top level, functions, TYPE_CHECKING)."""
    modules = {}
    for path in (ROOT / "publisher").rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                candidates = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
            else:
                continue
            deps |= {c for c in candidates if c in modules and c != name}
        graph[name] = deps
    return graph


def _reaches(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for dep in graph[todo.pop()] - seen:
            seen.add(dep)
            todo.append(dep)
    return seen


def test_no_import_circle_in_the_publisher() -> None:
    """Not through the settings, the sources or the catalogue, nor anywhere else: the command's arguments
    (publisher.arguments) and its event loops (publisher.event_loops) are apart from the CLI that the supervisor
    and the doctor would otherwise import back."""
    graph = _imports()
    circles = sorted(m for m in graph if m in _reaches(graph, m))
    assert not circles, f"modules that import themselves through others: {circles}"


def test_the_catalogue_builds_on_nothing_of_the_publisher() -> None:
    graph = _imports()
    for module in (m for m in graph if m.startswith("publisher.trs")):
        outside = {d for d in graph[module] if not d.startswith("publisher.trs")}
        assert not outside, f"{module} imports {outside}"


def test_every_tr_has_its_simulator_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(sim_ranking.SIM_TRS) == set(TRS)
    # What a TR added to the catalogue without a simulator entry meets: the import of the simulators fails.
    monkeypatch.setattr(sim_ranking, "SIM_TRS", {k: v for k, v in sim_ranking.SIM_TRS.items() if k != "opt10030"})
    with pytest.raises(RuntimeError, match=r"missing for \['opt10030'\]"):
        sim_ranking._check()
