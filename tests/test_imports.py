"""The package's imports point one way: config/presets/utils -> models -> data -> envs -> agents -> training ->
integrations (a module never imports one to its right, even lazily inside a function), no library module imports a
script or a benchmark, and the module-level imports have no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "seqgan_rl"
LAYERS = ["", "models", "data", "envs", "agents", "training", "integrations"]
"""Subpackage of each layer, left to right ("" = the top-level modules: config, presets, utils)."""


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    parts = module.split(".")
    sub = parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else ""
    return LAYERS.index(sub)


def imports(path: Path) -> list[tuple[str, bool]]:
    """``(imported module, at module level)`` for every import of ``path`` (``from x import y`` counts
    ``x.y`` when that is a module of the package)."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        at_top = id(node) in top
        if isinstance(node, ast.Import):
            found += [(a.name, at_top) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, at_top))
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                if (PACKAGE.parent / sub.replace(".", "/")).with_suffix(".py").exists():
                    found.append((sub, at_top))
    return found


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def test_every_import_points_left():
    wrong = []
    for name, path in package_modules().items():
        for target, _ in imports(path):
            if target.split(".")[0] in ("scripts", "benchmarks", "examples", "tests"):
                wrong.append(f"{name} imports {target}")
            elif target.startswith("seqgan_rl.") and layer(target) > layer(name):
                wrong.append(f"{name} (layer {LAYERS[layer(name)] or 'top'}) imports {target}")
    assert not wrong, "\n".join(wrong)


def test_agents_and_envs_never_import_the_loop():
    for name, path in package_modules().items():
        if name.startswith(("seqgan_rl.agents", "seqgan_rl.envs", "seqgan_rl.models")):
            assert not [t for t, _ in imports(path) if t.startswith("seqgan_rl.training")], name


def test_no_import_cycle():
    modules = package_modules()
    graph = {
        name: {t for t, top in imports(path) if top and t in modules and t != name} for name, path in modules.items()
    }
    done: set[str] = set()

    def visit(node: str, stack: list[str]) -> None:
        if node in stack:
            raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(node) :] + [node]))
        if node in done:
            return
        for nxt in graph[node]:
            visit(nxt, [*stack, node])
        done.add(node)

    for name in graph:
        visit(name, [])


def test_the_layers_are_what_the_checks_believe():
    assert layer("seqgan_rl.config") == layer("seqgan_rl.presets") == layer("seqgan_rl") == 0
    assert layer("seqgan_rl.envs.vector") == 3 and layer("seqgan_rl.training") == 5
    assert ("seqgan_rl.agents.base", True) in imports(PACKAGE / "agents" / "reinforce.py")
