"""Write the training recipes under configs/ from one table of per-model facts.

    python tools/make_configs.py           # (re)write configs/shufflenetv1/*.yaml, configs/shufflenetv2/*.yaml
    python tools/make_configs.py --check   # exit 1, listing the files that differ from what it would write

Every model with published ImageNet results gets three recipes:

* ``<model>_ascend.yaml``: 8 Ascend cards with MindCV's hyperparameters where MindCV has a recipe for the
  model, otherwise the paper's (then identical to ``_paper.yaml`` but for the checkpoint folder);
* ``<model>_paper.yaml``: the paper's and official code's recipe (global batch 1024, lr 0.5 decayed
  linearly to 0 per step, 240 epochs) on 8 Ascend cards;
* ``<model>_cpu.yaml``: the paper recipe on one CPU at batch 32, lr scaled linearly by batch.

The official family beyond MindCV's (ShuffleNetV2+, v2-50, V2.Large / ExLarge) gets two: ``_ascend.yaml``, the
official training script's recipe on 8 Ascend cards, and ``_cpu.yaml``, the same on one CPU at batch 32.

The YAML is formatted by hand, in MindCV's key order and grouping, so the files stay stable and readable.
Edit this script, not the generated files: ``tests/recipes/test_configs.py`` runs ``--check``.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from mindcv_shufflenet.models import PublishedFigures, model_info

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "configs"
FAMILY_DIRS = ("shufflenetv1", "shufflenetv2")
RECIPES = ("ascend", "paper", "cpu")
FAMILY_RECIPES = ("ascend", "cpu")
DATA_DIR = "/data/imagenet"
HEADER_WIDTH = 110

# ---------------------------------------------------------------------------------------------------
# what each model is trained with; the accuracy it should reach is read from its metadata
# (``model_info(name).published``, written beside its builder in mindcv_shufflenet/models/)

MEGVII = "megvii-model/ShuffleNet-Series"
V1_PAPER = "Zhang et al., ShuffleNet, CVPR 2018 (arXiv 1707.01083)"
V2_PAPER = "Ma et al., ShuffleNet V2, ECCV 2018 (arXiv 1807.11164)"


@dataclass(frozen=True)
class MindCVRecipe:
    """MindCV's published recipe for one model (8 Ascend cards x 64); its accuracy is the model's
    ``published.mindcv``."""

    source: str                     # MindCV's YAML file
    lr: float
    epochs: int
    warmup: int
    re_prob: float
    amp: str


@dataclass(frozen=True)
class OfficialRecipe:
    """The official code's training script for a model MindCV does not have."""

    source: str                     # the script, or why there is none
    global_batch: int
    lr: float
    iterations: int
    amp: str = "O2"
    aux_factor: Optional[Tuple[float, ...]] = None
    note: str = ""                  # what differs here
    amp_note: str = "amp O2"        # why this amp level on Ascend

    @property
    def epochs(self) -> int:
        return round(self.iterations * self.global_batch / IMAGENET_TRAIN_IMAGES)


@dataclass(frozen=True)
class ModelFacts:
    name: str                                    # registered model name
    title: str                                   # for the header
    mindcv: Optional[MindCVRecipe] = None
    drop_rate: float = 0.0                       # official code's dropout before the classifier
    official: Optional[OfficialRecipe] = None    # the family beyond MindCV's: its official training script

    @property
    def recipes(self) -> Tuple[str, ...]:
        return FAMILY_RECIPES if self.official else RECIPES

    @property
    def family(self) -> str:
        return "shufflenetv2" if self.name.startswith("shufflenet_v2") else "shufflenetv1"

    @property
    def is_v2(self) -> bool:
        return self.family == "shufflenetv2"

    @property
    def published(self) -> PublishedFigures:
        return model_info(self.name).published


def _v2(width: str, title: str, mindcv: MindCVRecipe, drop_rate: float = 0.0) -> ModelFacts:
    return ModelFacts(f"shufflenet_v2_{width}", f"ShuffleNet V2 {title}", mindcv, drop_rate)


