"""Each registered model's facts (``model_info``): released weights, preprocessing, pool padding and published
figures live beside its builder, and pretrained loading, the evaluation defaults and the model table read them."""

import inspect

import numpy as np
import pytest

from mindcv_shufflenet import create_model, list_models
from mindcv_shufflenet.constants import IMAGENET_MEAN, IMAGENET_STD
from mindcv_shufflenet.data.transforms import eval_transforms
from mindcv_shufflenet.models import (
    Accuracy,
    ModelInfo,
    Preprocessing,
    PublishedFigures,
    ReleasedWeights,
    ShuffleNetV2,
    model_info,
    register_model,
    registry,
)
from tests.helpers import load_script

RELEASED = ["shufflenet_v1_g3_05", "shufflenet_v1_g3_10", "shufflenet_v2_x0_5", "shufflenet_v2_x1_0",
            "shufflenet_v2_x1_5", "shufflenet_v2_x2_0"]


def test_models_with_released_weights_are_listed_with_pretrained_true():
    assert list_models(pretrained=True) == RELEASED
    assert list_models("shufflenet_v2_x1*", pretrained=True) == ["shufflenet_v2_x1_0", "shufflenet_v2_x1_5"]
    weights = model_info("shufflenet_v2_x1_0").weights
    assert weights.url == ("https://download.mindspore.cn/toolkits/mindcv/shufflenet/shufflenetv2/"
                           "shufflenet_v2_x1_0-0da4b7fa.ckpt")
    assert (weights.file_name, weights.sha256_prefix) == ("shufflenet_v2_x1_0-0da4b7fa.ckpt", "0da4b7fa")
    assert weights.relative_path == "shufflenetv2/shufflenet_v2_x1_0-0da4b7fa.ckpt"


@pytest.mark.parametrize("name", list_models())
def test_every_builder_says_what_it_builds_in_one_line(name):
    doc = inspect.getdoc(registry._MODELS[name])
    assert doc and "\n" not in doc and doc.startswith("ShuffleNet V")


def test_the_released_models_take_mindcvs_preprocessing_and_same_padding():
    for name in list_models("shufflenet_v[12]_[gx]*"):  # MindCV's models (the others: tests/test_family_models.py)
        info = model_info(name)
        assert info.preprocessing == Preprocessing(224, 0.875, "bilinear", "RGB", IMAGENET_MEAN, IMAGENET_STD)
        assert info.pool_padding == "same"
        assert create_model(name).options["pool_padding"] == "same"
    assert model_info("shufflenet_v1_g3_x1_0") is model_info("shufflenet_v1_g3_10")  # MindCV's legacy name


def test_published_figures_name_their_source():
    published = model_info("shufflenet_v2_x1_0").published
    assert (published.mflops.value, published.mindcv.top1, published.mindcv.top5) == (146, 69.47, 88.88)
    assert (published.official.top1_error, published.official.top5_error) == (30.6, 11.1)
    assert (published.official.top1_accuracy, published.official.top5_accuracy) == (69.4, 88.9)
    assert "Table 5" in published.mflops.source and "MindCV" in published.mindcv.source
    assert "ShuffleNetV2 model table" in published.official.source
    assert model_info("shufflenet_v1_g1_05").published.paper.top1_accuracy == 54.9  # the paper's Table 2 only
    assert model_info("shufflenet_v1_g1_15").published == PublishedFigures()


def test_a_published_accuracy_is_stated_one_way():
    assert Accuracy("a card", top1=70.0, top5=90.0).top5_accuracy == 90.0
    assert Accuracy("a paper", top1_error=30.0).top5_accuracy is None
    with pytest.raises(ValueError, match="either as top1 or as top1_error"):
        Accuracy("a paper", top1=70.0, top1_error=30.0)
    with pytest.raises(ValueError, match="either as top1 or as top1_error"):
        Accuracy("a paper", top5=90.0)
    with pytest.raises(ValueError, match="in the top-1's form"):
        Accuracy("a paper", top1_error=30.0, top5=90.0)
    with pytest.raises(ValueError, match="within 0-100"):
        Accuracy("a card", top1=700.0)


