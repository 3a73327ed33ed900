"""The layout is the architecture (docs/architecture.md): imports go down only, there are no import circles,
a backend loads nothing of the layers above it, and modules stay small. Each rule is checked on the source."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

HPGC = Path(__file__).resolve().parents[2] / "hpgc"
# Lowest first. A module may import its own layer and the ones below; `config` assembles every package's
# settings (leaf modules), `cli` and `client` are entry points on top.
LAYERS = [
    {"models", "errors", "datadir", "logs"},
    {"net", "auth", "storage"},
    {"store"},
    {"backends"},
    {"packages"},
    {"jobs"},
    {"config"},
    {"api"},
    {"client", "cli"},
]
# config.py may reach only the settings modules of the layers above it (each package owns its settings)
SETTINGS_MODULES = {"hpgc.jobs.callbacks.settings", "hpgc.jobs.limits", "hpgc.jobs.ops_settings",
                    "hpgc.jobs.upload_settings"}
MAX_LINES = 320  # "about 300"


def _modules() -> dict[str, Path]:
    out = {}
    for path in HPGC.rglob("*.py"):
        name = ".".join(path.relative_to(HPGC.parent).with_suffix("").parts).removesuffix(".__init__")
        out[name] = path
    return out


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module → the hpgc modules it imports anywhere in it (also inside functions, not under TYPE_CHECKING)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
        found: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("hpgc"):
                targets = [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("hpgc")]
            for target in targets:
                while target not in modules and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in modules and target != name:
                    found.add(target)
        graph[name] = found
    return graph


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    return next((i for i, names in enumerate(LAYERS) if top in names), -1)


def test_imports_only_go_down() -> None:
    graph = _imports(_modules())
    upward = sorted(f"{m} → {t}" for m, targets in graph.items() for t in targets
                    if _layer(t) > _layer(m) and not (m == "hpgc.config" and t in SETTINGS_MODULES)
                    and m != "hpgc")
    assert upward == []


def test_no_import_circles() -> None:
    graph = _imports(_modules())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            if component:
                circles.append(sorted([v, *component]))

    for module in graph:
        if module not in index:
            visit(module)
    assert circles == []


@pytest.mark.parametrize("module", ["hpgc.backends.local.backend", "hpgc.backends.slurm.backend"])
def test_a_backend_loads_nothing_above_it(module: str) -> None:
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], capture_output=True,
                          text=True, timeout=60, check=True)
    loaded = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    above = sorted(m for m in loaded if m.split(".")[:2] in (["hpgc", "jobs"], ["hpgc", "store"], ["hpgc", "api"],
                                                              ["hpgc", "packages"], ["hpgc", "config"]))
    assert module in loaded and above == []


def test_modules_stay_small() -> None:
    big = {name: n for name, path in _modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert big == {}