def _v1(groups: int, width: str, mindcv: Optional[MindCVRecipe] = None) -> ModelFacts:
    title = f"ShuffleNet V1 {width[0]}.{width[1]}x g={groups}"
    return ModelFacts(f"shufflenet_v1_g{groups}_{width}", title, mindcv)


IMAGENET_TRAIN_IMAGES = 1_281_167
# Where the official code differs from this project whatever the model: its input and its last pass.
OFFICIAL_INPUT_NOTE = ("this project's RGB input normalized with ImageNet's mean/std instead of the official "
                       "BGR 0-255; no final BatchNorm recalibration pass")
PLUS_RECIPE = OfficialRecipe(
    f"{MEGVII} ShuffleNetV2+/train.py", 1024, 0.5, 450_000,
    note=OFFICIAL_INPUT_NOTE,
    amp_note="amp O2 (BatchNorm in float32: O3 would run the hard-swish and SE gates in float16 too)")
LARGE_RECIPE = OfficialRecipe(
    f"{MEGVII} ShuffleNetV2.Large/train.py", 256, 0.25, 600_000, aux_factor=(0.7, 0.5, 0.3),
    note="the official script's PCA lighting noise (0.1) is not applied; its input, RGB / 255 normalized with "
         "ImageNet's mean/std in BGR order, is this project's in RGB order; no final BatchNorm recalibration pass",
    amp_note="amp O2 (O3 would run BatchNorm in float16, where its eps 1e-9 is 0)")
EXLARGE_RECIPE = OfficialRecipe(
    f"none published ({MEGVII} ShuffleNetV2.ExLarge was trained with external data); ShuffleNetV2.Large/train.py's "
    "recipe, whose network has the same auxiliary heads and loss weights", 256, 0.25, 600_000,
    aux_factor=(0.7, 0.5, 0.3), note=LARGE_RECIPE.note, amp_note=LARGE_RECIPE.amp_note)
V2_50_RECIPE = OfficialRecipe(
    f"the paper recipe of the other V2 models ({V2_PAPER}; no official code for v2-50)", 1024, 0.5, 300_000,
    note=OFFICIAL_INPUT_NOTE)


def _family(name: str, title: str, recipe: OfficialRecipe) -> ModelFacts:
    return ModelFacts(name, title, drop_rate=0.2 if name != "shufflenet_v2_50" else 0.0, official=recipe)


MODELS: List[ModelFacts] = [
    _v2("x0_5", "0.5x", MindCVRecipe("configs/shufflenetv2/shufflenet_v2_0.5_ascend.yaml", 0.35, 250, 4, 0.0, "O3")),
    _v2("x1_0", "1.0x", MindCVRecipe("configs/shufflenetv2/shufflenet_v2_1.0_ascend.yaml", 0.4, 300, 5, 0.5, "O3")),
    _v2("x1_5", "1.5x", MindCVRecipe("configs/shufflenetv2/shufflenet_v2_1.5_ascend.yaml", 0.5, 300, 5, 0.5, "O3")),
    _v2("x2_0", "2.0x", MindCVRecipe("configs/shufflenetv2/shufflenet_v2_2.0_ascend.yaml", 0.5, 300, 5, 0.25, "O3"),
        drop_rate=0.2),
    _v1(3, "05", MindCVRecipe("configs/shufflenetv1/shufflenet_v1_0.5_ascend.yaml", 0.35, 250, 4, 0.0, "O0")),
    _v1(3, "10", MindCVRecipe("configs/shufflenetv1/shufflenet_v1_1.0_ascend.yaml", 0.4, 250, 4, 0.0, "O0")),
    _v1(3, "15"),
    _v1(3, "20"),
    _v1(8, "05"),
    _v1(8, "10"),
    _v1(8, "15"),
    _v1(8, "20"),
    # The paper's Table 2 only: the official code publishes no g=1, 2 or 4 model.
    _v1(1, "05"),
    _v1(1, "10"),
    _v1(2, "05"),
    _v1(2, "10"),
    _v1(4, "05"),
    _v1(4, "10"),
    _family("shufflenet_v2_plus_small", "ShuffleNet V2+ Small", PLUS_RECIPE),
    _family("shufflenet_v2_plus_medium", "ShuffleNet V2+ Medium", PLUS_RECIPE),
    _family("shufflenet_v2_plus_large", "ShuffleNet V2+ Large", PLUS_RECIPE),
    _family("shufflenet_v2_50", "ShuffleNet V2-50", V2_50_RECIPE),
    _family("shufflenet_v2_large", "ShuffleNet V2.Large", LARGE_RECIPE),
    _family("shufflenet_v2_exlarge", "ShuffleNet V2.ExLarge", EXLARGE_RECIPE),
]

