"""BatchNorm folded into the convolutions for inference (validate.py, infer.py): the same logits for every model
family, in graph and PyNative mode, and BatchNorms that cannot be folded left working (the same metrics from the
commands: integration/test_fold_batchnorm.py)."""

import re

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

from mindcv_shufflenet import list_models, runtime
from mindcv_shufflenet.models import (
    ShuffleNetV1,
    ShuffleNetV2,
    ShuffleNetV2Large,
    ShuffleNetV2Plus,
    fold_batchnorm,
    prepare_for_inference,
)
from mindcv_shufflenet.models.fusion import unfolded_batchnorms
from tests.helpers import LARGE_REDUCED, PLUS_REDUCED, V2_50_REDUCED, calibrate, randomize

SIZE = 32
RELATIVE = 1e-5  # of the largest logit
MEGVII_PAD = [-2.1179, -2.0357, -1.8044]

V1_REDUCED = {1: (12, 24, 48, 96), 2: (12, 24, 48, 96), 3: (12, 24, 48, 96), 4: (12, 32, 64, 128),
              8: (8, 32, 64, 128)}
# One reduced network per registered family and form (V1's groups, V2's options, v2-50 plain and with SE and
# residual connections, V2+ with each of its four unit choices, V2.Large / ExLarge with their auxiliary heads), as
# shallow as the form allows: graph mode compiles each twice.
REDUCED = {
    **{f"v1_g{g}": (lambda g=g, **kw: ShuffleNetV1(V1_REDUCED[g], groups=g, stage_repeats=(1, 2, 1), **kw))
       for g in V1_REDUCED},
    "v1_g3_megvii": lambda **kw: ShuffleNetV1(V1_REDUCED[3], groups=3, stage_repeats=(1, 2, 1),
                                              pool_padding="symmetric", stem_pad_value=MEGVII_PAD, **kw),
    "v2": lambda **kw: ShuffleNetV2((8, 16, 32, 64, 96), stage_repeats=(2, 2, 1), **kw),
    "v2_torchvision": lambda **kw: ShuffleNetV2((8, 16, 32, 64, 96), stage_repeats=(2, 2, 1), pool_padding="symmetric",
                                                proj_channels="half", classifier_bias=True,
                                                stem_pad_value=MEGVII_PAD, **kw),
    **{f"v2_50{'_se_residual' * se}": (
        lambda se=se, **kw: ShuffleNetV2(V2_50_REDUCED, stage_repeats=(1, 2, 1, 1), first_stage_stride=1, se=se,
                                         residual=se, **kw)) for se in (False, True)},
    "v2_plus": lambda **kw: ShuffleNetV2Plus(PLUS_REDUCED, stage_repeats=(1, 2, 2, 1), architecture=(2, 1, 3, 0, 3, 1),
                                             **kw),
    **{variant: (lambda variant=variant, **kw: ShuffleNetV2Large(
        LARGE_REDUCED[variant][0], variant, **{**LARGE_REDUCED[variant][1], "stage_repeats": (1, 2, 1, 1)}, **kw))
       for variant in LARGE_REDUCED},
}
# Registered names -> the family above that covers them at reduced size.
FAMILY_OF = [(r"shufflenet_v1_g(\d)_\d\d", r"v1_g\1"), (r"shufflenet_v2_x\d_\d", "v2"), (r"shufflenet_v2_50", "v2_50"),
             (r"shufflenet_v2_plus_\w+", "v2_plus"), (r"shufflenet_v2_(ex)?large", r"\1large")]


def random_images(batch, seed):
    return np.random.default_rng(seed).standard_normal((batch, 3, SIZE, SIZE)).astype(np.float32)


def with_random_statistics(net, seed):
    """Random weights, BatchNorm statistics measured on images (so that every layer passes a signal on) and then
    moved at random (so that the mean and variance terms of the fold both matter)."""
    net = calibrate(randomize(net, seed=seed), random_images(4, seed + 100), seed=seed)
    rng = np.random.default_rng(seed + 200)
    for _, cell in net.cells_and_names():
        if isinstance(cell, nn.BatchNorm2d):
            var = cell.moving_variance.asnumpy()
            shift = rng.normal(0, 0.3, var.shape) * np.sqrt(var)
            cell.moving_mean.set_data(ms.Tensor((cell.moving_mean.asnumpy() + shift).astype(np.float32)))
            cell.moving_variance.set_data(ms.Tensor((var * rng.uniform(0.5, 2.0, var.shape)).astype(np.float32)))
    return net


def test_every_registered_model_has_a_reduced_family_here():
    for name in list_models():
        family = next((re.sub(pattern, sub, name) for pattern, sub in FAMILY_OF if re.fullmatch(pattern, name)), None)
        assert family in REDUCED, f"{name}: no reduced network tests its BatchNorm folding"


@pytest.mark.parametrize("mode", ["pynative", "graph"])
@pytest.mark.parametrize("family", [pytest.param(family, marks=pytest.mark.slow) if family in ("large", "exlarge")
                                    else family for family in sorted(REDUCED)])  # the largest two compile slowly
def test_folded_network_gives_the_same_logits(family, mode):
    net = with_random_statistics(REDUCED[family](num_classes=10), seed=sorted(REDUCED).index(family))
    batchnorms = len(unfolded_batchnorms(net))
    x = ms.Tensor(random_images(3, 7))
    runtime.set_mode(mode)
    try:
        net.set_train(False)
        expected = net(x).asnumpy()
        assert prepare_for_inference(net) == batchnorms  # every BatchNorm of these families follows a conv
        got = net(x).asnumpy()  # the same network object: graph mode must compile the folded one anew
    finally:
        runtime.set_mode("pynative")
    assert not unfolded_batchnorms(net) and not net.training
    assert expected.std() > 0.1  # the logits depend on the input, not only on the last biases
    assert np.abs(got - expected).max() <= RELATIVE * np.abs(expected).max()


class Unfoldable(nn.Cell):
    """A conv + BatchNorm pair, a BatchNorm after a ReLU, one alone and one on batch statistics."""

    def __init__(self):
        super().__init__()
        self.body = nn.SequentialCell(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.BatchNorm2d(4))
        self.alone = nn.BatchNorm2d(4)
        self.batch_stats = nn.SequentialCell(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4, use_batch_statistics=True))

    def construct(self, x):
        return self.batch_stats(self.alone(self.body(x)))


def test_batchnorms_that_cannot_be_folded_keep_working():
    net = with_random_statistics(Unfoldable(), seed=3)
    x = ms.Tensor(random_images(2, 8))
    net.set_train(False)
    expected = net(x).asnumpy()
    assert prepare_for_inference(net) == 1
    assert unfolded_batchnorms(net) == ["body.3", "alone", "batch_stats.1"]
    assert np.abs(net(x).asnumpy() - expected).max() <= RELATIVE * np.abs(expected).max()
    with pytest.raises(ValueError, match=r"^3 BatchNorm2d cells do not follow a convolution"):
        fold_batchnorm(net)  # export's strict form


def test_prepare_without_folding_only_sets_eval_mode():
    net = REDUCED["v2"](num_classes=10)
    batchnorms = unfolded_batchnorms(net)
    net.set_train(True)
    assert prepare_for_inference(net, fold_bn=False) == 0
    assert not net.training and unfolded_batchnorms(net) == batchnorms and len(batchnorms) == 23
