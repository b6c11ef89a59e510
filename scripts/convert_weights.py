"""Convert torchvision or official (Megvii) ShuffleNet weights into a checkpoint for this project.

    python scripts/convert_weights.py --from torchvision --model shufflenet_v2_x1_0 \
        shufflenetv2_x1-5666bf0f80.pth shufflenet_v2_x1_0-torchvision.ckpt
    python scripts/convert_weights.py --from megvii --model shufflenet_v1_g3_10 \
        ShuffleNetV1-1.0x-g3.pth.tar shufflenet_v1_g3_10-megvii.ckpt
    python scripts/convert_weights.py --from megvii --model shufflenet_v2_large \
        --mean-image ImageNet_1000_scale224_mean.xml snetv2_residual_se.pkl shufflenet_v2_large-megvii.ckpt

The output loads with ``create_model(NAME, checkpoint_path=OUT)`` (or ``validate.py --ckpt_path OUT``):
the model options the weights need (``pool_padding="symmetric"``, torchvision's stage-2 widths and fc
bias, the official code's stem padding value) are recorded in it and applied. Converted weights take
this project's usual input (RGB, ImageNet mean/std), also those of the official code, whose BGR 0-255
input is folded into the stem. Reading ``.pth`` needs PyTorch; ``.npz`` and ``.safetensors`` state
dicts do not.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

import mindcv_shufflenet  # noqa: F401  (CPU defaults before MindSpore runs)
from mindcv_shufflenet import create_model, runtime
from mindcv_shufflenet.convert import SOURCES, convert_state, read_mean_image, read_source_weights
from mindcv_shufflenet.models import load_state_dict
from mindcv_shufflenet.models.weights import save_checkpoint


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--from", dest="source", required=True, choices=SOURCES, help="where the weights come from")
    p.add_argument("--model", required=True, help="the model the weights are for, e.g. shufflenet_v2_x1_0")
    p.add_argument("--approximate-border", action="store_true",
                   help="(megvii) do not record the stem padding value: a plain network, inexact at the "
                        "image border (see docs/checkpoints.md)")
    p.add_argument("--mean-image", default=None, metavar="PATH",
                   help="(megvii, shufflenet_v2_large) the official mean image the weights take: "
                        "ImageNet_1000_scale224_mean.xml from the official repository, or a .npy (H, W, 3) BGR")
    p.add_argument("input", help="state dict: .pth / .pth.tar / .pt (needs torch), .npz or .safetensors")
    p.add_argument("output", help="checkpoint to write: .ckpt or .safetensors")
    p.add_argument("--debug", action="store_true", help="show a traceback instead of a one-line error")
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    output = Path(args.output)
    if output.suffix not in (".ckpt", ".safetensors"):
        raise ValueError(f"output {output} must end in .ckpt or .safetensors")
    if output.resolve() == Path(args.input).resolve():
        raise ValueError("output and input are the same file")
    if args.approximate_border and args.source != "megvii":
        raise ValueError("--approximate-border is about the official (megvii) weights' input folding")
    runtime.init_runtime(device="CPU", mode="pynative")
    if args.mean_image and args.source != "megvii":
        raise ValueError("--mean-image is the official (megvii) ShuffleNetV2.Large's input")
    mean_image = read_mean_image(args.mean_image) if args.mean_image else None
    state = read_source_weights(args.input)
    converted = convert_state(args.source, state, args.model, exact_border=not args.approximate_border,
                              mean_image=mean_image)
    net = create_model(args.model, num_classes=converted.num_classes, **converted.options)
    load_state_dict(net, converted.state)  # strict: every parameter of the network comes from the file
    save_checkpoint(net, output, model_name=converted.matching_model(),
                    extra={"source": args.source, "converted_from": Path(args.input).name})
    recorded = ", ".join(f"{key}={_short(value)}" for key, value in converted.options.items() if value is not None)
    print(f"{args.input} ({args.source}, {len(state)} tensors) -> {output}: {converted.matching_model()}, "
          f"{converted.num_classes} classes, recorded {recorded}")
    print(f"load it with create_model({converted.matching_model()!r}, checkpoint_path={str(output)!r}) "
          f"or validate.py --model {converted.matching_model()} --ckpt_path {output}")
    return 0


def _short(value) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(f"{v:.4f}" if isinstance(v, float) else repr(v) for v in value) + "]"
    return repr(value)


if __name__ == "__main__":
    runtime.run_cli(main, debug="--debug" in sys.argv)
