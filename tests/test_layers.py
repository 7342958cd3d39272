"""The package's layers, bottom to top, and the one rule that keeps them: a module imports from its own
layer (without a circle) or from layers below, never upward, at module level or inside a function.

Every module is parsed with `ast`, imports inside functions included (Python runs those too, so
they count for layers and circles alike). A function-level import of the package's own code is
for deferring a heavy library (torch, numba, matplotlib, ...), or, in cli/, a command's
implementation: never to hide a circle. argparse lives only in cli/, matplotlib only in views/.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "lecun1989"

# Bottom to top: (layer, the files and folders in it, relative to the package). README.md's Layout
# section draws this table, and docs/LAYOUT.md says what each module does.
LAYERS = (
    ("ground", ("__init__.py", "paper.py", "errors.py")),
    ("store", ("store/",)),
    ("science", ("data.py", "digits.py", "digits_compiled.py", "segment.py", "reader_data.py", "config.py", "draws.py", "model.py", "model_compiled.py", "optim.py", "engines/", "train.py", "recipes.py", "sweep.py",
                 "bench.py", "results.py", "trained.py")),
    ("reading", ("reading/",)),
    ("views", ("views/",)),
    ("studies", ("studies/",)),
    ("cli", ("cli/", "__main__.py")),
)
# Third-party libraries worth deferring into a function: each costs a noticeable import time.
HEAVY = {"torch", "numba", "llvmlite", "matplotlib", "PIL", "pooch", "safetensors", "tensorboard", "tqdm", "ray",
         "platformdirs"}
# A third-party library allowed only in one layer: the command line parses, the views draw.
ONLY_IN = {"argparse": "cli", "matplotlib": "views"}


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(root: Path, path: Path) -> str | None:
    rel = path.relative_to(root).as_posix()
    for layer, members in LAYERS:
        if any(rel == m or (m.endswith("/") and rel.startswith(m)) for m in members):
            return layer
    return None


def imports(root: Path, path: Path):
    """(line, the import as written, the module it reaches: internal or third-party, at module level)."""
    name = module_name(root, path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    # at module level: not inside a function, though perhaps inside a module-level `with` or `try`
    in_functions = {id(inner) for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                    for inner in ast.walk(node)}
    top = {id(node) for node in ast.walk(tree) if id(node) not in in_functions}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, f"import {alias.name}", alias.name, id(node) in top
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            written = f"from {'.' * node.level}{node.module or ''} import {', '.join(a.name for a in node.names)}"
            for alias in node.names:
                # `from pkg import mod` imports the module pkg.mod; `from mod import name`, mod itself
                candidate = f"{source}.{alias.name}"
                target = candidate if module_file(root, candidate) else source
                yield node.lineno, written, target, id(node) in top


def module_file(root: Path, name: str) -> Path | None:
    if name != root.name and not name.startswith(root.name + "."):
        return None
    if name == root.name:
        return root / "__init__.py"
    rel = Path(*name.split(".")[1:])
    for candidate in (root / rel.with_suffix(".py"), root / rel / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def violations(root: Path = PACKAGE) -> list[str]:
    """Every breach of the rule under the package folder `root`, one line each, naming file and import."""
    order = [layer for layer, _ in LAYERS]
    files = sorted(root.rglob("*.py"))
    found, graph, edges, heavy_direct = [], {}, {}, {}
    for path in files:
        rel = path.relative_to(root.parent).as_posix()
        layer = layer_of(root, path)
        if layer is None:
            found.append(f"{rel} is in no layer: add it to LAYERS in tests/test_layers.py (and to docs/LAYOUT.md)")
            continue
        me = module_name(root, path)
        graph.setdefault(me, set())
        heavy_direct[me] = False
        for line, written, target, at_top in imports(root, path):
            third_party = target.split(".")[0]
            if target.split(".")[0] != root.name:
                if third_party in ONLY_IN and ONLY_IN[third_party] != layer:
                    found.append(f"{rel}:{line}: `{written}`: {third_party} belongs in {ONLY_IN[third_party]}/ only")
                heavy_direct[me] |= at_top and third_party in HEAVY
                continue
            target_file = module_file(root, target)
            if target_file is None:
                found.append(f"{rel}:{line}: `{written}`: no module {target}")
                continue
            their = layer_of(root, target_file)
            if their is not None and order.index(their) > order.index(layer):
                found.append(f"{rel}:{line}: `{written}` imports upward, from {their} into {layer}")
            if target != me:
                graph[me].add(target)
                edges.setdefault(me, []).append((target, at_top, rel, line, written, layer))
    found += _circles(graph, root)
    found += _deferred(edges, heavy_direct)
    return found


def _circles(graph: dict[str, set[str]], root: Path) -> list[str]:
    """One line per group of modules that import each other, round a cycle (Tarjan's components)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append("a circle of imports: " + " <-> ".join(sorted(group)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _deferred(edges, heavy_direct: dict[str, bool]) -> list[str]:
    """A function-level import of the package's own code outside cli/ must defer something heavy: a
    module that imports a heavy library at module level, itself or through what it imports there."""
    heavy = dict(heavy_direct)
    changed = True
    while changed:
        changed = False
        for me, out in edges.items():
            if not heavy.get(me) and any(at_top and heavy.get(target) for target, at_top, *_ in out):
                heavy[me] = changed = True
    return [f"{rel}:{line}: `{written}` inside a function defers nothing heavy: import it at the top of the module"
            for me, out in edges.items() for target, at_top, rel, line, written, layer in out
            if not at_top and layer != "cli" and not heavy.get(target)]


def test_the_package_keeps_its_layers():
    assert violations() == []


@pytest.fixture
def planted(tmp_path):
    """A copy of the package to plant faults in."""
    root = tmp_path / "lecun1989"
    shutil.copytree(PACKAGE, root, ignore=shutil.ignore_patterns("__pycache__", "web"))
    return root


def _plant(path: Path, line: str, inside_function: bool = True) -> None:
    text = path.read_text(encoding="utf-8")
    path.write_text(text + (f"\n\ndef _planted():\n    {line}\n" if inside_function else f"\n{line}\n"),
                    encoding="utf-8")


def test_an_upward_import_inside_a_function_is_caught(planted):
    _plant(planted / "store" / "atomic.py", "from ..cli import main")
    found = violations(planted)
    assert found[0].startswith("lecun1989/store/atomic.py:") and found[0].endswith(
        "`from ..cli import main` imports upward, from cli into store"), found
    assert any(f.startswith("a circle of imports: ") for f in found), found   # cli imports the store back


def test_a_circle_within_a_layer_is_caught(planted):
    _plant(planted / "paper.py", "from .errors import LecunError")
    _plant(planted / "errors.py", "from . import paper")
    found = violations(planted)
    assert any("a circle of imports: lecun1989.errors <-> lecun1989.paper" in f for f in found), found


def test_a_file_outside_every_layer_and_a_stray_library_are_caught(planted):
    (planted / "helpers.py").write_text("import argparse\n", encoding="utf-8")
    _plant(planted / "reading" / "images.py", "import matplotlib", inside_function=False)
    found = violations(planted)
    assert any(f.startswith("lecun1989/helpers.py is in no layer") for f in found), found
    assert any("lecun1989/reading/images.py:" in f and "matplotlib belongs in views/ only" in f for f in found), found


def test_a_function_level_import_that_defers_nothing_is_caught(planted):
    _plant(planted / "train.py", "from .results import stats")
    found = violations(planted)
    assert len(found) == 1 and "lecun1989/train.py:" in found[0] and "defers nothing heavy" in found[0], found


def test_the_command_line_parses_without_torch_or_numba():
    """--help, and every mistyped option, answer without loading the heavy libraries (config.py holds
    the settings the parser offers)."""
    code = ("import sys\nfrom lecun1989.cli import build_parser\nbuild_parser()\n"
            "print(sorted(m for m in ('torch', 'numba', 'matplotlib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
