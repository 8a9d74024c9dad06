"""The layering stays true: no import cycle between any two modules, and the public surface resolves.

``make lint`` runs the import-linter layers contract of ``pyproject.toml`` (no upward import between layers);
this file adds what that contract cannot see: cycles between modules of one package.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import holocron
from holocron.vectors import top_k


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the groups of modules that import each other, directly or not."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return groups


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert strongly_connected(graph) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_through_others() -> None:
    graph = grimp.build_graph("holocron")
    modules = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert strongly_connected(modules) == []


def test_import_linter_contracts_hold() -> None:
    script = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(script), "--no-cache"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout, done.stdout


def test_every_public_name_resolves() -> None:
    for name in holocron.__all__:
        assert getattr(holocron, name) is not None, name
    assert holocron.__version__


@given(arrays(np.float32, st.integers(0, 40), elements=st.sampled_from([0.0, 0.5, 1.0, -1.0])), st.integers(-1, 45))
def test_top_k_is_a_stable_full_sort_cut_at_k(scores: np.ndarray, k: int) -> None:
    expected = np.lexsort((np.arange(len(scores)), -scores))[: max(k, 0)]
    assert top_k(scores, k).tolist() == expected.tolist()