# The paper / official code's recipe (both papers, both official train.py): global batch 1024, SGD momentum
# 0.9, lr 0.5 decayed linearly to 0 every iteration, 300k iterations, weight decay 4e-5 on conv and fully
# connected weights only, label smoothing 0.1.
PAPER_GLOBAL_BATCH = 1024
PAPER_LR = 0.5
PAPER_EPOCHS = 240           # 300k iterations x 1024 images / 1,281,167 training images = 239.8 epochs
PAPER_WEIGHT_DECAY = 0.00004
ASCEND_CARDS = 8
CPU_BATCH = 32
FIXED_LOSS_SCALE = 1024      # MindCV's choice on Ascend, for V1 (amp O0) as well as V2 (amp O3)

# ---------------------------------------------------------------------------------------------------
# a recipe: header lines and (section, [(key, value)]) in MindCV's order


Section = Tuple[str, List[Tuple[str, object]]]


@dataclass
class Recipe:
    path: str                    # relative to the repository root
    header: List[str]            # paragraphs, wrapped when written; a leading indent is kept
    launch: List[str]            # written verbatim
    sections: List[Section]


def _config_path(m: ModelFacts, recipe: str) -> str:
    return f"configs/{m.family}/{m.name}_{recipe}.yaml"


def _launch(m: ModelFacts, recipe: str) -> List[str]:
    path = _config_path(m, recipe)
    if recipe == "cpu":
        return ["Launch:", f"  python train.py --config {path} --data_dir {DATA_DIR}"]
    return ["Launch:", "  msrun --bind_core=True --worker_num 8 python train.py \\",
            f"      --config {path} --data_dir {DATA_DIR}"]


def _official_acc(m: ModelFacts) -> Optional[str]:
    acc = m.published.official
    if acc is None:
        return None
    if not acc.stated_as_error or acc.top5_error is None:
        raise ValueError(f"{m.name}: the recipes quote the official code's top-1 and top-5 error rates")
    top1, top5 = acc.top1_error, acc.top5_error
    digits = 2 if m.official else 1
    source = f"{acc.source}, {acc.note}" if acc.note else acc.source
    return (f"top-1 {100 - top1:.{digits}f} / top-5 {100 - top5:.{digits}f} ({source}: top-1 / top-5 error "
            f"{top1} / {top5})")


def _paper_acc(m: ModelFacts) -> Optional[str]:
    acc = m.published.paper
    if acc is None:
        return None
    return f"top-1 {100 - acc.top1_error:.1f} ({acc.source}: top-1 error {acc.top1_error})"


def paper_accuracy(m: ModelFacts) -> str:
    """What the paper recipe is expected to reach: the official code's figure, else the paper's."""
    official, paper = _official_acc(m), m.published.paper
    if official is None:
        return f"Expected accuracy: {_paper_acc(m)}; the official code publishes no model of this width and group."
    text = f"Expected accuracy: {official}."
    if paper is not None:
        text += f" The paper reports top-1 error {paper.top1_error} ({paper.source})."
    return text