def test_facts_that_cannot_be_right_are_refused():
    with pytest.raises(ValueError, match="does not carry its hash"):
        ReleasedWeights("https://example.org/v2/net-12345678.ckpt", "87654321")
    with pytest.raises(ValueError, match="channel_order"):
        Preprocessing(channel_order="GBR")
    with pytest.raises(ValueError, match="mean and std need 3 values"):
        Preprocessing(mean=(0.0,))
    with pytest.raises(ValueError, match="pool_padding"):
        ModelInfo(pool_padding="valid")


@pytest.fixture
def scratch_registry(monkeypatch):
    """Models registered in a test are gone after it."""
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))
    monkeypatch.setattr(registry, "_INFO", dict(registry._INFO))


def test_a_new_model_is_one_builder_and_one_entry(scratch_registry, tmp_path, monkeypatch):
    """The shape of Megvii's V2+ entry (BGR 0-255 input, symmetric pools), on a tiny network."""
    bgr = Preprocessing(input_size=32, crop_pct=1.0, channel_order="BGR", mean=(0, 0, 0), std=(1, 1, 1))

    @register_model(ModelInfo(weights=ReleasedWeights("https://example.org/tiny/tiny_net-0123abcd.ckpt", "0123abcd"),
                              preprocessing=bgr, pool_padding="symmetric",
                              published=PublishedFigures(official=Accuracy("a test", top1=50.0))))
    def tiny_net(pretrained=False, num_classes=1000, in_channels=3, **kwargs):
        """ShuffleNet V2 at test size."""
        kwargs.setdefault("pool_padding", model_info("tiny_net").pool_padding)
        return ShuffleNetV2((8, 16, 32, 64, 128), num_classes=num_classes, in_channels=in_channels, **kwargs)

    assert "tiny_net" in list_models(pretrained=True)
    assert create_model("tiny_net", num_classes=3).options["pool_padding"] == "symmetric"
    monkeypatch.setenv("MINDCV_SHUFFLENET_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"download https://example.org/tiny/tiny_net-0123abcd.ckpt there"):
        from mindcv_shufflenet.models.weights import load_pretrained

        load_pretrained(create_model("tiny_net"), "tiny_net")

    pre = model_info("tiny_net").preprocessing
    image = np.zeros((32, 32, 3), np.uint8)
    image[...] = (10, 20, 30)  # R, G, B
    for op in eval_transforms(pre.input_size, pre.crop_pct, pre.interpolation, pre.mean, pre.std,
                              pre.channel_order)[1:]:  # from decoded pixels on
        image = op(image)
    assert image.shape == (3, 32, 32) and [float(image[c, 0, 0]) for c in range(3)] == [30.0, 20.0, 10.0]
    assert pre.describe() == "BGR, mean [0, 0, 0], std [1, 1, 1]"


def test_validate_takes_the_models_preprocessing_where_no_option_is_given(monkeypatch):
    from mindcv_shufflenet import cli

    validate = load_script("validate.py")

    other = ModelInfo(preprocessing=Preprocessing(input_size=192, crop_pct=1.0, interpolation="bicubic"))
    monkeypatch.setattr(cli, "model_info", lambda name: other)
    argv = ["--model", "shufflenet_v2_x0_5", "--pretrained"]  # no checkpoint record: the model's settings
    cfg, _, _ = validate.parse_config(argv)
    assert (cfg.image_resize, cfg.crop_pct, cfg.interpolation) == (192, 1.0, "bicubic")
    cfg, _, _ = validate.parse_config(argv + ["--crop_pct", "0.9", "--image_resize", "160"])
    assert (cfg.image_resize, cfg.crop_pct, cfg.interpolation) == (160, 0.9, "bicubic")
