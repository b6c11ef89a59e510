import pytest

from mindcv_shufflenet import create_model, list_models
from mindcv_shufflenet.models import count_macs, count_params, model_counts, model_info
from mindcv_shufflenet.models.metadata import MINDCV_PARAMS as MINDCV_PARAMS_SOURCE
from tests.helpers import read_param_list

REFERENCE_LISTS = [
    ("shufflenet_v2_x0_5", "shufflenet_v2_x0_5.txt"),
    ("shufflenet_v2_x1_0", "shufflenet_v2_x1_0.txt"),
    ("shufflenet_v1_g3_05", "shufflenet_v1_g3_05.mindcv-0.3.0.txt"),
    ("shufflenet_v1_g3_10", "shufflenet_v1_g3_10.mindcv-0.3.0.txt"),
]

# Published multiply-adds at 224x224 (millions) and parameter counts, as each model's metadata records them.
PUBLISHED_MFLOPS = {name: model_info(name).published.mflops.value for name in list_models()
                    if model_info(name).published.mflops is not None}
PUBLISHED_PARAMS_M = {name: model_info(name).published.params_m.value for name in list_models()
                      if model_info(name).published.params_m is not None}

# (trainable, trainable + BatchNorm statistics). V2: MindCV's counts (its "Params(M)" column is the
# second). V1 g3: the sums of MindCV's parameter lists (tests/data).
MINDCV_PARAMS = {
    "shufflenet_v2_x0_5": (1_365_792, 1_373_744),
    "shufflenet_v2_x1_0": (2_278_760, 2_294_940),
}


@pytest.mark.parametrize("model, listing", REFERENCE_LISTS)
def test_parameter_names_shapes_and_order_equal_mindcv(model, listing):
    net = create_model(model)
    ours = [(name, tuple(p.shape), "trainable" if p.requires_grad else "buffer")
            for name, p in net.parameters_and_names()]
    assert ours == read_param_list(listing)


@pytest.mark.parametrize("model, listing", REFERENCE_LISTS[2:])
def test_v1_parameter_counts_equal_the_mindcv_lists(model, listing):
    rows = read_param_list(listing)
    size = lambda shape: int(__import__("numpy").prod(shape))  # noqa: E731
    expected_trainable = sum(size(s) for _, s, kind in rows if kind == "trainable")
    expected_total = sum(size(s) for _, s, _ in rows)
    counts = count_params(create_model(model))
    assert (counts.trainable, counts.total) == (expected_trainable, expected_total)


@pytest.mark.parametrize("model", sorted(MINDCV_PARAMS))
def test_v2_parameter_counts_equal_mindcv(model):
    counts = count_params(create_model(model))
    assert (counts.trainable, counts.total) == MINDCV_PARAMS[model]


# Published parameter counts that leave the auxiliary heads out (the official ExLarge README's 254.7 M).
PUBLISHED_WITHOUT_AUX_HEADS = {"shufflenet_v2_exlarge"}


def test_every_published_figure_of_the_papers_is_recorded():
    assert len(PUBLISHED_MFLOPS) == 15 + 6 and len(PUBLISHED_PARAMS_M) == 4 + 5


@pytest.mark.parametrize("model", [name for name in sorted(PUBLISHED_PARAMS_M)
                                   if model_info(name).published.params_m.source == MINDCV_PARAMS_SOURCE])
def test_v2_parameter_counts_round_to_mindcvs_published_table(model):
    # MindCV's "Params(M)" counts the BatchNorm statistics, to 10k.
    assert round(count_params(create_model(model)).total / 1e6, 2) == PUBLISHED_PARAMS_M[model]


@pytest.mark.parametrize("model", sorted(PUBLISHED_PARAMS_M))
def test_parameter_counts_match_the_published_within_2_percent(model):
    counts = model_counts(model)  # analytic for the families that provide a counter
    published = model_info(model).published.params_m
    params = counts.inference_params if model in PUBLISHED_WITHOUT_AUX_HEADS else counts.params
    counted = params.total if published.source == MINDCV_PARAMS_SOURCE else params.trainable
    assert counted / 1e6 == pytest.approx(published.value, rel=0.02)


def test_classifier_has_no_bias_and_batchnorm_statistics_are_buffers():
    counts = count_params(create_model("shufflenet_v2_x0_5", num_classes=10))
    assert counts.trainable == 1_365_792 - 990 * 1024


@pytest.mark.parametrize("model", sorted(PUBLISHED_MFLOPS))
def test_multiply_adds_match_the_papers_within_2_percent(model):
    macs = model_counts(model).macs / 1e6
    assert macs == pytest.approx(PUBLISHED_MFLOPS[model], rel=0.02)


@pytest.mark.parametrize("model", ["shufflenet_v2_x1_0", "shufflenet_v2_x2_0", "shufflenet_v2_plus_small",
                                   "shufflenet_v2_plus_large"])
def test_analytic_counts_equal_the_built_networks_counts(model):
    counts, net = model_counts(model), create_model(model)
    assert counts.params == count_params(net) and counts.macs == count_macs(net)


def test_multiply_adds_follow_the_input_size():
    net = create_model("shufflenet_v2_x1_0", num_classes=10)
    at_448, at_224 = count_macs(net, 448), count_macs(net, 224)
    classifier = 1024 * 10  # the only layer whose cost does not grow with the image
    assert at_448 - classifier == 4 * (at_224 - classifier)
