"""Print the model zoo: parameters and multiply-adds computed from each network, beside the figures
the papers and MindCV report (each model's ``model_info(name).published``).

    python -m mindcv_shufflenet.summary [--models PATTERN] [--image-size 224]
"""

from __future__ import annotations

import argparse
from typing import List, Optional

from . import runtime
from .models import count_macs, count_params, create_model, list_models, model_info
from .models.metadata import Reported


def model_table(pattern: str = "*", image_size: int = 224) -> str:
    """The model zoo as a Markdown table: computed counts beside the published figures."""
    header = ("| model | params (M) | params + BN stats (M) | MACs (M) | paper MFLOPs | MindCV top-1 | "
              "official top-1 |")
    rows = [header, "|" + "---|" * 7]
    for name in list_models(pattern):
        net = create_model(name)
        params = count_params(net)
        macs = count_macs(net, image_size)
        published = model_info(name).published
        rows.append(f"| {name} | {params.trainable / 1e6:.3f} | {params.total / 1e6:.3f} | {macs / 1e6:.1f} | "
                    f"{_fmt(published.mflops, '.0f')} | {_fmt(published.top1_mindcv, '.2f')} | "
                    f"{_fmt(published.top1_official, '.1f')} |")
    return "\n".join(rows)


def _fmt(figure: Optional[Reported], spec: str) -> str:
    return "-" if figure is None else format(figure.value, spec)


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
