"""validate.py and infer.py give the same metrics and predictions with BatchNorm folded and unfolded, and refuse
--no_fold_bn with a model file (the folding itself: unit/test_fold_batchnorm.py)."""

import hashlib
import json

import numpy as np
import pytest

from tests.helpers import DEMO


@pytest.fixture(scope="session")
def trained(run_cli, images, tmp_path_factory):
    """The digits demo recipe (ShuffleNet V2 0.5x, 32x32) trained by train.py for 3 epochs: its last checkpoint."""
    run_dir = tmp_path_factory.mktemp("fold_run")
    proc = run_cli("train.py", "--config", DEMO, "--data_dir", images, "--ckpt_save_dir", run_dir, "--epoch_size", 3,
                   "--decay_epochs", 2, "--val_while_train", "False")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir / "shufflenet_v2_x0_5-last.ckpt"


@pytest.mark.slow
def test_validate_and_infer_give_the_same_results_folded_and_unfolded(run_cli, trained, images, tmp_path):
    """One test, so that pytest-xdist trains the checkpoint once."""
    digest = hashlib.sha256(trained.read_bytes()).hexdigest()
    results, predictions = [], []
    pictures = [sorted((images / "val" / digit).iterdir())[0] for digit in "07"]
    for flag in ([], ["--no_fold_bn"]):
        out = tmp_path / f"result{len(flag)}.json"
        proc = run_cli("validate.py", "--config", DEMO, "--ckpt_path", trained, "--data_dir", images, "--json", out,
                       *flag)
        assert proc.returncode == 0, proc.stderr[-3000:]
        results.append(json.loads(out.read_text()))
        proc = run_cli("infer.py", "--ckpt_path", trained, "--json", "--top_k", 3, *pictures, *flag)
        assert proc.returncode == 0, proc.stderr[-3000:]
        predictions.append([json.loads(line)["top_k"] for line in proc.stdout.strip().splitlines()])
    folded, unfolded = results
    assert (folded["fold_bn"], unfolded["fold_bn"]) == (True, False)
    assert folded["images"] == unfolded["images"] == 359 and unfolded["top1"] > 30  # trained: above chance (10%)
    assert (folded["top1"], folded["top5"]) == (unfolded["top1"], unfolded["top5"])
    assert folded["loss"] == pytest.approx(unfolded["loss"], rel=1e-5)
    for folded, unfolded in zip(*predictions):
        assert [k["index"] for k in folded] == [k["index"] for k in unfolded]
        np.testing.assert_allclose([k["probability"] for k in folded], [k["probability"] for k in unfolded],
                                   atol=2e-6)
    assert hashlib.sha256(trained.read_bytes()).hexdigest() == digest  # the checkpoint is only read


def test_no_fold_bn_with_a_model_file_is_a_one_line_error(run_cli, tmp_path):
    proc = run_cli("infer.py", "--model_file", tmp_path / "net.onnx", "--no_fold_bn", tmp_path / "x.png")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == ("error: --no_fold_bn applies to checkpoints, not to --model_file "
                                                    "(the file holds the network)")
