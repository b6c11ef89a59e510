"""Print the model zoo: parameters and multiply-adds computed from each network's description, beside the
figures others published (each model's ``model_info(name).published``), each with its source.

    python -m mindcv_shufflenet.summary [--models PATTERN] [--image-size 224]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Set

from . import runtime
from .models import Counts, list_models, model_counts, model_info
from .models.metadata import Accuracy, PublishedFigures, Reported

HEADER = ("| model | params (M) | params + BN stats (M) | params without aux heads (M) | MACs (M) | published MFLOPs | "
          "published params (M) | MindCV top-1 / top-5 | official top-1 / top-5 | paper top-1 |")


@dataclass(frozen=True)
class ZooRow:
    """One model of the zoo: what is computed here and what others published."""

    name: str
    counts: Counts
    published: PublishedFigures
    released: bool  # MindCV released ImageNet weights (``pretrained=True``)


def zoo_rows(pattern: str = "*", image_size: int = 224) -> List[ZooRow]:
    """Every registered model matching ``pattern``. Counts are analytic where the model's family has a
    counter (V2, V2+, v2-50, V2.Large / ExLarge), else from the network built and run once (V1)."""
    return [ZooRow(name, model_counts(name, image_size), model_info(name).published,
                   model_info(name).weights is not None) for name in list_models(pattern)]


class Citations:
    """Numbers the sources of a table's figures in order of first use: ``cite`` writes "value [n]",
    ``footnotes`` lists them."""

    def __init__(self) -> None:
        self._numbers: Dict[str, int] = {}
        self._as_errors: Set[str] = set()  # sources that publish error rates
        self._notes: List[str] = []

    def _number(self, source: str) -> int:
        return self._numbers.setdefault(source, len(self._numbers) + 1)

    def figure(self, figure: Optional[Reported], spec: str) -> str:
        if figure is None:
            return "-"
        return f"{format(figure.value, spec)} [{self._number(figure.source)}]"

    def accuracy(self, acc: Optional[Accuracy], model: str, with_top5: bool = True) -> str:
        """"top-1 / top-5 [n]" as accuracies; a source that gives error rates is cited as such."""
        if acc is None:
            return "-"
        if acc.stated_as_error:
            self._as_errors.add(acc.source)
        if acc.note:
            self._notes.append(f"{model}, {acc.source}: {acc.note}")
        text = f"{acc.top1_accuracy:.2f}"
        if with_top5 and acc.top5_accuracy is not None:
            text += f" / {acc.top5_accuracy:.2f}"
        return f"{text} [{self._number(acc.source)}]"

    def footnotes(self) -> List[str]:
        as_errors = " (error rates; shown as 100 - error)"
        lines = [f"- [{number}] {source}" + (as_errors if source in self._as_errors else "")
                 for source, number in self._numbers.items()]
        return lines + [f"- Note: {note}" for note in self._notes]


def table_rule(header: str) -> str:
    return "|" + "---|" * header.count(" | ") + "---|"


def model_table(pattern: str = "*", image_size: int = 224, rows: Optional[Sequence[ZooRow]] = None) -> str:
    """The model zoo as a Markdown table: computed counts beside the published figures, whose sources are
    listed below it by number."""
    cite = Citations()
    lines = [HEADER, table_rule(HEADER)]
    for row in zoo_rows(pattern, image_size) if rows is None else rows:
        counts, published = row.counts, row.published
        without = f"{counts.inference_params.trainable / 1e6:.3f}" if counts.aux_params.trainable else "-"
        lines.append(
            f"| {row.name} | {counts.params.trainable / 1e6:.3f} | {counts.params.total / 1e6:.3f} | {without} | "
            f"{counts.macs / 1e6:.1f} | {cite.figure(published.mflops, '.0f')} | "
            f"{cite.figure(published.params_m, '.2f')} | {cite.accuracy(published.mindcv, row.name)} | "
            f"{cite.accuracy(published.official, row.name)} | "
            f"{cite.accuracy(published.paper, row.name, with_top5=False)} |")
    notes = cite.footnotes()
    return "\n".join(lines + ([""] + notes if notes else []))


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="*", help="shell-style pattern of model names (default: all)")
    parser.add_argument("--image-size", type=int, default=224, help="input size for MACs (default: 224)")
    args = parser.parse_args(argv)
    if not list_models(args.models):
        raise ValueError(f"no model matches {args.models!r}: see the names in list_models()")
    if args.image_size < 32:
        raise ValueError(f"--image-size must be at least 32, got {args.image_size}")
    runtime.init_runtime(device="CPU", mode="pynative")
    print(model_table(args.models, args.image_size))
    return 0


if __name__ == "__main__":
    runtime.run_cli(main)
