"""Measure the official (Megvii) conversion at full size: every V2 width and every released V1 model.

    python tools/measure_conversion.py [--size 224] [--models shufflenet_v2_x1_0 ...]

For each model, a transcription of the official network (``torch_layout_reference.py`` beside this file) gets
random weights with BatchNorm statistics measured on the images, so that every layer matters; its state dict
is converted with and without the stem padding value, and the converted networks, fed this project's
normalized RGB, are compared with the official one fed BGR 0-255. Prints the largest absolute logit
difference of each, and how often the top-1 class agrees. Random weights, not the released ones: the size
of the border error on trained weights is not known from this.
"""

from __future__ import annotations

import argparse
from typing import List, Optional

import numpy as np

import mindcv_shufflenet  # noqa: F401  (CPU defaults before MindSpore runs)

# isort: split
import mindspore as ms

from mindcv_shufflenet import runtime
from mindcv_shufflenet.constants import IMAGENET_MEAN, IMAGENET_STD
from mindcv_shufflenet.convert import convert_state
from torch_layout_reference import MegviiShuffleNetV1, MegviiShuffleNetV2, calibrate, randomize, torch_state

MODELS = ["shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0",
          "shufflenet_v1_g3_05", "shufflenet_v1_g3_10", "shufflenet_v1_g3_15", "shufflenet_v1_g3_20",
          "shufflenet_v1_g8_05", "shufflenet_v1_g8_10", "shufflenet_v1_g8_15", "shufflenet_v1_g8_20"]


def main(argv: Optional[List[str]] = None) -> int:
    from mindcv_shufflenet.models import SHUFFLENET_V1_CHANNELS, SHUFFLENET_V2_CHANNELS

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--models", nargs="+", default=MODELS)
    args = p.parse_args(argv)
    runtime.init_runtime(device="CPU", mode="pynative")
    rng = np.random.default_rng(0)
    rgb = rng.uniform(0, 255, (args.batch, 3, args.size, args.size)).astype(np.float32)
    bgr = rgb[:, ::-1].copy()
    normalized = ((rgb - np.array(IMAGENET_MEAN).reshape(1, 3, 1, 1)) /
                  np.array(IMAGENET_STD).reshape(1, 3, 1, 1)).astype(np.float32)
    print(f"official network (BGR 0-255) vs converted (normalized RGB), {args.batch} random images "
          f"{args.size}x{args.size}: max abs logit difference, top-1 agreement")
    for i, model in enumerate(args.models):
        if model.startswith("shufflenet_v2"):
            ref = MegviiShuffleNetV2(SHUFFLENET_V2_CHANNELS[model[len("shufflenet_v2_"):]])
        else:
            groups, width = int(model[len("shufflenet_v1_g")]), model[-2:]
            ref = MegviiShuffleNetV1(SHUFFLENET_V1_CHANNELS[groups][width], group=groups)
        randomize(ref, seed=i)
        stem = dict(ref.parameters_and_names())["first_conv.0.weight"]
        stem.set_data(ms.Tensor(stem.asnumpy() / 60.0))  # trained on 0-255 input
        calibrate(ref, bgr, seed=i)
        official = ref(ms.Tensor(bgr)).asnumpy()
        row = []
        for exact in (True, False):
            net = convert_state("megvii", torch_state(ref), model, exact_border=exact).build()
            net.set_train(False)
            got = net(ms.Tensor(normalized)).asnumpy()
            agree = (got.argmax(1) == official.argmax(1)).mean()
            row.append(f"{'exact' if exact else 'without stem_pad_value'} {np.abs(got - official).max():.2e} "
                       f"(top-1 {100 * agree:.0f}%)")
        print(f"{model}: logits max |.| {np.abs(official).max():.1f}; " + "; ".join(row))
    return 0


if __name__ == "__main__":
    runtime.run_cli(main)
