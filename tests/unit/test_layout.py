"""The package's layout stays a stack: no import cycles, each part (a subpackage or top-level module of
mindcv_shufflenet) imports only the parts below it, nothing changes the import path, and nothing outside tests/
imports from tests/. ``python tools/import_graph.py`` prints the graph these tests read."""

import ast
import re
from pathlib import Path
from typing import Iterator

import pytest

import import_graph  # tools/ is on the tests' path (pyproject.toml)
from tests.helpers import ROOT

# Lowest first. A part imports only the parts of the layers below its own; a new part must be placed here.
LAYERS = (
    ("constants",),
    ("kernels", "checkpoints", "runtime", "data", "npu"),
    ("models",),
    ("config", "convert", "summary", "compile_cache"),
    ("engine", "cli"),
    ("deploy", "plot", "preflight"),
)
LAYER_OF = {part: i for i, layer in enumerate(LAYERS) for part in layer}


@pytest.fixture(scope="module")
def graph():
    return import_graph.import_graph()


def test_no_module_of_the_package_takes_part_in_an_import_cycle(graph):
    assert import_graph.cycles(graph) == []


def test_the_parts_of_the_package_import_each_other_in_one_direction(graph):
    assert import_graph.cycles(import_graph.part_graph(graph)) == []


def test_each_part_imports_only_the_layers_below_it(graph):
    parts = import_graph.part_graph(graph)
    assert sorted(set(parts) - set(LAYER_OF)) == [], "a new part: place it in LAYERS"
    upward = [f"{source} -> {target}" for source, targets in sorted(parts.items()) for target in sorted(targets)
              if LAYER_OF[target] >= LAYER_OF[source]]
    assert upward == []


@pytest.mark.parametrize("part, never", [
    ("models", ("engine", "convert", "deploy", "data", "config", "cli")),
    ("checkpoints", ("models", "engine", "convert", "deploy")),
    ("convert", ("engine", "deploy", "data")),
    ("engine", ("deploy", "cli")),
])
def test_lower_parts_do_not_reach_up(graph, part, never):
    parts = import_graph.part_graph(graph)
    assert sorted(parts[part] & set(never)) == []


def test_the_checker_finds_a_cycle_and_the_part_it_runs_up_to(tmp_path):
    """The tests above can fail: a package whose models import its engine, and back, is caught."""
    package = tmp_path / "mindcv_shufflenet"
    for folder in ("models", "engine"):
        (package / folder).mkdir(parents=True)
        (package / folder / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "models" / "net.py").write_text("from ..engine import loop\n")
    (package / "engine" / "loop.py").write_text("def run():\n    from ..models.net import Net\n")
    graph = import_graph.import_graph(tmp_path)
    assert import_graph.cycles(graph) == [["mindcv_shufflenet.engine.loop", "mindcv_shufflenet.models.net"]]
    assert import_graph.cycles(import_graph.part_graph(graph)) == [["engine", "models"]]


def _repository_files(*suffixes: str) -> Iterator[Path]:
    """The repository's own files: no virtual environment, no hidden or build folder."""
    for path in sorted(ROOT.rglob("*")):
        relative = path.relative_to(ROOT)
        if path.suffix not in suffixes or not path.is_file():
            continue
        if any(part.startswith(".") or part in ("build", "dist", "__pycache__") or part.endswith(".egg-info")
               for part in relative.parts[:-1]):
            continue
        if any((ROOT / Path(*relative.parts[:i]) / "pyvenv.cfg").exists() for i in range(1, len(relative.parts))):
            continue
        yield path


def test_nothing_changes_the_import_path():
    """Scripts and tests import the installed package (scripts/env.sh installs it); tools/ reaches the tests
    through pytest's ``pythonpath``."""
    pattern = re.compile(r"sys\.path\.(insert|append)\(")
    found = [str(path.relative_to(ROOT)) for path in _repository_files(".py", ".sh")
             if pattern.search(path.read_text(encoding="utf-8"))]
    assert found == []


def test_nothing_outside_tests_imports_from_tests():
    tests = ROOT / "tests"
    names = {"tests", "conftest"} | {path.stem for path in tests.glob("*.py")}
    found = []
    for path in _repository_files(".py"):
        if tests in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                modules = [node.module or ""]
            else:
                continue
            found += [f"{path.relative_to(ROOT)}: {m}" for m in modules if m.split(".")[0] in names]
    assert found == []