def _paper_source(m: ModelFacts) -> List[str]:
    paper = V2_PAPER if m.is_v2 else V1_PAPER
    code = "ShuffleNetV2" if m.is_v2 else "ShuffleNetV1"
    amp = "O3" if m.is_v2 else "O0"
    dropout = (f" The official code's {m.title} has dropout {m.drop_rate} before the classifier."
               if m.drop_rate else "")
    return [
        f"Hyperparameters: {paper} and its official code ({MEGVII}, {code}/train.py): global batch "
        f"{PAPER_GLOBAL_BATCH}, SGD momentum 0.9, lr {PAPER_LR} decayed linearly to 0 every step, no warmup, "
        f"300k iterations (= {PAPER_EPOCHS} epochs), weight decay 4e-5 on conv and dense weights only, label "
        "smoothing 0.1, RandomResizedCrop 224 + color jitter 0.4 + horizontal flip; eval resize 256, center "
        f"crop 224.{dropout}",
        f"  Here: amp {amp} with a fixed loss scale of {FIXED_LOSS_SCALE} (MindCV's choice for "
        f"{'V2' if m.is_v2 else 'V1'} on Ascend); MindCV's input normalisation and architecture (pool_padding: "
        "same) instead of the official code's BGR 0-255 input and symmetric pooling; no final BatchNorm "
        "recalibration pass.",
    ]


# ---------------------------------------------------------------------------------------------------
# the sections shared by every recipe; each family fills in its values


def _sections(m: ModelFacts, recipe: str, *, device: str, distribute: bool, workers: int, log_interval: int,
              batch_size: int, re_prob: float, drop_rate: Optional[float], keep_ckpt: int, epochs: int,
              amp: str, scheduler: str, lr: float, warmup: int, decay_epochs: Optional[int],
              weight_decay_filter: str, loss_scale: float,
              aux_factor: Optional[Tuple[float, ...]] = None) -> List[Section]:
    model = [("model", m.name), ("num_classes", 1000)]
    if drop_rate:
        model.append(("drop_rate", drop_rate))
    model += [
        ("pretrained", False),
        ("ckpt_path", ""),
        ("keep_checkpoint_max", keep_ckpt),
        ("ckpt_save_dir", f"./ckpt/{m.name}_{recipe}"),
        ("epoch_size", epochs),
        ("dataset_sink_mode", device == "Ascend"),
        ("amp_level", amp),
    ]
    schedule = [("scheduler", scheduler), ("min_lr", 0.0), ("lr", lr), ("warmup_epochs", warmup)]
    if decay_epochs is not None:
        schedule.append(("decay_epochs", decay_epochs))
    return [
        ("system", [
            ("mode", "graph"),
            ("device_target", device),
            ("distribute", distribute),
            ("num_parallel_workers", workers),
            ("val_while_train", True),
            ("log_interval", log_interval),
        ]),
        ("dataset", [
            ("dataset", "imagenet"),
            ("data_dir", DATA_DIR),
            ("shuffle", True),
            ("dataset_download", False),
            ("batch_size", batch_size),
            ("drop_remainder", True),
        ]),
        ("augmentation", [
            ("image_resize", 224),
            ("hflip", 0.5),
            ("color_jitter", 0.4),
            ("interpolation", "bilinear"),
            ("crop_pct", 0.875),
            ("re_prob", re_prob),
        ]),
        ("model", model),
        ("loss", [("loss", "CE"), ("label_smoothing", 0.1)]
         + ([("aux_factor", list(aux_factor))] if aux_factor else [])),
        ("lr scheduler", schedule),
        ("optimizer", [
            ("opt", "momentum"),
            ("weight_decay_filter", weight_decay_filter),
            ("momentum", 0.9),
            ("weight_decay", PAPER_WEIGHT_DECAY),
            ("loss_scale_type", "fixed"),
            ("loss_scale", loss_scale),
            ("use_nesterov", False),
        ]),
    ]


# ---------------------------------------------------------------------------------------------------
# the recipe families


