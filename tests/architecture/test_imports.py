"""The package structure holds: no import cycle anywhere, imports in one direction, a light `blendset --help`.

The graph is read from the source with ``ast`` (every ``import``, function-level ones included, since a lazy
import closes a cycle just as well), so a new cycle fails here before anyone runs into it at import time.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGES = ("shared", "trainer", "blender_addon", "scenes")


def _modules() -> dict[str, str]:
    """Dotted module name -> file, for every module of our packages (the add-on's shared symlink excluded)."""
    found = {}
    for package in PACKAGES:
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, package)):
            dirnames[:] = [d for d in dirnames if d != "__pycache__" and not os.path.islink(os.path.join(dirpath, d))]
            for name in filenames:
                if name.endswith(".py"):
                    rel = os.path.relpath(os.path.join(dirpath, name), ROOT)[:-3].replace(os.sep, ".")
                    found[rel.removesuffix(".__init__")] = os.path.join(dirpath, name)
    return found


def _canonical(name: str) -> str:
    # inside Blender the add-on reaches shared/ through its symlink: blender_addon.shared.X is shared.X
    return name.replace("blender_addon.shared", "shared", 1) if name.startswith("blender_addon.shared") else name


def _imports(module: str, path: str, known: dict[str, str]) -> set[str]:
    """Our modules that ``module`` imports, resolved to the most specific known module."""
    is_package = path.endswith("__init__.py")
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    targets: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".") if is_package else module.split(".")[:-1]
                base = parts[: len(parts) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            # `from pkg import sub` needs only pkg.sub; `from pkg import name` needs pkg's __init__ itself
            names = [f"{prefix}.{a.name}" if _canonical(f"{prefix}.{a.name}") in known else prefix for a in node.names]
        for name in names:
            name = _canonical(name)
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
    return targets


def _graph() -> dict[str, set[str]]:
    known = {_canonical(m): p for m, p in _modules().items()}
    return {m: _imports(m, p, known) for m, p in known.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_anywhere():
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    # negative control: the checker is not blind
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_imports_go_one_way():
    """shared/ imports none of ours; the add-on never imports the trainer; the trainer never imports the add-on
    (it launches Blender as a process); scenes import only shared/."""
    graph = _graph()
    allowed = {
        "shared": ("shared",),
        "blender_addon": ("blender_addon", "shared"),
        "trainer": ("trainer", "shared"),
        "scenes": ("scenes", "shared"),
    }
    wrong = [
        f"{m} -> {t}" for m, targets in graph.items() for t in targets if not t.startswith(allowed[m.split(".")[0]])
    ]
    assert wrong == []


def test_commands_are_the_only_click_users():
    """Library code takes callbacks; only trainer/commands (and the root group) know click."""
    offenders = []
    for module, path in _modules().items():
        if module.startswith(("trainer.commands", "trainer.cli")) or not module.startswith("trainer"):
            continue
        tree = ast.parse(open(path, encoding="utf-8").read())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if any(n == "click" or n.startswith("click.") for n in names):
                offenders.append(module)
    assert offenders == []


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["gap", "--help"]])
def test_help_imports_neither_torch_nor_bpy(argv):
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from trainer.cli import cli\n"
        f"result = CliRunner().invoke(cli, {argv!r})\n"
        "assert result.exit_code == 0, result.output\n"
        "heavy = sorted(m for m in ('torch', 'torchvision', 'bpy', 'ray', 'matplotlib') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""
