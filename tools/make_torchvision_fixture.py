"""Make the torchvision fixture the conversion tests use, and check the converter at the real widths.

Needs torch and torchvision, which neither the package nor its tests need; use a separate environment:

    python3.11 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch torchvision "numpy<2"
    /tmp/torchenv/bin/python tools/make_torchvision_fixture.py

writes ``tests/data/torchvision_shufflenet_v2_tiny.npz`` (the state dict of a reduced-width torchvision
ShuffleNetV2 with random weights and BatchNorm statistics, as NumPy arrays) and
``tests/data/torchvision_shufflenet_v2_tiny.expected.npz`` (a random input and torchvision's eval-mode
logits for it). No weights are downloaded.

    /tmp/torchenv/bin/pip install -e .     # the project too, in the same environment
    /tmp/torchenv/bin/python tools/make_torchvision_fixture.py --check-widths /tmp/tv_check

builds torchvision's four ShuffleNetV2 widths with random weights, saves each state dict as a ``.pth``,
converts it with ``scripts/convert_weights.py`` and prints the largest absolute difference between
torchvision's logits and the converted network's.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import torchvision

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
# Reduced widths that exercise every difference between the layouts: stage 2's first unit splits 10 + 10
# in torchvision but 8 + 12 in MindCV, stage 4 has an odd half (45), and the stages have 4, 8, 4 units.
TINY_CHANNELS = [8, 20, 44, 90, 64]
TINY_REPEATS = [4, 8, 4]
TINY_CLASSES = 10
TINY_INPUT = (2, 3, 47, 40)  # odd and even sizes: padding of the stem conv and pools
WIDTHS = {"shufflenet_v2_x0_5": torchvision.models.shufflenet_v2_x0_5,
          "shufflenet_v2_x1_0": torchvision.models.shufflenet_v2_x1_0,
          "shufflenet_v2_x1_5": torchvision.models.shufflenet_v2_x1_5,
          "shufflenet_v2_x2_0": torchvision.models.shufflenet_v2_x2_0}


def randomize(model: torch.nn.Module, seed: int, calibration: torch.Tensor) -> torch.nn.Module:
    """Random BatchNorm affine parameters and fc bias, and BatchNorm statistics measured on
    ``calibration`` images, then eval mode.

    The statistics are measured rather than drawn at random so that, as in a trained network, every layer
    passes a signal of unit size on: with random statistics the signal shrinks layer by layer and the
    logits hardly depend on the first stages, so a wrong channel order there would go unnoticed.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.5)
                m.momentum = None  # running statistics = the average over the calibration batches
                m.reset_running_stats()
            elif isinstance(m, torch.nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / m.weight.shape[1] ** 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g))
        model.train()
        model(calibration)
    return model.eval()


def state_as_numpy(model: torch.nn.Module) -> dict:
    return {k: v.detach().numpy() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def make_fixture() -> None:
    torch.manual_seed(0)
    x = torch.randn(TINY_INPUT, generator=torch.Generator().manual_seed(2))
    calibration = torch.randn((8, *TINY_INPUT[1:]), generator=torch.Generator().manual_seed(3))
    model = randomize(torchvision.models.ShuffleNetV2(TINY_REPEATS, TINY_CHANNELS, num_classes=TINY_CLASSES), 1,
                      calibration)
    with torch.no_grad():
        logits = model(x)
    DATA.mkdir(parents=True, exist_ok=True)
    np.savez(DATA / "torchvision_shufflenet_v2_tiny.npz", **state_as_numpy(model))
    np.savez(DATA / "torchvision_shufflenet_v2_tiny.expected.npz", input=x.numpy(), logits=logits.numpy(),
             channels=np.array(TINY_CHANNELS), stage_repeats=np.array(TINY_REPEATS),
             torchvision_version=np.array(torchvision.__version__))
    print(f"wrote {DATA / 'torchvision_shufflenet_v2_tiny.npz'} and .expected.npz "
          f"(torchvision {torchvision.__version__}, logits max |.| {logits.abs().max():.3f})")


def check_widths(folder: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    x = torch.randn((2, 3, 224, 224), generator=torch.Generator().manual_seed(3))
    calibration = torch.randn((4, 3, 224, 224), generator=torch.Generator().manual_seed(4))
    results = {}
    for i, (name, build) in enumerate(WIDTHS.items()):
        torch.manual_seed(10 + i)
        model = randomize(build(weights=None), 20 + i, calibration)
        with torch.no_grad():
            logits = model(x).numpy()
        torch.save(model.state_dict(), folder / f"{name}.pth")
        np.savez(folder / f"{name}.expected.npz", input=x.numpy(), logits=logits)
        done = subprocess.run([sys.executable, str(ROOT / "scripts" / "convert_weights.py"), "--from", "torchvision",
                               "--model", name, str(folder / f"{name}.pth"), str(folder / f"{name}.ckpt")],
                              capture_output=True, text=True)
        if done.returncode:
            print(done.stderr, file=sys.stderr)
            return 1
        results[name] = logits
    import mindcv_shufflenet  # noqa: F401  (after torch: the two only meet in this check)
    # isort: split
    import mindspore as ms

    from mindcv_shufflenet import create_model, runtime

    runtime.init_runtime(device="CPU", mode="pynative")
    worst = 0.0
    for name, expected in results.items():
        net = create_model(name, checkpoint_path=str(folder / f"{name}.ckpt"))
        net.set_train(False)
        got = net(ms.Tensor(x.numpy())).asnumpy()
        diff = float(np.abs(got - expected).max())
        worst = max(worst, diff)
        same_top1 = bool((got.argmax(1) == expected.argmax(1)).all())
        print(f"{name}: torchvision vs converted, max abs logit diff {diff:.2e} "
              f"(logits max |.| {np.abs(expected).max():.2f}, same top-1: {same_top1})")
    return 0 if worst <= 1e-4 else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check-widths", type=Path, metavar="DIR",
                   help="convert torchvision's four widths (random weights) in DIR and compare logits")
    args = p.parse_args()
    if args.check_widths:
        return check_widths(args.check_widths)
    make_fixture()
    return 0


if __name__ == "__main__":
    sys.exit(main())
