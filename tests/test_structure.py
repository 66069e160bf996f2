"""The package's shape, checked: no import cycles (lazy imports count), the
commands that only read a model never load the trainer, and no module
outside charrnn/cells/ names a cell kind or branches on one."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from charrnn import cells

PACKAGE = Path(__file__).resolve().parent.parent / "charrnn"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """charrnn modules `path` imports, anywhere in it (inside functions too)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only = {id(n) for block in ast.walk(tree) if _is_type_checking(block) for n in ast.walk(block)}
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue  # `if TYPE_CHECKING:` imports never run
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from . import x` imports a module
    return {m for m in found if m in modules and m != name}


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    edges = {m: imports_of(p, modules) for m, p in paths.items()}
    # Importing a.b.c runs a/__init__ and a/b/__init__ first.
    for m in modules:
        edges[m] |= {p for p in (m.rsplit(".", i)[0] for i in range(1, m.count(".") + 1)) if p in modules and p != m}
    return edges


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def written(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The imports as written: without the implicit edges from a submodule to
    its parent packages (a package's __init__ importing its own submodules
    is how packages work, not a cycle)."""
    return {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}


def test_no_module_imports_itself_through_others(graph):
    direct = written(graph)
    cycles = sorted(m for m in direct if m in reachable(direct, m))
    assert cycles == [], f"modules on an import cycle: {cycles}"


@pytest.mark.parametrize("command", ["charrnn.cli.sample", "charrnn.cli.eval", "charrnn.cli.inspect",
                                     "charrnn.cli.plot", "charrnn.evaluate", "charrnn.sample"])  # fmt: skip
def test_reading_a_model_never_loads_the_trainer(graph, command):
    # (The `charrnn` program registers every command, so its process loads them all;
    # what matters is that no command or library module needs the trainer to read a model.)
    loaded = reachable(written(graph), command)
    assert not loaded & {"charrnn.training.loop", "charrnn.training.launch", "charrnn.cli.train"}, sorted(loaded)


def test_a_commands_module_loads_no_trainer_in_a_fresh_process():
    code = (
        "import sys, charrnn.cli.sample, charrnn.cli.eval, charrnn.cli.inspect, charrnn.cli.plot\n"
        "print(sorted(m for m in sys.modules if m.startswith('charrnn.training.') or m == 'charrnn.cli.train'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"  # nothing of training: the model, checkpoints and scoring stand alone


def test_the_old_entry_point_still_starts():
    # An editable install keeps its generated `charrnn` script across a pull: it imports charrnn.cli:main.
    code = "from charrnn.cli import app, main; from charrnn.cli.entry import main as m; assert main is m"
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


def test_the_graph_sees_imports(graph):
    # The checks above are only as good as the graph: it must see both kinds of import.
    assert "charrnn.training.loop" in graph["charrnn.training.launch"]  # from .loop import ...
    assert "charrnn.checkpoint" in graph["charrnn.training.loop"]  # from .. import checkpoint as ckpt
    assert "charrnn.training.loop" in reachable(graph, "charrnn.cli.train")


@pytest.mark.parametrize("module", ["charrnn.checkpoint", "charrnn.evaluate"])
def test_the_checkpoint_and_scoring_layers_import_nothing_from_training(graph, module):
    assert not {m for m in reachable(written(graph), module) if m.startswith("charrnn.training")}


def test_only_cells_know_the_kinds():
    # A line may name a kind's word for something else (a JSON key fixed by
    # its readers) if it says so: "# not a cell kind".
    kinds = "|".join(map(re.escape, cells.names()))
    named = re.compile(rf"""["']({kinds})["']|\bkind\s*(==|!=|\bis\b|\bin\b)""")
    offenders = [
        f"{path.relative_to(PACKAGE)}:{n}: {line.strip()}"
        for path in PACKAGE.rglob("*.py")
        if "cells" not in path.relative_to(PACKAGE).parts
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if named.search(line) and "# not a cell kind" not in line
    ]
    assert offenders == []
