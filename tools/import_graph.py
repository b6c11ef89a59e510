"""The package's imports of itself, read from the source with ``ast``: each module's imports within
``mindcv_shufflenet``, the import cycles, and the same between its parts (subpackages and top-level modules).

    python tools/import_graph.py            # every module's imports, then the parts'; exit 1 on a cycle
    python tools/import_graph.py --cycles   # only the cycles

Every import counts, wherever it stands (inside a function, under ``TYPE_CHECKING``): a cycle that only a
function-level import keeps from failing at import time is still a cycle in the design.
``tests/unit/test_layout.py`` checks that there are none, and which part may import which.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path
from typing import Dict, List, Optional, Set

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "mindcv_shufflenet"

Graph = Dict[str, Set[str]]


def module_files(root: Path = ROOT, package: str = PACKAGE) -> Dict[str, Path]:
    """``dotted.module.name -> file`` for every module of ``package`` (a package is its ``__init__``)."""
    files = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path
    return files


def _imported(node: ast.AST, module: str, is_package: bool, known: Set[str]) -> List[str]:
    """The modules of ``known`` that one import statement in ``module`` loads."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name in known]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[:len(base) - node.level + 1]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    found = []
    for alias in node.names:  # ``from pkg import submodule`` loads the submodule
        if f"{source}.{alias.name}" in known:
            found.append(f"{source}.{alias.name}")
        elif source in known and source not in found:
            found.append(source)
    return found


def import_graph(root: Path = ROOT, package: str = PACKAGE) -> Graph:
    """``module -> the package's modules it imports`` (itself left out)."""
    files = module_files(root, package)
    known = set(files)
    graph: Graph = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        is_package = path.name == "__init__.py"
        graph[module] = {target for node in ast.walk(tree)
                         for target in _imported(node, module, is_package, known) if target != module}
    return graph


def part_of(module: str, package: str = PACKAGE) -> Optional[str]:
    """The part a module belongs to: its subpackage or top-level module (``models``, ``runtime``); None for
    the package's own ``__init__``, which only hands names on."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def part_graph(graph: Graph) -> Graph:
    """The imports between parts: ``models -> {checkpoints, constants, ...}``."""
    parts: Graph = {}
    for module, targets in graph.items():
        source = part_of(module)
        if source is None:
            continue
        parts.setdefault(source, set())
        parts[source] |= {part_of(t) for t in targets if part_of(t) not in (None, source)}
    return parts


def cycles(graph: Graph) -> List[List[str]]:
    """Each strongly connected group of more than one node (Tarjan), sorted: the nodes that import each
    other, directly or through the others of the group."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    groups: List[List[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cycles", action="store_true", help="print only the cycles")
    args = p.parse_args(argv)
    graph = import_graph()
    parts = part_graph(graph)
    if not args.cycles:
        for title, shown in (("modules", graph), ("parts", parts)):
            print(f"# {title}")
            for node in sorted(shown):
                print(f"{node} -> {', '.join(sorted(shown[node])) or '-'}")
    found = [("module", group) for group in cycles(graph)] + [("part", group) for group in cycles(parts)]
    for kind, group in found:
        print(f"{kind} cycle: {' <-> '.join(group)}")
    if not found:
        print("no import cycles")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
