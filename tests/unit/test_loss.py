"""The losses (``engine.loss.create_loss``) against NumPy and MindCV's ``ops.cross_entropy``: label smoothing
over all classes, index and soft labels, float16 logits, reductions, graph mode."""

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, ops

from mindcv_shufflenet.engine.loss import AuxiliaryLoss, auxiliary_weights, create_loss


def numpy_ce(logits, labels, eps):
    logits = logits.astype(np.float64)
    c = logits.shape[1]
    target = np.eye(c)[labels] if labels.ndim == 1 else labels.astype(np.float64)
    target = target * (1 - eps) + eps / c
    shifted = logits - logits.max(1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    return -(target * log_probs).sum(1)


def numpy_bce(logits, labels, eps):
    x = logits.astype(np.float64)
    c = x.shape[1]
    y = np.eye(c)[labels] if labels.ndim == 1 else labels.astype(np.float64)
    y = y * (1 - eps) + eps / c
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0) - x * y


def loss_inputs(seed=0, batch=6, classes=5):
    rng = np.random.default_rng(seed)
    logits = (rng.normal(0, 3, (batch, classes))).astype(np.float32)
    labels = rng.integers(0, classes, batch).astype(np.int32)
    soft = rng.dirichlet(np.ones(classes), batch).astype(np.float32)
    return logits, labels, soft


@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("soft", [False, True])
def test_cross_entropy_equals_numpy_and_mindcvs_ops_cross_entropy(eps, soft):
    logits, labels, soft_labels = loss_inputs()
    target = soft_labels if soft else labels
    got = float(create_loss("CE", label_smoothing=eps)(Tensor(logits), Tensor(target)).asnumpy())
    assert got == pytest.approx(numpy_ce(logits, target, eps).mean(), rel=1e-5)
    mindcv = ops.cross_entropy(Tensor(logits), Tensor(target), label_smoothing=eps)
    assert got == pytest.approx(float(mindcv.asnumpy()), rel=1e-5)


def test_label_smoothing_spreads_eps_over_all_classes_including_the_true_one():
    loss = create_loss("CE", label_smoothing=0.2)
    logits = np.array([[5.0, 1.0, 0.0, -1.0]], np.float32)
    got = float(loss(Tensor(logits), Tensor(np.array([0], np.int32))).asnumpy())
    log_p = logits[0] - np.log(np.exp(logits[0]).sum())
    over_all = np.array([0.8 + 0.05, 0.05, 0.05, 0.05])  # eps / C everywhere
    over_others = np.array([0.8, 0.2 / 3, 0.2 / 3, 0.2 / 3])  # eps / (C - 1) on the wrong classes
    assert got == pytest.approx(-(over_all * log_p).sum(), rel=1e-5)
    assert got != pytest.approx(-(over_others * log_p).sum(), rel=1e-3)


def test_cross_entropy_of_float16_logits_is_float32():
    logits, labels, _ = loss_inputs(seed=3)
    half = logits.astype(np.float16)
    out = create_loss("CE", label_smoothing=0.1)(Tensor(half), Tensor(labels))
    assert out.dtype == ms.float32
    assert float(out.asnumpy()) == pytest.approx(numpy_ce(half.astype(np.float32), labels, 0.1).mean(), rel=1e-5)


def test_losses_in_graph_mode_equal_numpy(graph_mode):
    logits, labels, soft = loss_inputs(seed=5)
    ce = create_loss("CE", label_smoothing=0.1)
    bce = create_loss("BCE", label_smoothing=0.1)
    assert float(ce(Tensor(logits), Tensor(labels)).asnumpy()) == pytest.approx(
        numpy_ce(logits, labels, 0.1).mean(), rel=1e-5)
    assert float(ce(Tensor(logits), Tensor(soft)).asnumpy()) == pytest.approx(
        numpy_ce(logits, soft, 0.1).mean(), rel=1e-5)
    assert float(bce(Tensor(logits.astype(np.float16)), Tensor(labels)).asnumpy()) == pytest.approx(
        numpy_bce(logits.astype(np.float16).astype(np.float32), labels, 0.1).mean(), rel=1e-4)


@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("soft", [False, True])
def test_binary_cross_entropy_equals_numpy_averaged_over_batch_and_classes(eps, soft):
    logits, labels, soft_labels = loss_inputs(seed=2)
    target = soft_labels if soft else labels
    got = float(create_loss("bce", label_smoothing=eps)(Tensor(logits), Tensor(target)).asnumpy())
    assert got == pytest.approx(numpy_bce(logits, target, eps).mean(), rel=1e-5)


def test_loss_reductions_sum_and_none():
    logits, labels, _ = loss_inputs(seed=4)
    per_sample = numpy_ce(logits, labels, 0.1)
    none = create_loss("CE", 0.1, reduction="none")(Tensor(logits), Tensor(labels)).asnumpy()
    total = create_loss("CE", 0.1, reduction="sum")(Tensor(logits), Tensor(labels)).asnumpy()
    np.testing.assert_allclose(none, per_sample, rtol=1e-5)
    assert float(total) == pytest.approx(per_sample.sum(), rel=1e-5)


@pytest.mark.parametrize("kw, match", [
    (dict(name="CEE"), "'CE'"),
    (dict(label_smoothing=1.0), "label_smoothing"),
    (dict(label_smoothing=-0.1), "label_smoothing"),
    (dict(reduction="avg"), "reduction"),
])
def test_bad_loss_arguments_raise(kw, match):
    with pytest.raises(ValueError, match=match):
        create_loss(**kw)


@pytest.mark.parametrize("graph", [False, True])
def test_auxiliary_losses_are_weighed_and_added_to_the_main_one(graph):
    logits, labels, _ = loss_inputs(seed=3)
    aux = [loss_inputs(seed=4 + i)[0] for i in range(3)]
    loss = create_loss("CE", label_smoothing=0.1, aux_weights=(0.7, 0.5, 0.3))
    assert isinstance(loss, AuxiliaryLoss)
    expected = numpy_ce(logits, labels, 0.1).mean() + sum(
        w * numpy_ce(a, labels, 0.1).mean() for w, a in zip((0.7, 0.5, 0.3), aux))
    run = ms.jit(loss.construct) if graph else loss
    total = run(tuple(Tensor(v) for v in [logits] + aux), Tensor(labels))
    assert float(total.asnumpy()) == pytest.approx(expected, rel=1e-5)
    # one logits tensor (evaluation) is the plain loss
    assert float(loss(Tensor(logits), Tensor(labels)).asnumpy()) == pytest.approx(
        numpy_ce(logits, labels, 0.1).mean(), rel=1e-5)


def test_aux_factor_gives_one_weight_per_head():
    assert auxiliary_weights((0.4,), 3) == (0.4, 0.4, 0.4)  # MindCV's meaning: the same factor for every head
    assert auxiliary_weights((0.7, 0.5, 0.3), 3) == (0.7, 0.5, 0.3)  # ShuffleNetV2.Large's recipe
    assert auxiliary_weights((0.0,), 3) == (0.0, 0.0, 0.0) and auxiliary_weights((0.0,), 0) == ()
    with pytest.raises(ValueError, match="aux_factor: shufflenet_v2_x1_0 has no auxiliary heads; set it to 0"):
        auxiliary_weights((0.5,), 0, "shufflenet_v2_x1_0")
    with pytest.raises(ValueError, match="aux_factor gives 2 weights, but net has 3 auxiliary heads"):
        auxiliary_weights((0.7, 0.5), 3, "net")
    with pytest.raises(ValueError, match="aux_factor must be numbers >= 0"):
        auxiliary_weights((-0.1,), 3)