def paper_recipe(m: ModelFacts, recipe: str = "paper", header: Optional[List[str]] = None) -> Recipe:
    """The paper / official code's recipe on 8 Ascend cards (128 per card = global batch 1024)."""
    per_card = PAPER_GLOBAL_BATCH // ASCEND_CARDS
    header = header or [f"{m.title} ({m.name}): the paper's and official code's ImageNet recipe on "
                        f"{ASCEND_CARDS} Ascend cards ({per_card} per card = global batch {PAPER_GLOBAL_BATCH})."]
    header = header + _paper_source(m) + [paper_accuracy(m)]
    sections = _sections(
        m, recipe, device="Ascend", distribute=True, workers=8, log_interval=100, batch_size=per_card,
        re_prob=0.0, drop_rate=m.drop_rate or None, keep_ckpt=30, epochs=PAPER_EPOCHS,
        amp="O3" if m.is_v2 else "O0", scheduler="linear_decay", lr=PAPER_LR, warmup=0, decay_epochs=None,
        weight_decay_filter="official", loss_scale=FIXED_LOSS_SCALE)
    return Recipe(_config_path(m, recipe), header, _launch(m, recipe), sections)


def mindcv_recipe(m: ModelFacts) -> Recipe:
    """8 Ascend cards x 64 with MindCV's hyperparameters; the paper's where MindCV has no recipe."""
    r = m.mindcv
    if r is None:
        return paper_recipe(m, "ascend", header=[
            f"{m.title} ({m.name}): ImageNet on {ASCEND_CARDS} Ascend cards. MindCV has no recipe for this "
            f"model, so this file carries the paper's recipe (the same values as {m.name}_paper.yaml)."])
    published = m.published.mindcv
    if published is None:
        raise ValueError(f"{m.name}: a MindCV recipe needs MindCV's published accuracy in the model's metadata")
    acc = f"Expected accuracy: top-1 {published.top1} / top-5 {published.top5} ({published.source}"
    acc += f"; {published.note})." if published.note else ")."
    erasing = f"random erasing {r.re_prob}" if r.re_prob else "no random erasing"
    header = [
        f"{m.title} ({m.name}): MindCV's ImageNet recipe on {ASCEND_CARDS} Ascend cards (64 per card = global "
        f"batch {64 * ASCEND_CARDS}).",
        f"Hyperparameters: MindCV's {r.source}: SGD momentum 0.9, lr {r.lr}, {r.warmup} epochs of linear "
        f"warmup then cosine decay to 0, {r.epochs} epochs, weight decay 4e-5 (not on BatchNorm), label smoothing "
        f"0.1, {erasing}, amp {r.amp}, fixed loss scale {FIXED_LOSS_SCALE}; eval resize 256, center crop 224.",
        acc,
    ]
    sections = _sections(
        m, "ascend", device="Ascend", distribute=True, workers=8, log_interval=100, batch_size=64,
        re_prob=r.re_prob, drop_rate=None, keep_ckpt=30, epochs=r.epochs, amp=r.amp, scheduler="cosine_decay",
        lr=r.lr, warmup=r.warmup, decay_epochs=r.epochs - r.warmup, weight_decay_filter="auto",
        loss_scale=FIXED_LOSS_SCALE)
    return Recipe(_config_path(m, "ascend"), header, _launch(m, "ascend"), sections)


