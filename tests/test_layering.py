"""The house's rules, checked on the import graph of every module of lamcap (function-local imports included):
no cycle between modules, and imports that only point down the layers of docs/ARCHITECTURE.md."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {"lamcap": "lamcap", "lamcap.predictions": "predictions", "lamcap.kernels": "kernels",
            "lamcap.store": "store", "lamcap.orchestrator": "orchestrator", "lamcap.analysis": "analysis"}
# Who may import whom: a module of the layer on the left may import modules of the layers on the right (and its
# own). The top package `lamcap` (the API, the command line) may import anything.
MAY_IMPORT = {
    "lamcap.errors": set(),
    "lamcap.predictions": {"lamcap.errors"},
    "lamcap.kernels": {"lamcap.errors", "lamcap.predictions"},
    "lamcap.store": {"lamcap.errors", "lamcap.kernels.outcome", "lamcap.kernels.vocabulary"},
    "lamcap.orchestrator.spec": {"lamcap.errors", "lamcap.predictions", "lamcap.kernels.vocabulary",
                                 "lamcap.kernels.settings", "lamcap.kernels.budget"},
    "lamcap.orchestrator.learners": {"lamcap.errors", "lamcap.predictions", "lamcap.orchestrator.spec"},
    "lamcap.orchestrator.planning": {"lamcap.errors", "lamcap.predictions", "lamcap.kernels",
                                     "lamcap.orchestrator.spec", "lamcap.orchestrator.learners"},
    "lamcap.orchestrator.runtime": {"lamcap.errors", "lamcap.predictions", "lamcap.kernels", "lamcap.store",
                                    "lamcap.orchestrator.spec", "lamcap.orchestrator.learners",
                                    "lamcap.orchestrator.planning", "lamcap"},  # "lamcap": its __version__ only
    "lamcap.analysis": {"lamcap.errors", "lamcap.predictions", "lamcap.kernels.outcome", "lamcap.store"},
}
TORCH_FREE = ["lamcap.errors", "lamcap.predictions", "lamcap.kernels.vocabulary", "lamcap.kernels.outcome",
              "lamcap.kernels.settings", "lamcap.kernels.budget", "lamcap.store.reader", "lamcap.store.writer",
              "lamcap.orchestrator.spec", "lamcap.orchestrator.learners.expansion", "lamcap.orchestrator.planning.plan"]


def modules() -> dict[str, Path]:
    out = {}
    for package, folder in PACKAGES.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = [p for p in path.relative_to(REPO / folder).with_suffix("").parts if p != "__init__"]
            out[".".join([package, *parts])] = path
    return out


def imports(path: Path, known: set[str]) -> set[str]:
    """The lamcap modules a file imports anywhere in it; `from pkg import submodule` names the submodule."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lamcap"):
            subs = {f"{node.module}.{a.name}" for a in node.names} & known
            out |= subs
            if len(subs) < len(node.names):
                out.add(node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("lamcap")}
    return out


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: {m for m in imports(path, set(found)) if m in found and m != name} for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def layer_of(module: str) -> str | None:
    return max((layer for layer in MAY_IMPORT if module == layer or module.startswith(layer + ".")),
               key=len, default=None)


def test_no_module_of_lamcap_takes_part_in_an_import_cycle():
    assert cycles(graph()) == []


def test_every_import_points_down_the_layers():
    wrong = []
    for module, deps in graph().items():
        layer = layer_of(module)
        if layer is None:  # the top package: the API, the command line
            continue
        for dep in deps:
            if layer_of(dep) == layer:
                continue
            allowed = MAY_IMPORT[layer]
            if not any(dep == a or (a != "lamcap" and dep.startswith(a + ".")) for a in allowed):
                wrong.append(f"{module} -> {dep}")
    assert wrong == []


def test_the_rules_can_fail():
    assert cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
    assert layer_of("lamcap.orchestrator.runtime.driver") == "lamcap.orchestrator.runtime"
    assert layer_of("lamcap.api") is None and layer_of("lamcap.store.reader") == "lamcap.store"


def test_no_module_is_longer_than_450_lines():
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > 450}
    assert long == {}


@pytest.mark.parametrize("module", TORCH_FREE)
def test_torch_and_ray_stay_out_of_the_light_modules(module):
    code = f"import sys, {module}; print(sorted(m for m in ('torch', 'ray', 'xarray') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"
