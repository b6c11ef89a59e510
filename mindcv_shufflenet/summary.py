"""Print the model zoo: parameters and multiply-adds computed from each network, beside the figures
the papers and MindCV report.

    python -m mindcv_shufflenet.summary [--models PATTERN] [--image-size 224]
"""

from __future__ import annotations

import argparse
from typing import List, Optional

from . import runtime
from .models import count_macs, count_params, create_model, list_models

# Reported figures, copied from their sources (not measured here): multiply-adds in millions from the
# ShuffleNet V2 paper's Table 5, the official code's V1 table and the V1 paper's Table 1; ImageNet
# top-1 accuracy (%) of MindCV's released checkpoints (Ascend 910, 8 cards) and of the official code.
REPORTED = {
    # name: (paper MFLOPs, MindCV top-1, official-code top-1)
    "shufflenet_v2_x0_5": (41, 60.53, 61.1),
    "shufflenet_v2_x1_0": (146, 69.47, 69.4),
    "shufflenet_v2_x1_5": (299, 72.79, 72.6),
    "shufflenet_v2_x2_0": (591, 75.07, 75.0),
    "shufflenet_v1_g1_10": (143, None, None),
    "shufflenet_v1_g2_10": (140, None, None),
    "shufflenet_v1_g3_05": (38, 57.05, 57.3),
    "shufflenet_v1_g3_10": (138, 67.77, 67.8),
    "shufflenet_v1_g3_15": (292, None, 71.6),
    "shufflenet_v1_g3_20": (524, None, 74.1),
    "shufflenet_v1_g4_10": (133, None, None),
    "shufflenet_v1_g8_05": (40, None, 58.8),
    "shufflenet_v1_g8_10": (138, None, 68.0),
    "shufflenet_v1_g8_15": (290, None, 71.0),
    "shufflenet_v1_g8_20": (522, None, 72.9),
}


def model_table(pattern: str = "*", image_size: int = 224) -> str:
    header = ("| model | params (M) | params + BN stats (M) | MACs (M) | paper MFLOPs | MindCV top-1 | "
              "official top-1 |")
    rows = [header, "|" + "---|" * 7]
    for name in list_models(pattern):
        net = create_model(name)
        params = count_params(net)
        macs = count_macs(net, image_size)
        flops, mindcv, official = REPORTED.get(name, (None, None, None))
        rows.append(f"| {name} | {params.trainable / 1e6:.3f} | {params.total / 1e6:.3f} | {macs / 1e6:.1f} | "
                    f"{_fmt(flops, '.0f')} | {_fmt(mindcv, '.2f')} | {_fmt(official, '.1f')} |")
    return "\n".join(rows)


def _fmt(value: Optional[float], spec: str) -> str:
    return "-" if value is None else format(value, spec)


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