def cpu_recipe(m: ModelFacts) -> Recipe:
    """The paper recipe on one CPU at batch 32, lr scaled linearly by batch; for small runs."""
    lr = PAPER_LR * CPU_BATCH / PAPER_GLOBAL_BATCH
    target = _official_acc(m) or _paper_acc(m)
    header = [
        f"{m.title} ({m.name}): one CPU, for small runs on a workstation.",
        f"Hyperparameters: the paper's and official code's recipe ({m.name}_paper.yaml) at batch {CPU_BATCH}, "
        f"lr scaled linearly by batch ({PAPER_LR} * {CPU_BATCH} / {PAPER_GLOBAL_BATCH} = {lr}), amp O0 without "
        f"loss scaling. epoch_size is the paper's {PAPER_EPOCHS}: shorten a run with --epoch_size, train on a "
        "subset with --num_samples.",
        f"Expected accuracy: not measured at this batch size; the full paper recipe reaches {target}.",
    ]
    sections = _sections(
        m, "cpu", device="CPU", distribute=False, workers=2, log_interval=20, batch_size=CPU_BATCH,
        re_prob=0.0, drop_rate=m.drop_rate or None, keep_ckpt=10, epochs=PAPER_EPOCHS, amp="O0",
        scheduler="linear_decay", lr=lr, warmup=0, decay_epochs=None, weight_decay_filter="official",
        loss_scale=1.0)
    return Recipe(_config_path(m, "cpu"), header, _launch(m, "cpu"), sections)


def _official_header(m: ModelFacts, where: str, batch: int, lr: float, amp_note: str) -> List[str]:
    r = m.official
    aux = (f", auxiliary heads' losses weighted {' / '.join(map(str, r.aux_factor))} (aux_factor) beside the main "
           "one (1.0)" if r.aux_factor else "")
    dropout = f", dropout {m.drop_rate} before the classifier" if m.drop_rate else ""
    per = " per card" if "Ascend" in where else ""
    target = _official_acc(m) or _paper_acc(m)
    return [
        f"{m.title} ({m.name}): the official training recipe {where}.",
        f"Hyperparameters: {r.source}: global batch {r.global_batch}, SGD momentum 0.9, lr {r.lr} decayed "
        f"linearly to 0 every step, no warmup, {r.iterations // 1000}k iterations (= {r.epochs} epochs), weight "
        f"decay 4e-5 on conv and dense weights only, label smoothing 0.1{aux}, RandomResizedCrop 224 + color "
        f"jitter 0.4 + horizontal flip{dropout}; eval resize 256, center crop 224. Here: batch {batch}{per}, lr {lr}; "
        f"{amp_note}; {r.note}.",
        f"Expected accuracy: {target}." if batch * (ASCEND_CARDS if "Ascend" in where else 1) == r.global_batch
        else f"Expected accuracy: not measured at this batch size; the official recipe reaches {target}.",
    ]


def official_recipe(m: ModelFacts) -> Recipe:
    """The official training script's recipe on 8 Ascend cards (the global batch split between them)."""
    r = m.official
    per_card = r.global_batch // ASCEND_CARDS
    header = _official_header(m, f"on {ASCEND_CARDS} Ascend cards ({per_card} per card = global batch "
                                 f"{r.global_batch})", per_card, r.lr, r.amp_note)
    sections = _sections(
        m, "ascend", device="Ascend", distribute=True, workers=8, log_interval=100, batch_size=per_card, re_prob=0.0,
        drop_rate=m.drop_rate or None, keep_ckpt=30, epochs=r.epochs, amp=r.amp, scheduler="linear_decay", lr=r.lr,
        warmup=0, decay_epochs=None, weight_decay_filter="official", loss_scale=FIXED_LOSS_SCALE,
        aux_factor=r.aux_factor)
    return Recipe(_config_path(m, "ascend"), header, _launch(m, "ascend"), sections)


def official_cpu_recipe(m: ModelFacts) -> Recipe:
    """The official recipe on one CPU at batch 32, lr scaled linearly by batch."""
    r = m.official
    lr = r.lr * CPU_BATCH / r.global_batch
    header = _official_header(m, "on one CPU, for small runs (lr scaled linearly by batch)", CPU_BATCH, lr,
                              "amp O0 without loss scaling")
    header[1] += f" epoch_size is the official {r.epochs}: shorten a run with --epoch_size."
    sections = _sections(
        m, "cpu", device="CPU", distribute=False, workers=2, log_interval=20, batch_size=CPU_BATCH, re_prob=0.0,
        drop_rate=m.drop_rate or None, keep_ckpt=10, epochs=r.epochs, amp="O0", scheduler="linear_decay", lr=lr,
        warmup=0, decay_epochs=None, weight_decay_filter="official", loss_scale=1.0, aux_factor=r.aux_factor)
    return Recipe(_config_path(m, "cpu"), header, _launch(m, "cpu"), sections)


