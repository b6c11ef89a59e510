"""What the tests share: the repository's paths, running a command as a user would (the ``run_cli`` fixture),
loading a script's functions, and giving networks weights a comparison cannot pass on by chance."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, List, Mapping, Optional, Tuple

import mindspore as ms
import numpy as np
from mindspore import nn, ops
from PIL import Image

from mindcv_shufflenet import create_model, runtime
from mindcv_shufflenet.constants import IMAGENET_MEAN, IMAGENET_STD
from mindcv_shufflenet.models import SHUFFLENET_V1_CHANNELS, SHUFFLENET_V2_CHANNELS, SHUFFLENET_V2_PLUS_CHANNELS

# randomize and calibrate are shared with tools/measure_conversion.py (tools/ is on the tests' path: pyproject.toml).
from torch_layout_reference import (
    MegviiShuffleNetV1,
    MegviiShuffleNetV2,
    MegviiShuffleNetV2Plus,
    TorchvisionShuffleNetV2,
    calibrate,
    randomize,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
PYTHON = sys.executable
DEMO = str(ROOT / "configs" / "demo" / "shufflenet_v2_digits_cpu.yaml")


def run_cli(command: str, *args: Any, cwd: str | os.PathLike = ROOT, env: Optional[Mapping[str, Optional[str]]] = None,
            timeout: float = 600, check: bool = False, msrun_workers: int = 0,
            log_dir: Optional[str | os.PathLike] = None) -> subprocess.CompletedProcess:
    """Run one of the project's commands in a fresh Python, as a user would, its output captured as text.

    Args:
        command: a file of the repository (``"train.py"``, ``"scripts/convert_weights.py"``), or ``"-m"`` /
            ``"-c"`` with the module or the code as the first of ``args``.
        args: the command's arguments (turned into strings).
        cwd: where it runs (default: the repository).
        env: variables set on top of this process's environment; None as a value removes one.
        timeout: seconds before the test fails.
        check: fail the test, showing the end of the command's stderr, unless it exits with 0.
        msrun_workers: run it under msrun with this many local workers (on a free port; ``log_dir`` then
            receives ``worker_<rank>.log``).
    """
    program = [PYTHON, command] if command.startswith("-") else [PYTHON, str(ROOT / command)]
    environment = _environment(env)
    if msrun_workers:  # msrun starts "python": this one, first on the PATH
        program = [*_msrun(msrun_workers, log_dir), "python", *program[1:]]
        environment["PATH"] = f"{Path(PYTHON).parent}{os.pathsep}{environment.get('PATH', '')}"
    proc = subprocess.run([*program, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=environment)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def start_cli(command: str, *args: Any, cwd: str | os.PathLike = ROOT,
              env: Optional[Mapping[str, Optional[str]]] = None) -> subprocess.Popen:
    """Start a command as :func:`run_cli` runs it, without waiting and with its output discarded: for the tests
    that kill a run while it works."""
    return subprocess.Popen([PYTHON, str(ROOT / command), *map(str, args)], cwd=cwd, env=_environment(env),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _environment(changes: Optional[Mapping[str, Optional[str]]]) -> dict:
    """This process's environment with ``changes`` made: a None value removes the variable."""
    environment = dict(os.environ)
    for key, value in (changes or {}).items():
        if value is None:
            environment.pop(key, None)
        else:
            environment[key] = value
    return environment


def _msrun(workers: int, log_dir: Optional[str | os.PathLike]) -> List[str]:
    msrun = shutil.which("msrun", path=str(Path(PYTHON).parent))
    assert msrun, "msrun comes with mindspore"
    assert log_dir is not None, "msrun writes each worker's log into log_dir"
    return [msrun, "--worker_num", str(workers), "--local_worker_num", str(workers), "--master_addr", "127.0.0.1",
            "--master_port", str(free_port()), "--log_dir", str(log_dir), "--join", "True"]


