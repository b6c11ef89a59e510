"""Print the model zoo: parameters and multiply-adds computed from each network's description, beside the
figures others published (each model's ``model_info(name).published``), each with its source.

    python -m mindcv_shufflenet.summary [--models PATTERN] [--image-size 224]
"""

from __future__ import annotations

import argparse
from typing import Dict, List, Optional

from . import runtime
from .models import list_models, model_counts, model_info
from .models.metadata import Reported

HEADER = ("| model | params (M) | params + BN stats (M) | params without aux heads (M) | MACs (M) | published MFLOPs | "
          "published params (M) | MindCV top-1 | official top-1 |")


def model_table(pattern: str = "*", image_size: int = 224) -> str:
    """The model zoo as a Markdown table: computed counts beside the published figures, whose sources are
    listed below it by number. Counts are analytic where the model's family has a counter (V2, V2+, v2-50,
    V2.Large / ExLarge), else from the network built and run once (V1)."""
    sources: Dict[str, int] = {}

    def cite(figure: Optional[Reported], spec: str) -> str:
        if figure is None:
            return "-"
        number = sources.setdefault(figure.source, len(sources) + 1)
        return f"{format(figure.value, spec)} [{number}]"

    rows = [HEADER, "|" + "---|" * HEADER.count(" | ") + "---|"]
    for name in list_models(pattern):
        counts = model_counts(name, image_size)
        without = f"{counts.inference_params.trainable / 1e6:.3f}" if counts.aux_params.trainable else "-"
        published = model_info(name).published
        rows.append(f"| {name} | {counts.params.trainable / 1e6:.3f} | {counts.params.total / 1e6:.3f} | {without} | "
                    f"{counts.macs / 1e6:.1f} | {cite(published.mflops, '.0f')} | {cite(published.params_m, '.2f')} | "
                    f"{cite(published.top1_mindcv, '.2f')} | {cite(published.top1_official, '.2f')} |")
    notes = [f"[{number}] {source}" for source, number in sources.items()]
    return "\n".join(rows + ([""] + notes if notes else []))


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
