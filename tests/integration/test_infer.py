"""infer.py: image files and folders in, top-k class names and probabilities out (class names and image search
in process: unit/test_classify.py)."""

import json
import os
import subprocess
import sys

import mindspore as ms
import numpy as np
import pytest
from PIL import Image

from mindcv_shufflenet import create_model
from mindcv_shufflenet.constants import IMAGENET_MEAN, IMAGENET_STD
from mindcv_shufflenet.deploy import imagenet_class_names, softmax, write_class_names
from mindcv_shufflenet.models.download import sha256_of
from mindcv_shufflenet.models.weights import save_checkpoint
from tests.helpers import ROOT, randomize

COLOURS = {"red.png": (230, 20, 30), "photos/sky.jpg": (40, 90, 250), "photos/deep/grass.png": (30, 200, 40)}


@pytest.fixture(scope="session")
def images(tmp_path_factory):
    """Uniformly coloured images (PNG exactly, JPEG nearly), so the network input is known."""
    root = tmp_path_factory.mktemp("infer")
    for name, colour in COLOURS.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (50, 40), colour).save(root / name, quality=100)
    (root / "photos" / "notes.txt").write_text("not an image")
    return root


def expected_probabilities(net, colour):
    pixel = (np.array(colour) - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    x = np.broadcast_to(pixel[None, :, None, None], (1, 3, 32, 32)).astype(np.float32)
    net.set_train(False)
    return softmax(net(ms.Tensor(x)).asnumpy())[0]


def test_infer_names_imagenet_classes_with_their_probabilities(run_cli, images, tmp_path):
    net = randomize(create_model("shufflenet_v2_x0_5"), seed=1)
    save_checkpoint(net, tmp_path / "in1k.ckpt", model_name="shufflenet_v2_x0_5")
    result = run_cli("infer.py", "--model", "shufflenet_v2_x0_5", "--ckpt_path", tmp_path / "in1k.ckpt", "--top_k", "3",
                     "--image_resize", "32", "--batch_size", "2", images / "red.png", images / "photos")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "shufflenet_v2_x0_5, 1000 classes (names: ImageNet), 3 images"
    printed = [line.split(": ", 1)[0] for line in lines[1:]]
    assert printed == [str(images / name) for name in ("red.png", "photos/deep/grass.png", "photos/sky.jpg")]
    names = imagenet_class_names()
    p = expected_probabilities(net, COLOURS["red.png"])
    best = np.argsort(-p)[:3]
    assert lines[1] == f"{images / 'red.png'}: " + ", ".join(f"{names[i]} {100 * p[i]:.2f}%" for i in best)
    assert "Exception ignored" not in result.stderr


def test_infer_uses_the_class_names_beside_the_checkpoint_and_prints_json(run_cli, images, tmp_path):
    net = randomize(create_model("shufflenet_v1_g3_05", num_classes=3), seed=2)
    ms.save_checkpoint(net, str(tmp_path / "plain.ckpt"))  # no record: the class count comes from the weights
    write_class_names(tmp_path, ["apple", "banana", "cherry"])
    result = run_cli("infer.py", "--model", "shufflenet_v1_g3_05", "--ckpt_path", tmp_path / "plain.ckpt", "--json",
                     "--image_resize", "32", "--mode", "pynative", images / "red.png")
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout.strip().splitlines()[-1])
    p = expected_probabilities(net, COLOURS["red.png"])
    assert [r["label"] for r in row["top_k"]] == [["apple", "banana", "cherry"][i] for i in np.argsort(-p)]
    assert [r["probability"] for r in row["top_k"]] == pytest.approx(sorted(p, reverse=True), abs=1e-5)


@pytest.mark.parametrize("extra, message", [
    (["IMAGES/photos/notes.txt"], "error: cannot read image IMAGES/photos/notes.txt: Decode: image decode failed."),
    (["--class_names", "IMAGES/photos", "IMAGES/red.png"],
     "error: IMAGES/photos lists 1 class names, but the model has 1000 classes"),
])
def test_infer_reports_bad_input_in_one_line(run_cli, images, tmp_path, extra, message):
    save_checkpoint(create_model("shufflenet_v2_x0_5"), tmp_path / "net.ckpt")
    result = run_cli("infer.py", "--model", "shufflenet_v2_x0_5", "--ckpt_path", str(tmp_path / "net.ckpt"),
                     "--image_resize", "32", *[a.replace("IMAGES", str(images)) for a in extra])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == message.replace("IMAGES", str(images))


def test_infer_shows_the_librarys_message_about_a_pretrained_classifier_on_stderr(run_cli, images, tmp_path):
    """Library code logs; the command line shows it, apart from its results on stdout (here JSON)."""

    # The released file's name and hash are this checkpoint's: the command runs with them registered.
    ms.save_checkpoint(randomize(create_model("shufflenet_v2_x0_5"), seed=2), str(tmp_path / "w.ckpt"))
    prefix = sha256_of(tmp_path / "w.ckpt")[:8]
    (tmp_path / "test").mkdir()
    (tmp_path / "w.ckpt").replace(tmp_path / "test" / f"shufflenet_v2_x0_5-{prefix}.ckpt")
    run_infer = (
        "import dataclasses, runpy, sys\n"
        "from mindcv_shufflenet.models import registry\n"
        "from mindcv_shufflenet.models.metadata import ReleasedWeights\n"
        f"released = ReleasedWeights('http://127.0.0.1/test/shufflenet_v2_x0_5-{prefix}.ckpt', '{prefix}')\n"
        "registry._INFO['shufflenet_v2_x0_5'] = dataclasses.replace(registry.model_info('shufflenet_v2_x0_5'), "
        "weights=released)\n"
        "sys.argv = ['infer.py'] + sys.argv[1:]\n"
        "runpy.run_path('infer.py', run_name='__main__')\n")
    result = subprocess.run([sys.executable, "-c", run_infer, "--model", "shufflenet_v2_x0_5", "--pretrained",
                             "--num_classes", "3", "--image_resize", "32", "--json", str(images / "red.png")],
                            capture_output=True, text=True, cwd=ROOT, timeout=600,
                            env={**os.environ, "MINDCV_SHUFFLENET_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert ("shufflenet_v2_x0_5: loading pretrained weights without the classifier (num_classes=3, the "
            "checkpoint has 1000)") in result.stderr.splitlines()
    assert [json.loads(line)["image"] for line in result.stdout.splitlines()] == [str(images / "red.png")]
