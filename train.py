"""Train a ShuffleNet from a YAML recipe, on a CPU, one Ascend card, or many under msrun.

    python train.py --config configs/shufflenetv2/shufflenet_v2_x0_5_cpu.yaml --data_dir /data/imagenet
    msrun --bind_core=True --worker_num 8 python train.py \
        --config configs/shufflenetv2/shufflenet_v2_x1_0_ascend.yaml --data_dir /data/imagenet

Every key of the YAML file (MindCV's keys) can be overridden as --key value. Checkpoints, the
effective config, train.log, metrics.jsonl and curves.png go to --ckpt_save_dir. A killed run continues
where its last checkpoint left off with --resume auto.
"""

from __future__ import annotations

import sys
from typing import List, Optional

import mindcv_shufflenet  # noqa: F401  (CPU defaults before MindSpore runs)
from mindcv_shufflenet import runtime
from mindcv_shufflenet.config import build_parser, load_config


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser(__doc__.splitlines()[0])
    cfg = load_config(argv, parser=parser)
    from mindcv_shufflenet.engine.trainer import train

    train(cfg)
    return 0


if __name__ == "__main__":
    runtime.run_cli(main, debug="--debug" in sys.argv)
