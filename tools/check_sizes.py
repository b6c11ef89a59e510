"""List the functions in mindcv_shufflenet/ longer than 80 lines and the modules longer than 600; exit 1 if
there are any.

    python tools/check_sizes.py [--max-function 80] [--max-module 600] [ROOT]

A function's length runs from its ``def`` (decorators left out) to its last line, nested functions
included; a module's is its number of lines.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

PACKAGE = Path(__file__).resolve().parents[1] / "mindcv_shufflenet"


def oversized(root: Path, max_function: int, max_module: int) -> Iterator[Tuple[str, int]]:
    """(where, lines) of each module and function over its limit, module by module in path order."""
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(root.parent).as_posix()
        lines = len(text.splitlines())
        if lines > max_module:
            yield where, lines
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > max_function:
                    yield f"{where}:{node.lineno} {node.name}", length


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", type=Path, default=PACKAGE,
                        help="package folder (default: mindcv_shufflenet)")
    parser.add_argument("--max-function", type=int, default=80, help="most lines a function may have")
    parser.add_argument("--max-module", type=int, default=600, help="most lines a module may have")
    args = parser.parse_args(argv)
    found = list(oversized(args.root, args.max_function, args.max_module))
    for where, lines in found:
        print(f"{where}: {lines} lines")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
