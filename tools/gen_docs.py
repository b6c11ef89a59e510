"""Write the generated parts of the documentation from the code, or check that they are current.

    python tools/gen_docs.py           # rewrite the generated regions of README.md and docs/
    python tools/gen_docs.py --check   # write nothing; exit 1 naming each region that differs

A generated region sits between two HTML comments (invisible on GitHub and on the site)::

    <!-- BEGIN GENERATED model-zoo: edit tools/gen_docs.py or the code, then run python tools/gen_docs.py -->
    ...
    <!-- END GENERATED model-zoo -->

Everything outside the regions is written by hand. The regions:

* ``README.md``, ``readme-zoo``: the model zoo in brief, from each model's metadata and counts;
* ``docs/model-zoo.md``, ``model-zoo`` and ``released-weights``: the whole table
  (``mindcv_shufflenet.summary.model_table``) and MindCV's released checkpoints;
* ``docs/training-options.md``, ``training-options``: every key of ``mindcv_shufflenet.config.OPTIONS``;
* ``configs/README.md``, ``recipe-table``: each model's recipe files and the published accuracy they quote.

``tests/unit/test_docs_generated.py`` runs ``--check``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from mindcv_shufflenet import runtime
from mindcv_shufflenet.config import Option, grouped_options
from mindcv_shufflenet.models import model_info
from mindcv_shufflenet.summary import Citations, ZooRow, model_table, table_rule, zoo_rows

ROOT = Path(__file__).resolve().parents[1]
COMMAND = "python tools/gen_docs.py"
BEGIN = "<!-- BEGIN GENERATED {name}: edit tools/gen_docs.py or the code, then run python tools/gen_docs.py -->"
END = "<!-- END GENERATED {name} -->"

# ---------------------------------------------------------------------------------------------------
# the option reference

KIND_NAMES = {"bool": "bool", "int": "int", "float": "float", "str": "str", "floats": "floats",
              "ints": "ints", "jitter": "float or floats"}


def _yaml_value(value: object) -> str:
    """A default as it is written in a recipe."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_yaml_value(v) for v in value) + "]"
    if value == "":
        return "''"
    return str(value)


def _cell(text: str) -> str:
    """Table-cell text: a literal | would end the cell, and <split> would be read as an HTML tag."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _option_row(option: Option) -> str:
    kind = KIND_NAMES[option.kind] + (" or null" if option.optional and option.default is not None else "")
    choices = ", ".join(f"`{c}`" for c in option.choices) if option.choices else ""
    return (f"| `{option.name}` | {kind} | `{_yaml_value(option.default)}` | {choices} | "
            f"{_cell(option.help)} |")


def training_options() -> str:
    header = "| key | type | default | choices | what it sets |"
    parts = []
    for title, options in grouped_options():
        parts += [f"### {title.capitalize()}", "", header, table_rule(header)]
        parts += [_option_row(o) for o in options] + [""]
    return "\n".join(parts).rstrip()


# ---------------------------------------------------------------------------------------------------
# the model zoo

def _best_accuracy(row: ZooRow, cite: Citations) -> Tuple[str, str]:
    """The published top-1 / top-5 a user can expect from weights here: MindCV's (its checkpoints load
    as they are), else the official code's (convert its weights), else the paper's."""
    for label, acc in (("MindCV", row.published.mindcv), ("official", row.published.official),
                       ("paper", row.published.paper)):
        if acc is not None:
            return cite.accuracy(acc, row.name), label
    return "-", "-"


def readme_zoo(rows: Sequence[ZooRow]) -> str:
    """The README's table: one line per model, its computed size, the best-known published accuracy."""
    header = "| model | params (M) | MACs (M) | published top-1 / top-5 | by | MindCV weights |"
    lines = [header, table_rule(header)]
    cite = Citations()
    for row in rows:
        accuracy, by = _best_accuracy(row, cite)
        lines.append(f"| `{row.name}` | {row.counts.params.trainable / 1e6:.2f} | {row.counts.macs / 1e6:.0f} | "
                     f"{accuracy} | {by} | {'yes' if row.released else '-'} |")
    return "\n".join(lines + [""] + cite.footnotes())


