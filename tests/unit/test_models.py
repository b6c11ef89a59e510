import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

from mindcv_shufflenet import create_model, list_models
from mindcv_shufflenet.models import ShuffleNetV1, ShuffleNetV2

MINDCV_NAMES = [
    "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0",
    "shufflenet_v1_g3_05", "shufflenet_v1_g3_10", "shufflenet_v1_g3_15", "shufflenet_v1_g3_20",
    "shufflenet_v1_g8_05", "shufflenet_v1_g8_10", "shufflenet_v1_g8_15", "shufflenet_v1_g8_20",
]


# The official family beyond MindCV's (issue 11).
FAMILY_NAMES = ["shufflenet_v2_50", "shufflenet_v2_exlarge", "shufflenet_v2_large", "shufflenet_v2_plus_large",
                "shufflenet_v2_plus_medium", "shufflenet_v2_plus_small"]
# Never built at full size in the tests (140 and 271 M parameters): tests/test_family_models.py uses reduced widths.
HEAVY = {"shufflenet_v2_large", "shufflenet_v2_exlarge"}


def test_registry_lists_mindcv_names_and_the_papers_v1_groups():
    names = list_models()
    assert set(MINDCV_NAMES) <= set(names)
    for g in (1, 2, 4):
        for w in ("05", "10", "15", "20"):
            assert f"shufflenet_v1_g{g}_{w}" in names
    assert len(names) == 24 + len(FAMILY_NAMES)
    assert list_models("shufflenet_v2_x*") == MINDCV_NAMES[:4]
    assert list_models("shufflenet_v2_[5elp]*") == FAMILY_NAMES


@pytest.mark.parametrize("name", sorted(set(list_models()) - HEAVY))
def test_every_model_classifies_a_small_image(name):
    net = create_model(name, num_classes=7)
    net.set_train(False)
    out = net(ms.Tensor(np.random.rand(2, 3, 32, 32).astype(np.float32)))
    assert out.shape == (2, 7)
    assert np.isfinite(out.asnumpy()).all()


def test_legacy_mindcv_v1_name_builds_the_same_model():
    net = create_model("shufflenet_v1_g3_x0_5")
    assert isinstance(net, ShuffleNetV1) and net.channels == (12, 120, 240, 480) and net.groups == 3


def test_unknown_model_name_is_rejected_with_suggestions():
    with pytest.raises(ValueError, match="unknown model 'shufflenet_v2_x1'.*shufflenet_v2_x1_0"):
        create_model("shufflenet_v2_x1")


def test_unknown_keyword_argument_is_rejected_not_ignored():
    with pytest.raises(ValueError, match="shufflenet_v2_x0_5.*drop_rat"):
        create_model("shufflenet_v2_x0_5", drop_rat=0.2)


def test_in_channels_and_num_classes_shape_the_stem_and_classifier():
    net = create_model("shufflenet_v2_x0_5", in_channels=1, num_classes=10)
    params = dict(net.parameters_and_names())
    assert tuple(params["first_conv.0.weight"].shape) == (24, 1, 3, 3)
    assert tuple(params["classifier.weight"].shape) == (10, 1024)


def test_reduced_widths_are_one_argument_away():
    v2 = ShuffleNetV2(channels=(8, 16, 32, 64, 128), num_classes=5)
    v1 = ShuffleNetV1(channels=(12, 24, 48, 96), groups=3, num_classes=5)
    x = ms.Tensor(np.random.rand(1, 3, 64, 64).astype(np.float32))
    for net in (v2, v1):
        net.set_train(False)
        assert net(x).shape == (1, 5)
    assert dict(v2.parameters_and_names())["conv_last.0.weight"].shape == (128, 64, 1, 1)


@pytest.mark.parametrize("make, message", [
    (lambda: ShuffleNetV2(channels=(24, 116, 232, 1024)), "stem, 3 stages and conv5"),
    (lambda: ShuffleNetV2(channels=(24, 117, 232, 464, 1024)), "even"),
    (lambda: ShuffleNetV1(channels=(24, 250, 500, 1000), groups=3), "multiple of 4\\*groups=12"),
    (lambda: ShuffleNetV2(pool_padding="valid"), "pool_padding: unknown value 'valid'"),
])
def test_invalid_architecture_arguments_raise_clear_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_initialisation_follows_mindcv():
    ms.set_seed(0)
    net = create_model("shufflenet_v2_x1_0")
    params = dict(net.parameters_and_names())
    assert params["first_conv.0.weight"].asnumpy().std() == pytest.approx(0.01, rel=0.15)
    w = params["features.1.branch_main.0.weight"].asnumpy()  # 58 input channels
    assert w.std() == pytest.approx(1 / 58, rel=0.1)
    assert params["classifier.weight"].asnumpy().std() == pytest.approx(0.01, rel=0.05)
    assert (params["conv_last.1.gamma"].asnumpy() == 1).all()
    bn = [c for _, c in net.cells_and_names() if isinstance(c, nn.BatchNorm2d)]
    # nn.BatchNorm2d(momentum=0.9) keeps 90% of the old statistic; it stores the update weight 1 - 0.9.
    assert all(c.momentum == pytest.approx(0.1) and c.eps == pytest.approx(1e-5) for c in bn)


def test_an_option_the_model_does_not_take_is_named_with_the_closest_one():
    with pytest.raises(ValueError, match=r"shufflenet_v2_x0_5: unknown model option 'pool_pading' \(did you mean "
                                         r"'pool_padding'\?\); valid: channels, classifier_bias"):
        create_model("shufflenet_v2_x0_5", pool_pading="symmetric")
    with pytest.raises(ValueError, match="unknown model option 'proj_channels'"):
        create_model("shufflenet_v1_g3_05", proj_channels="half")  # a V2 option


def test_a_type_error_inside_a_builder_is_not_mistaken_for_a_bad_option(monkeypatch):
    from mindcv_shufflenet.models import register_model, registry

    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))
    monkeypatch.setattr(registry, "_INFO", dict(registry._INFO))

    @register_model
    def broken_net(pretrained=False, num_classes=1000, in_channels=3, **kwargs) -> ShuffleNetV2:
        """ShuffleNet V2 whose builder has a bug."""
        return ShuffleNetV2(channels=(8, 16, 32, 64, 128), unexpected_keyword=1)

    with pytest.raises(TypeError, match="unexpected_keyword"):
        create_model("broken_net")