def assert_one_line_error(proc: subprocess.CompletedProcess, expected: str, status: int = 2) -> None:
    """The command failed with ``status`` and a last line ``error: ...`` holding ``expected``, no traceback."""
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode == status, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and expected in last, last


def load_script(path: str) -> ModuleType:
    """A script of the repository (``"scripts/benchmark.py"``) loaded as a module, to test its functions
    without running it; each call loads it afresh."""
    name = "_script_" + Path(path).with_suffix("").as_posix().replace("/", "_")
    spec = importlib.util.spec_from_file_location(name, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    """A TCP port nobody listens on now, for an msrun master (tests may run in parallel workers)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_param_list(filename: str) -> List[Tuple[str, Tuple[int, ...], str]]:
    """A MindCV parameter list from tests/data: ``(name, shape, "trainable" | "buffer")`` per line."""
    rows = []
    for line in (DATA / filename).read_text().splitlines():
        name, shape, kind = line.split("\t")
        rows.append((name, tuple(int(d) for d in shape.strip("()").split(",") if d.strip()), kind))
    return rows


def state_of(net) -> dict:
    """The network's parameters by name, as NumPy copies."""
    return {name: p.asnumpy().copy() for name, p in net.parameters_and_names()}


def run_eval(net, x: np.ndarray) -> np.ndarray:
    """The network's eval-mode output for ``x``."""
    net.set_train(False)
    return net(ms.Tensor(x)).asnumpy()


# --- networks: reduced widths of the families, forward and backward in either mode, MindCV's training files
# The channels of reduced ShuffleNetV2+ and v2-50 networks (the official structure at small widths).
PLUS_REDUCED = (8, 16, 32, 48, 64, 96)
# Reduced V2.Large / ExLarge: (channels, options) with the official structure at small widths and depths.
LARGE_REDUCED = {
    "large": ((8, 8, 16, 32, 64, 128, 256, 64), dict(stage_repeats=(2, 2, 3, 2), groups=4, aux_channels=(16, 32, 48))),
    "exlarge": ((8, 16, 32, 64, 128, 256, 512), dict(stage_repeats=(2, 2, 3, 2), groups=4, aux_channels=(16, 32, 48))),
}
V2_50_REDUCED = (16, 24, 32, 48, 64, 96)


class LossAndGrads(nn.Cell):
    """The loss and the gradients of the trainable parameters, in one Cell (so graph mode compiles both)."""

    def __init__(self, net):
        super().__init__()
        self.loss_net = nn.WithLossCell(net, nn.CrossEntropyLoss())
        self.weights = ms.ParameterTuple(net.trainable_params())
        self.grad = ops.GradOperation(get_by_list=True)

    def construct(self, x, y):
        return self.loss_net(x, y), self.grad(self.loss_net, self.weights)(x, y)


def loss_and_grads(net, x, y, mode):
    """The cross-entropy loss and the gradients of the trainable parameters, in ``mode`` ("graph" or
    "pynative"); the mode is set back to PyNative after."""
    runtime.set_mode(mode)
    try:
        net.set_train(True)
        loss, grads = LossAndGrads(net)(ms.Tensor(x), ms.Tensor(y))
        return float(loss.asnumpy()), [g.asnumpy() for g in grads]
    finally:
        runtime.set_mode("pynative")


def save_training_checkpoint(net, path, with_ema=False):
    """Save as MindCV's training does: the net, optimizer slots and counters (and an EMA copy)."""
    entries = [{"name": name, "data": ms.Tensor(p.asnumpy())} for name, p in net.parameters_and_names()]
    entries += [{"name": f"moments.{name}", "data": ms.Tensor(np.zeros(p.shape, np.float32))}
                for name, p in net.parameters_and_names() if p.requires_grad]
    if with_ema:
        entries += [{"name": f"ema.{name}", "data": ms.Tensor(p.asnumpy() * 0.5)}
                    for name, p in net.parameters_and_names()]
    entries += [{"name": "global_step", "data": ms.Tensor(np.array([1000], np.int32))},
                {"name": "learning_rate", "data": ms.Tensor(np.array(0.1, np.float32))},
                {"name": "momentum", "data": ms.Tensor(np.array(0.9, np.float32))}]
    ms.save_checkpoint(entries, str(path))
    return path


def normal_images(batch, seed, size=64):
    """``batch`` random images of ``size`` x ``size`` (standard normal: already normalized)."""
    return np.random.default_rng(seed).standard_normal((batch, 3, size, size)).astype(np.float32)


def trained_like(model, seed, size=64, **options):
    """A registered model (10 classes) with random weights whose every layer matters: BatchNorm statistics
    measured on images of ``size``."""
    net = randomize(create_model(model, num_classes=10, **options), seed=seed)
    return calibrate(net, normal_images(4, seed + 100, size), seed=seed)


# --- conversions, checked against the source layouts' networks (tools/torch_layout_reference.py)
TOLERANCE = 1e-4  # the largest absolute logit difference a conversion may leave


def max_diff(a, b):
    """The largest absolute difference between two arrays."""
    return float(np.abs(np.asarray(a) - np.asarray(b)).max())


# Inputs of 96x96: at 64x64 the last stage's maps are 2x2 and float32 rounding, which the random
# networks amplify, reaches 1e-4 (1.3e-4 at 2.0x; 1-3e-5 at 96x96).
SIZE = 96


def torchvision_reference(channels, num_classes, seed, images):
    """torchvision's ShuffleNetV2 (its MindSpore transcription) with random weights and BatchNorm statistics
    measured on ``images``."""
    net = randomize(TorchvisionShuffleNetV2((4, 8, 4), channels, num_classes=num_classes), seed=seed)
    return calibrate(net, images, seed=seed)


def megvii_reference(model, seed, bgr_images):
    """The official network with random weights, its stem scaled for 0-255 input as trained ones are
    and its BatchNorm statistics measured on ``bgr_images``."""
    if model.startswith("shufflenet_v2_plus"):
        ref = MegviiShuffleNetV2Plus(SHUFFLENET_V2_PLUS_CHANNELS[model.rsplit("_", 1)[-1]])
    elif model.startswith("shufflenet_v2"):
        ref = MegviiShuffleNetV2(SHUFFLENET_V2_CHANNELS[model.rsplit("_", 2)[-2] + "_" + model.rsplit("_", 1)[-1]])
    else:
        groups, width = int(model.split("_g")[1][0]), model[-2:]
        ref = MegviiShuffleNetV1(SHUFFLENET_V1_CHANNELS[groups][width], group=groups)
    randomize(ref, seed=seed)
    stem = dict(ref.parameters_and_names())["first_conv.0.weight"]
    stem.set_data(ms.Tensor(stem.asnumpy() / 60.0))
    return calibrate(ref, bgr_images, seed=seed)


def rgb_images(shape, seed=0):
    """Random RGB images in 0-255."""
    return np.random.default_rng(seed).uniform(0, 255, shape).astype(np.float32)


def normalize(rgb):
    """0-255 RGB images normalized with ImageNet's mean and std, as this project's networks take them."""
    return ((rgb - np.array(IMAGENET_MEAN).reshape(1, 3, 1, 1)) / np.array(IMAGENET_STD).reshape(1, 3, 1, 1)
            ).astype(np.float32)


# --- a training run's folder, for the curves plot (in process and from the command)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# Like the demo's: epoch 1's validation loss, before BatchNorm statistics settle, is ~1400.
RUN_RECORDS = [
    {"epoch": 1, "train_loss": 2.1, "lr": 0.05, "val_top1": 10.0, "val_top5": 50.0, "val_loss": 1412.0},
    {"epoch": 2, "train_loss": 1.2, "lr": 0.09, "val_top1": 61.0, "val_top5": 95.0, "val_loss": 1.3},
    {"epoch": 3, "train_loss": 0.6, "lr": 0.07, "val_top1": 88.0, "val_top5": 99.0, "val_loss": 0.4},
]


def write_run_folder(folder: Path, records=RUN_RECORDS) -> Path:
    """A training run's folder as the plot reads it: metrics.jsonl with ``records``, and config.yaml."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (folder / "config.yaml").write_text("model: shufflenet_v2_x0_5\nlr: 0.1\n")
    return folder


# --- a folder of images with every kind of bad file (tests of bad data, in process and from the commands)
COLOURS = {"ant": (200, 30, 30), "bee": (30, 200, 30), "cat": (30, 30, 200)}


def _jpeg_bytes(size=(24, 20), colour=(200, 30, 30)) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "JPEG")
    return buffer.getvalue()


# name -> (bytes writer, expected reason or None when readable)
def _odd_modes(folder: Path, colour) -> None:
    rgb = Image.new("RGB", (21, 13), colour)
    rgb.convert("RGBA").save(folder / "rgba.png")
    rgb.convert("LA").save(folder / "la.png")
    rgb.convert("P").save(folder / "palette.png")
    rgb.convert("CMYK").save(folder / "cmyk.jpg")
    rgb.save(folder / "upper.JPEG")
    rgb.save(folder / "tiff.tif")
    rgb.save(folder / "bitmap.bmp")


BAD_FILES = {
    "empty.jpg": (b"", "empty file"),
    "text.jpg": (b"this is not an image at all", "not an image"),
    "page.png": (b"<html>404 not found</html>", "not an image"),
    "animation.jpg": (b"GIF89a" + bytes(40), "a GIF image, which MindSpore cannot decode"),
    # MindSpore's own Decode kills the process (SIGFPE) on this one: it must never reach the pipeline.
    "truncated.jpg": (_jpeg_bytes()[:200], "truncated or corrupt"),
    "header_only.jpg": (_jpeg_bytes()[:20], "truncated or corrupt"),
    "notes.md": (b"# notes", "no image file extension"),
}


def write_messy_folder(root: Path) -> Path:
    """train/ and val/ with 3 colour-coded classes of 6 good images each; class 'ant' also holds every kind of
    bad file, convertible modes (RGBA, LA, palette, CMYK, TIFF, BMP, 16-bit grey in 'cat'), a hidden file, and
    one JPEG whose header and end are fine but whose body cannot be decoded."""
    for split in ("train", "val"):
        for name, colour in COLOURS.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(6):
                Image.new("RGB", (17 + i, 23), colour).save(folder / f"{i}.png")
        ant = root / split / "ant"
        for filename, (data, _) in BAD_FILES.items():
            (ant / filename).write_bytes(data)
        (ant / ".DS_Store").write_bytes(bytes(64))
        (ant / "body.jpg").write_bytes(b"\xff\xd8\xff\xe0" + np.random.default_rng(0).bytes(400) + b"\xff\xd9")
        _odd_modes(ant, COLOURS["ant"])
        grey16 = np.full((9, 31), 30 * 257, np.uint16)  # the grey of the blue class in 16 bits
        Image.fromarray(grey16).save(root / split / "cat" / "grey16.png")
    return root


def publish_release(monkeypatch, model_name: str, checkpoint: Path, home: Path) -> Path:
    """Make ``checkpoint`` the released weights of ``model_name`` for this test: move it into the weights folder
    ``home`` under a release name carrying its own SHA-256 prefix (as MindCV names its files), and register
    that release (undone after the test). Returns the file's place in ``home``."""
    import dataclasses

    from mindcv_shufflenet.models import registry
    from mindcv_shufflenet.models.download import sha256_of
    from mindcv_shufflenet.models.metadata import ReleasedWeights

    prefix = sha256_of(checkpoint)[:8]
    released = ReleasedWeights(f"http://127.0.0.1/releases/test/{model_name}-{prefix}.ckpt", prefix)
    info = registry.model_info(model_name)
    monkeypatch.setitem(registry._INFO, model_name, dataclasses.replace(info, weights=released))
    monkeypatch.setenv("MINDCV_SHUFFLENET_HOME", str(home))
    target = home / released.relative_path
    target.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.replace(target)
    return target