def released_weights(rows: Sequence[ZooRow]) -> str:
    header = "| model | file (below `$MINDCV_SHUFFLENET_HOME`) | SHA-256 prefix | evaluation input |"
    lines = [header, table_rule(header)]
    for row in rows:
        info = model_info(row.name)
        if info.weights is None:
            continue
        p = info.preprocessing
        lines.append(f"| `{row.name}` | [`{info.weights.relative_path}`]({info.weights.url}) | "
                     f"`{info.weights.sha256_prefix}` | {p.input_size} from {round(p.input_size / p.crop_pct)}, "
                     f"{p.interpolation}, {p.describe()} |")
    return "\n".join(lines)


def recipe_table(rows: Sequence[ZooRow], configs_dir: Path) -> str:
    """Every model with recipes in configs/: its recipe files beside the published accuracy they quote."""
    header = "| model | recipes | MindCV top-1 / top-5 | official top-1 / top-5 | paper top-1 |"
    lines = [header, table_rule(header)]
    cite = Citations()
    for row in rows:
        files = sorted(configs_dir.glob(f"shufflenetv*/{row.name}_*.yaml"))
        if not files:
            continue
        links = ", ".join(f"[{f.stem[len(row.name) + 1:]}]({f.relative_to(configs_dir).as_posix()})" for f in files)
        p = row.published
        lines.append(f"| `{row.name}` | {links} | {cite.accuracy(p.mindcv, row.name)} | "
                     f"{cite.accuracy(p.official, row.name)} | {cite.accuracy(p.paper, row.name, with_top5=False)} |")
    return "\n".join(lines + [""] + cite.footnotes())


# ---------------------------------------------------------------------------------------------------
# regions in files

def replace_region(text: str, name: str, content: str, path: Path) -> str:
    begin, end = BEGIN.format(name=name), END.format(name=name)
    pattern = re.compile(re.escape(begin) + r"\n.*?" + re.escape(end), re.S)
    if len(pattern.findall(text)) != 1:
        raise ValueError(f"{path}: needs exactly one generated region {name!r}, between the lines\n  {begin}\n"
                         f"  {end}")
    return pattern.sub(lambda _: f"{begin}\n{content}\n{end}", text)


def expected_files(root: Path) -> Dict[Path, str]:
    """Each file with generated regions, as the generator would write it now."""
    runtime.init_runtime(device="CPU", mode="pynative")  # V1's counts come from running the network once
    rows = zoo_rows()
    regions: Dict[str, List[Tuple[str, Callable[[], str]]]] = {
        "README.md": [("readme-zoo", lambda: readme_zoo(rows))],
        "docs/model-zoo.md": [("model-zoo", lambda: model_table(rows=rows)),
                              ("released-weights", lambda: released_weights(rows))],
        "docs/training-options.md": [("training-options", training_options)],
        "configs/README.md": [("recipe-table", lambda: recipe_table(rows, root / "configs"))],
    }
    files = {}
    for relative, parts in regions.items():
        path = root / relative
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: it holds generated regions ({', '.join(n for n, _ in parts)})")
        text = path.read_text(encoding="utf-8")
        for name, make in parts:
            text = replace_region(text, name, make(), path)
        files[path] = text
    return files


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a generated region differs")
    parser.add_argument("--root", type=Path, default=ROOT, help="the folder holding README.md, docs/ and configs/")
    args = parser.parse_args(argv)
    try:
        files = expected_files(args.root.resolve())
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    stale = [path for path, text in files.items() if path.read_text(encoding="utf-8") != text]
    if args.check:
        for path in stale:
            print(f"out of date: {path}")
        if stale:
            print(f"{len(stale)} file(s) with generated regions out of date: run {COMMAND}", file=sys.stderr)
            return 1
        print(f"{len(files)} files with generated regions up to date")
        return 0
    for path in stale:
        path.write_text(files[path], encoding="utf-8")
        print(f"wrote {path}")
    print(f"{len(files)} files with generated regions, {len(stale)} rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
