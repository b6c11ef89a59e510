"""Deployment in process: BatchNorm folded and pools rewritten keep the outputs, and the family models export to
ONNX with one output (export.py itself: integration/test_export.py)."""

import numpy as np
import pytest
from mindspore import nn

from mindcv_shufflenet.deploy import export_friendly_pools
from mindcv_shufflenet.models import fold_batchnorm
from tests.helpers import calibrate, normal_images, randomize, run_eval, trained_like

TOLERANCE = 1e-4
SIZE = 64
MEGVII_PAD = [-2.1179, -2.0357, -1.8044]


@pytest.mark.parametrize("model, options", [
    ("shufflenet_v2_x0_5", {"pool_padding": "symmetric", "proj_channels": "half", "classifier_bias": True}),
    ("shufflenet_v1_g3_05", {"pool_padding": "symmetric", "stem_pad_value": MEGVII_PAD}),
])
def test_folding_batchnorm_and_rewriting_pools_keeps_the_outputs(model, options):
    net = trained_like(model, seed=1, **options)
    x = normal_images(3, 2)
    before = run_eval(net, x)
    assert fold_batchnorm(net) == (56 if model.startswith("shufflenet_v2") else 49)
    replaced = export_friendly_pools(net)
    assert not [name for name, cell in net.cells_and_names() if isinstance(cell, nn.BatchNorm2d)]
    assert replaced == (1 if model.startswith("shufflenet_v2") else 4)  # the stem pool (+ V1's 3 shortcut pools)
    assert np.abs(run_eval(net, x) - before).max() <= TOLERANCE


@pytest.mark.slow
@pytest.mark.parametrize("family", ["v2_plus", "large"])
def test_the_family_models_export_with_se_hard_swish_and_one_output(family, tmp_path):
    """ShuffleNetV2+ (SE, hard-swish, 5x5 / 7x7 depthwise) and V2.Large (auxiliary heads, which eval mode
    leaves out; a converted network's input offset) at reduced widths: ONNX with BatchNorm folded."""
    pytest.importorskip("onnxruntime")
    from mindcv_shufflenet.deploy import export_model
    from mindcv_shufflenet.models import ShuffleNetV2Large, ShuffleNetV2Plus

    if family == "v2_plus":
        net = ShuffleNetV2Plus((8, 16, 32, 48, 64, 96), num_classes=10)
    else:
        net = ShuffleNetV2Large((8, 8, 16, 32, 64, 128, 256, 64), "large", num_classes=10, stage_repeats=(2, 2, 3, 2),
                                groups=4, aux_channels=(16, 32, 48), input_offset=(SIZE, SIZE))
    net = calibrate(randomize(net, seed=4), normal_images(4, 5), seed=4)
    logit_size = max(1.0, float(np.abs(run_eval(net, normal_images(2, 6))).max()))
    result = export_model(net, tmp_path / family, "ONNX", image_size=SIZE)
    assert result.folded_batchnorms > 40 and result.checked_with == "onnxruntime"
    # Relative to the logits' size: V2+'s logits reach ~6 here, and float32 sums in another order (onnxruntime
    # on an AVX-512 host, oneDNN limited to AVX2) differ by ~3e-5 of that.
    assert result.max_abs_diff <= TOLERANCE * logit_size
    import onnxruntime

    session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    outputs = session.get_outputs()
    assert len(outputs) == 1 and outputs[0].shape[1:] == [10]  # one output: no auxiliary logits
    batch = normal_images(3, 6)
    assert session.run(None, {session.get_inputs()[0].name: batch})[0].shape == (3, 10)  # a dynamic batch
