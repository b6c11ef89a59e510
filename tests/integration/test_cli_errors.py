"""Every bad input, met as a user meets it: train.py / validate.py run as commands, each giving one
``error: ...`` line that names the problem (and the fix), a non-zero exit, and no traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import mindspore as ms
import pytest

from mindcv_shufflenet import create_model
from mindcv_shufflenet.engine.checkpoint import atomic_save
from tests.helpers import DEMO, assert_one_line_error

# Small enough that a case which wrongly starts training would still end within the timeout.
# Given before each case's own arguments, which override them.
QUICK = ["--epoch_size", "1", "--batch_size", "2", "--warmup_epochs", "0", "--decay_epochs", "1"]


@pytest.fixture(scope="session")
def files(tmp_path_factory) -> Dict[str, Path]:
    """Image folders (good and bad) and checkpoints (good and bad), made once."""
    from PIL import Image

    root = tmp_path_factory.mktemp("inputs")
    paths: Dict[str, Path] = {}

    def folder(name: str, classes: Dict[str, int]) -> Path:
        for cls, count in classes.items():
            (root / name / "train" / cls).mkdir(parents=True)
            (root / name / "val" / cls).mkdir(parents=True)
            for i in range(count):
                for split in ("train", "val"):
                    Image.new("RGB", (8, 8), (40 * i % 255, 90, 160)).save(root / name / split / cls / f"{i}.png")
        return root / name

    paths["good"] = folder("good", {"a": 3, "b": 3})
    paths["empty_class"] = folder("empty_class", {"a": 3, "b": 0})
    paths["no_images"] = folder("no_images", {"a": 0, "b": 0})
    (paths["no_images"] / "train" / "a" / "notes.txt").write_text("not an image")
    (root / "no_classes" / "train").mkdir(parents=True)
    (root / "no_classes" / "val").mkdir(parents=True)
    paths["no_classes"] = root / "no_classes"
    only_bad = folder("only_bad", {"a": 3, "b": 0})
    (only_bad / "train" / "b" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut off")
    paths["only_bad"] = only_bad

    paths["not_yaml"] = root / "bad.yaml"
    paths["not_yaml"].write_text("model: [shufflenet_v2_x0_5\n")
    paths["binary_yaml"] = root / "binary.yaml"
    paths["binary_yaml"].write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    paths["list_yaml"] = root / "list.yaml"
    paths["list_yaml"].write_text("- model\n- lr\n")
    paths["unknown_key"] = root / "unknown_key.yaml"
    paths["unknown_key"].write_text("model: shufflenet_v2_x0_5\nwarmup_epoch: 2\n")
    paths["wrong_type"] = root / "wrong_type.yaml"
    paths["wrong_type"].write_text("model: shufflenet_v2_x0_5\nhflip: often\n")

    ms.save_checkpoint(create_model("shufflenet_v2_x0_5", num_classes=2), str(root / "good.ckpt"))
    data = (root / "good.ckpt").read_bytes()
    paths["truncated.ckpt"] = root / "truncated.ckpt"
    paths["truncated.ckpt"].write_bytes(data[: len(data) // 2])
    paths["garbage.ckpt"] = root / "garbage.ckpt"
    paths["garbage.ckpt"].write_bytes(bytes(range(256)) * 40)
    paths["empty.ckpt"] = root / "empty.ckpt"
    paths["empty.ckpt"].write_bytes(b"")
    # A checkpoint saved as training saves them (with a CRC), then one byte of tensor data changed on disk.
    atomic_save(create_model("shufflenet_v2_x0_5", num_classes=2), root / "crc.ckpt")
    flipped = bytearray((root / "crc.ckpt").read_bytes())
    flipped[len(flipped) // 2] ^= 0x40
    paths["bitflip.ckpt"] = root / "bitflip.ckpt"
    paths["bitflip.ckpt"].write_bytes(bytes(flipped))
    ms.save_checkpoint(create_model("shufflenet_v1_g3_05", num_classes=2), str(root / "v1.ckpt"))
    paths["v1.ckpt"] = root / "v1.ckpt"
    ms.save_checkpoint(create_model("shufflenet_v2_x0_5", num_classes=7), str(root / "seven.ckpt"))
    paths["seven.ckpt"] = root / "seven.ckpt"
    return paths


# What a damaged checkpoint is called, whoever reads it (not MindSpore's "May not have permission to read it").
CUT_SHORT = "the file is cut short: it ends at byte"
CHANGED_ON_DISK = ("its contents do not match the CRC-32 saved with it: the file was changed or damaged after it "
                   "was written")

# (case, extra arguments (placeholders {name} are paths from `files`), expected part of the error line)
TRAIN_CASES = [
    ("unknown option", ["--config", DEMO, "--lrr", "0.1"], "unknown option --lrr (did you mean 'lr'?)"),
    ("unknown yaml key", ["--config", "{unknown_key}"], "unknown key 'warmup_epoch' (did you mean 'warmup_epochs'?)"),
    ("wrong type on the command line", ["--config", DEMO, "--batch_size", "eight"],
     "error: batch_size must be an integer, got 'eight'"),
    ("wrong type in the file", ["--config", "{wrong_type}"], "wrong_type.yaml: hflip must be a number, got 'often'"),
    ("negative lr", ["--config", DEMO, "--lr", "-0.1"], "lr must be > 0, got -0.1"),
    ("infinite lr", ["--config", DEMO, "--lr", "inf"], "lr must be a finite number"),
    ("batch 0", ["--config", DEMO, "--batch_size", "0"], "batch_size must be >= 1, got 0"),
    ("unknown scheduler", ["--config", DEMO, "--scheduler", "cosine"],
     "scheduler: unknown value 'cosine' (did you mean 'cosine_decay'?)"),
    ("unknown optimizer", ["--config", DEMO, "--opt", "adamm"], "opt: unknown value 'adamm' (did you mean 'adam'?)"),
    ("unknown amp level", ["--config", DEMO, "--amp_level", "O4"], "amp_level: unknown value 'O4'"),
    ("missing model", ["--data_dir", "{good}"], "model is required, e.g. --model shufflenet_v2_x1_0"),
    ("unregistered model", ["--config", DEMO, "--model", "shufflenet_v2_x1"], "did you mean shufflenet_v2_x1_5"),
    ("missing config file", ["--config", "/no/such/recipe.yaml"], "config file not found: /no/such/recipe.yaml"),
    ("config not YAML", ["--config", "{not_yaml}"], "is not valid YAML"),
    ("config is binary", ["--config", "{binary_yaml}"], "is not a YAML text file"),
    ("config not a mapping", ["--config", "{list_yaml}"], "must be a mapping of key: value, got list"),
    ("data_dir missing", ["--config", DEMO, "--data_dir", "/no/such/data"],
     "data folder not found: /no/such/data/train (data_dir /no/such/data is not a folder): check --data_dir"),
    ("train split missing", ["--config", DEMO, "--data_dir", "{good}", "--train_split", "training"],
     "has no 'training' folder): check --data_dir and --train_split"),
    ("val split missing", ["--config", DEMO, "--data_dir", "{good}", "--val_split", "validation"],
     "has no 'validation' folder): check --data_dir and --val_split"),
    ("empty class folder", ["--config", DEMO, "--data_dir", "{empty_class}"], "/train/b has no images"),
    ("class of unreadable files", ["--config", DEMO, "--data_dir", "{only_bad}"],
     "/train/b has no images (1 image file(s) there cannot be read)"),
    ("no images at all", ["--config", DEMO, "--data_dir", "{no_images}"], "/train/a has no images"),
    ("no class folders", ["--config", DEMO, "--data_dir", "{no_classes}"], "has no class folders"),
    ("num_classes below the folders", ["--config", DEMO, "--data_dir", "{good}", "--num_classes", "1"],
     "has 2 class folders but the model has num_classes=1"),
    ("checkpoint missing", ["--config", DEMO, "--data_dir", "{good}", "--ckpt_path", "/no/such.ckpt"],
     "checkpoint not found: /no/such.ckpt"),
    ("checkpoint truncated", ["--config", DEMO, "--data_dir", "{good}", "--ckpt_path", "{truncated.ckpt}"],
     CUT_SHORT),
    ("checkpoint of garbage", ["--config", DEMO, "--data_dir", "{good}", "--ckpt_path", "{garbage.ckpt}"],
     "it is not a MindSpore checkpoint (it starts with bytes 00 01 02"),
    ("checkpoint empty", ["--config", DEMO, "--data_dir", "{good}", "--ckpt_path", "{empty.ckpt}"],
     "the file is empty (0 bytes)"),
    ("checkpoint with a changed byte", ["--config", DEMO, "--data_dir", "{good}", "--ckpt_path", "{bitflip.ckpt}"],
     CHANGED_ON_DISK),
    ("resume from a checkpoint with a changed byte",
     ["--config", DEMO, "--data_dir", "{good}", "--resume", "{bitflip.ckpt}"], CHANGED_ON_DISK),
    ("checkpoint of another model", ["--config", DEMO, "--data_dir", "{good}", "--ckpt_path", "{v1.ckpt}"],
     "checkpoint does not fit ShuffleNetV2 (wrong model name or width?)"),
    ("resume from a checkpoint that is not a training state",
     ["--config", DEMO, "--data_dir", "{good}", "--resume", "{seven.ckpt}"], "is not a training checkpoint"),
    ("resume from a missing file", ["--config", DEMO, "--data_dir", "{good}", "--resume", "/no/last.ckpt"],
     "resume: checkpoint not found: /no/last.ckpt"),
]

VALIDATE = ["--model", "shufflenet_v2_x0_5", "--image_resize", "32", "--crop_pct", "1.0"]
VALIDATE_CASES = [
    ("no checkpoint given", [*VALIDATE, "--data_dir", "{good}"], "give --ckpt_path FILE"),
    ("checkpoint missing", [*VALIDATE, "--data_dir", "{good}", "--ckpt_path", "/no/such.ckpt"],
     "checkpoint not found: /no/such.ckpt"),
    ("checkpoint truncated", [*VALIDATE, "--data_dir", "{good}", "--ckpt_path", "{truncated.ckpt}"],
     CUT_SHORT),
    ("checkpoint with a changed byte", [*VALIDATE, "--data_dir", "{good}", "--ckpt_path", "{bitflip.ckpt}"],
     CHANGED_ON_DISK),
    ("checkpoint of another model", [*VALIDATE, "--data_dir", "{good}", "--ckpt_path", "{v1.ckpt}"],
     "checkpoint does not fit ShuffleNetV2"),
    ("checkpoint of another class count", [*VALIDATE, "--data_dir", "{good}", "--ckpt_path", "{seven.ckpt}",
                                           "--num_classes", "2"], "classifier.weight: checkpoint (7, 1024)"),
    ("data_dir missing", [*VALIDATE, "--data_dir", "/no/such/data", "--ckpt_path", "{seven.ckpt}"],
     "check --data_dir and --val_split"),
    ("no images at all", [*VALIDATE, "--data_dir", "{no_images}", "--ckpt_path", "{seven.ckpt}"], "has no images"),
    ("folders disagree with the checkpoint's classes", [*VALIDATE, "--data_dir", "{good}", "--num_classes", "1",
                                                        "--ckpt_path", "{seven.ckpt}"],
     "has 2 class folders but the model has num_classes=1"),
    ("unknown option", [*VALIDATE, "--data_dir", "{good}", "--ckpt_path", "{seven.ckpt}", "--bach_size", "3"],
     "unknown option --bach_size (did you mean 'batch_size'?)"),
]


def _fill(args: List[str], files: Dict[str, Path]) -> List[str]:
    return [str(files[a[1:-1]]) if a.startswith("{") and a.endswith("}") else a for a in args]


@pytest.mark.slow
@pytest.mark.parametrize("case, args, expected", TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES])
def test_train_refuses_bad_input_with_one_line(run_cli, case, args, expected, files, tmp_path):
    proc = run_cli("train.py", *QUICK, *_fill(args, files), "--ckpt_save_dir", tmp_path / "run", cwd=tmp_path)
    assert_one_line_error(proc, expected)
    assert not (tmp_path / "run" / "shufflenet_v2_x0_5-last.ckpt").exists()


@pytest.mark.slow
def test_training_from_a_checkpoint_of_another_class_count_fine_tunes(run_cli, files, tmp_path):
    """Not an error when training: the classifier is re-initialised, with a message, the rest loads."""
    args = ["--config", DEMO, "--data_dir", "{good}", "--ckpt_path", "{seven.ckpt}"]
    proc = run_cli("train.py", *QUICK, *_fill(args, files), "--ckpt_save_dir", tmp_path / "run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "re-initialised for fine-tuning" in proc.stdout + proc.stderr
    assert (tmp_path / "run" / "shufflenet_v2_x0_5-last.ckpt").exists()


@pytest.mark.slow
@pytest.mark.parametrize("case, args, expected", VALIDATE_CASES, ids=[c[0] for c in VALIDATE_CASES])
def test_validate_refuses_bad_input_with_one_line(run_cli, case, args, expected, files, tmp_path):
    assert_one_line_error(run_cli("validate.py", *_fill(args, files), cwd=tmp_path), expected)


@pytest.mark.slow
@pytest.mark.parametrize("script, args", [
    ("infer.py", ["--model", "shufflenet_v2_x0_5", "--ckpt_path", "{bitflip.ckpt}", "{good}"]),
    ("export.py", ["--model", "shufflenet_v2_x0_5", "--ckpt_path", "{bitflip.ckpt}", "--image_size", "32"]),
])
def test_infer_and_export_name_a_damaged_checkpoint_in_one_line(run_cli, script, args, files, tmp_path):
    proc = run_cli(script, *_fill(args, files), cwd=tmp_path)
    assert_one_line_error(proc, f"cannot read checkpoint {files['bitflip.ckpt']}: its contents do not match the "
                                f"CRC-32 saved with it")
    # Not MindSpore's message, which blames permissions, nor its log line.
    assert "permission" not in proc.stderr.lower() and "Failed to read" not in proc.stderr


def test_debug_shows_the_traceback(run_cli, tmp_path):
    proc = run_cli("train.py", "--config", DEMO, "--lr", "-1", "--debug", cwd=tmp_path)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "ConfigError: " in proc.stderr and "lr must be > 0" in proc.stderr