FAMILIES = {"ascend": mindcv_recipe, "paper": paper_recipe, "cpu": cpu_recipe}
OFFICIAL_FAMILIES = {"ascend": official_recipe, "cpu": official_cpu_recipe}


RECIPE_COUNT = sum(len(m.recipes) for m in MODELS)


def all_recipes() -> List[Recipe]:
    return [(OFFICIAL_FAMILIES if m.official else FAMILIES)[name](m) for m in MODELS for name in m.recipes]


# ---------------------------------------------------------------------------------------------------
# hand-formatted YAML


def format_value(value: object) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = format(Decimal(repr(value)), "f")   # 4e-05 -> 0.00004 (YAML 1.1 reads 4e-5 as a string)
        return text if "." in text else text + ".0"
    if isinstance(value, str):
        if "'" in value:
            raise ValueError(f"cannot quote {value!r}")
        return f"'{value}'"
    if isinstance(value, list):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    raise TypeError(f"no YAML format for {value!r}")


def render(recipe: Recipe) -> str:
    lines = []
    for paragraph in recipe.header:
        indent = " " * (len(paragraph) - len(paragraph.lstrip()))
        lines += textwrap.wrap(paragraph.strip(), HEADER_WIDTH, initial_indent="# " + indent,
                               subsequent_indent="# " + (indent or "  "), break_long_words=False,
                               break_on_hyphens=False)
    lines += [f"# {line}" for line in recipe.launch]
    lines.append("# Generated by tools/make_configs.py: edit the generator, not this file.")
    for title, items in recipe.sections:
        lines += ["", f"# {title}"]
        lines += [f"{key}: {format_value(value)}" for key, value in items]
    return "\n".join(lines) + "\n"


def expected_files(out_dir: Path = CONFIG_DIR) -> Dict[Path, str]:
    files = {out_dir / Path(r.path).relative_to("configs"): render(r) for r in all_recipes()}
    assert len(files) == RECIPE_COUNT, "two recipes share a file name"
    return files


def existing_files(out_dir: Path) -> List[Path]:
    return sorted(p for d in FAMILY_DIRS for p in (out_dir / d).glob("*.yaml"))


def differences(out_dir: Path = CONFIG_DIR) -> List[str]:
    """One line per file that is missing, different, or not generated (stale)."""
    want = expected_files(out_dir)
    problems = []
    for path, text in sorted(want.items()):
        if not path.is_file():
            problems.append(f"missing: {path}")
        elif path.read_text() != text:
            problems.append(f"differs: {path}")
    problems += [f"not generated: {p}" for p in existing_files(out_dir) if p not in want]
    return problems


def write(out_dir: Path = CONFIG_DIR) -> Tuple[int, List[Path]]:
    """Write every recipe; remove YAML files in the generated folders that no recipe produces."""
    want = expected_files(out_dir)
    changed = 0
    for path, text in sorted(want.items()):
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            changed += 1
    stale = [p for p in existing_files(out_dir) if p not in want]
    for path in stale:
        path.unlink()
    return changed, stale


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 listing the files that differ from what would be written")
    parser.add_argument("--out", default=str(CONFIG_DIR),
                        help="the configs folder (the recipes' own paths still say configs/)")
    args = parser.parse_args(argv)
    out_dir = Path(args.out).resolve()
    if args.check:
        problems = differences(out_dir)
        for line in problems:
            print(line)
        if problems:
            print(f"{len(problems)} file(s) out of date: run python tools/make_configs.py", file=sys.stderr)
            return 1
        print(f"{RECIPE_COUNT} config files up to date")
        return 0
    changed, stale = write(out_dir)
    for path in stale:
        print(f"removed {path}")
    print(f"{RECIPE_COUNT} config files, {changed} written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
