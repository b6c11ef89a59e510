"""The train-step Cell: loss scaling, skipped non-finite updates, accumulation, clipping and EMA,
checked against hand computations on a small network (no BatchNorm, so batches can be split exactly)."""

import math

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

from mindcv_shufflenet.engine.loss import create_loss
from mindcv_shufflenet.engine.train_step import EMA_WARMUP, SCALE_FACTOR, TrainStep


class TinyNet(nn.Cell):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Dense(6, 5)
        self.relu = nn.ReLU()
        self.fc2 = nn.Dense(5, 3)

    def construct(self, x):
        return self.fc2(self.relu(self.fc1(x)))


def make_step(lr=0.1, momentum=0.0, **kwargs):
    ms.set_seed(0)
    net = TinyNet()
    opt = nn.Momentum(net.trainable_params(), learning_rate=lr, momentum=momentum)
    step = TrainStep(net, create_loss("CE"), opt, **kwargs)
    step.set_train(True)
    return net, step


def weights(net):
    return {p.name: p.asnumpy().copy() for p in net.trainable_params()}


def batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return (ms.Tensor(rng.normal(size=(n, 6)).astype(np.float32)),
            ms.Tensor(rng.integers(0, 3, n).astype(np.int32)))


def test_fixed_loss_scale_gives_the_unscaled_update():
    plain_net, plain = make_step()
    scaled_net, scaled = make_step(loss_scale=1024.0)
    x, y = batch()
    plain(x, y)
    loss, finite, scale = scaled(x, y)
    assert bool(finite.asnumpy()) and float(scale.asnumpy()) == 1024.0
    for name, value in weights(plain_net).items():
        np.testing.assert_allclose(weights(scaled_net)[name], value, rtol=1e-5, atol=1e-7)


def test_non_finite_step_changes_no_weight_and_halves_a_dynamic_scale():
    net, step = make_step(loss_scale=1024.0, dynamic_loss_scale=True)
    before = weights(net)
    x, y = batch()
    bad = ms.Tensor(np.full((8, 6), np.inf, np.float32))
    loss, finite, scale = step(bad, y)
    assert not bool(finite.asnumpy())
    assert float(step.scale_sense.asnumpy()) == 1024.0 / SCALE_FACTOR
    for name, value in weights(net).items():
        np.testing.assert_array_equal(value, before[name])
    _, finite, _ = step(x, y)  # a clean step afterwards is applied
    assert bool(finite.asnumpy())
    assert any(np.any(weights(net)[n] != before[n]) for n in before)


def test_a_skipped_step_still_advances_the_schedule_and_is_counted():
    # The LR schedule follows the steps run: after a skipped step and a clean one, the clean one used lr[1].
    lr = [0.0, 0.5, 0.25]
    skipping_net, skipping = make_step(lr=lr, loss_scale=1024.0, dynamic_loss_scale=True)
    reference_net, reference = make_step(lr=[0.5, 0.5, 0.5])
    x, y = batch()
    skipping(ms.Tensor(np.full((8, 6), np.inf, np.float32)), y)
    assert int(skipping.optimizer.global_step.asnumpy()[0]) == 1
    assert int(skipping.skipped_updates.asnumpy()) == 1
    skipping(x, y)
    reference(x, y)
    assert int(skipping.optimizer.global_step.asnumpy()[0]) == 2
    assert int(skipping.skipped_updates.asnumpy()) == 1
    for name, value in weights(reference_net).items():
        np.testing.assert_allclose(weights(skipping_net)[name], value, rtol=1e-5, atol=1e-7)


def test_step_statistics_sum_losses_and_count_bad_steps_until_read():
    from mindcv_shufflenet.engine.train_step import StepStatsReader

    _, step = make_step(loss_scale=4.0, dynamic_loss_scale=True)
    reader = StepStatsReader(step)
    x, y = batch()
    bad = ms.Tensor(np.full((8, 6), np.nan, np.float32))
    losses = [float(step(x_, y)[0].asnumpy()) for x_ in (x, bad, bad, x, bad)]
    finite_losses = [v for v in losses if math.isfinite(v)]
    stats = reader.read()
    assert stats.loss_count == len(finite_losses)
    assert stats.mean_loss == pytest.approx(np.mean(finite_losses), rel=1e-6)
    assert (stats.bad_steps, stats.peak_streak, stats.bad_streak) == (3, 2, 1)
    step(bad, y)  # the run of bad steps goes on across reads
    stats = reader.read()
    assert (stats.bad_steps, stats.bad_streak, stats.peak_streak) == (1, 2, 2)
    step(x, y)
    stats = reader.read()
    assert (stats.bad_steps, stats.bad_streak, stats.peak_streak, stats.loss_count) == (0, 0, 0, 1)


def test_non_finite_step_is_skipped_with_a_fixed_scale_too():
    net, step = make_step(loss_scale=8.0)
    before = weights(net)
    _, y = batch()
    step(ms.Tensor(np.full((8, 6), np.nan, np.float32)), y)
    assert float(step.scale_sense.asnumpy()) == 8.0
    for name, value in weights(net).items():
        np.testing.assert_array_equal(value, before[name])


def test_accumulation_applies_the_mean_gradient_of_its_batches_once():
    whole_net, whole = make_step()
    acc_net, accumulated = make_step(accumulation_steps=2)
    x, y = batch(8)
    whole(x, y)
    accumulated(x[:4], y[:4])
    assert int(accumulated.optimizer.global_step.asnumpy()[0]) == 0  # nothing applied after the first half
    accumulated(x[4:], y[4:])
    assert int(accumulated.optimizer.global_step.asnumpy()[0]) == 1
    for name, value in weights(whole_net).items():
        np.testing.assert_allclose(weights(acc_net)[name], value, rtol=1e-5, atol=1e-6)
    assert all(np.all(a.asnumpy() == 0) for a in accumulated.grad_accum)  # ready for the next update


@pytest.mark.parametrize("mode", ["pynative", "graph"])
def test_an_overflowing_micro_step_skips_its_window_once_and_spares_the_next(mode, request):
    if mode == "graph":
        request.getfixturevalue("graph_mode")
    # Micro-step 2 of window 1 overflows: the scale halves once, window 1 is not applied, and window 2's
    # accumulators start clean, so it is applied as the mean of its own two batches.
    net, step = make_step(loss_scale=1024.0, dynamic_loss_scale=True, accumulation_steps=2)
    reference_net, reference = make_step(accumulation_steps=2)
    x, y = batch(8)
    bad = ms.Tensor(np.full((4, 6), np.inf, np.float32))
    flags = [bool(step(x[:4], y[:4])[1].asnumpy()), bool(step(bad, y[:4])[1].asnumpy())]
    assert flags == [True, False]
    assert float(step.scale_sense.asnumpy()) == 512.0
    assert int(step.skipped_updates.asnumpy()) == 1 and int(step.optimizer.global_step.asnumpy()[0]) == 1
    flags = [bool(step(x[:4], y[:4])[1].asnumpy()), bool(step(x[4:], y[4:])[1].asnumpy())]
    assert flags == [True, True]
    assert float(step.scale_sense.asnumpy()) == 512.0  # halved once, not once per later micro-step
    reference(x[:4], y[:4])
    reference(x[4:], y[4:])
    for name, value in weights(reference_net).items():
        np.testing.assert_allclose(weights(net)[name], value, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["pynative", "graph"])
def test_two_overflowing_micro_steps_of_one_window_halve_the_scale_once(mode, request):
    if mode == "graph":
        request.getfixturevalue("graph_mode")
    _, step = make_step(loss_scale=1024.0, dynamic_loss_scale=True, accumulation_steps=3)
    x, y = batch(4)
    bad = ms.Tensor(np.full((4, 6), np.inf, np.float32))
    flags = [bool(step(inp, y)[1].asnumpy()) for inp in (bad, x, bad)]
    assert flags == [False, True, False]
    assert float(step.scale_sense.asnumpy()) == 1024.0 / SCALE_FACTOR  # once for the window, not per micro-step
    assert int(step.skipped_updates.asnumpy()) == 1


def test_the_scale_grows_after_a_window_of_clean_updates_not_micro_steps():
    _, step = make_step(loss_scale=8.0, dynamic_loss_scale=True, accumulation_steps=2, scale_window=3)
    x, y = batch(4)
    for micro_step in range(1, 6):  # five micro-steps: two updates and a half
        step(x, y)
        assert int(step.loss_scale_counter.asnumpy()) == micro_step // 2
    assert float(step.scale_sense.asnumpy()) == 8.0
    step(x, y)  # the third update: the scale doubles and the count starts again
    assert float(step.scale_sense.asnumpy()) == 8.0 * SCALE_FACTOR
    assert int(step.loss_scale_counter.asnumpy()) == 0


def test_clipping_bounds_the_update_by_the_global_norm():
    lr, clip = 1.0, 1e-3
    net, step = make_step(lr=lr, clip_grad_norm=clip)
    before = weights(net)
    step(*batch())
    update = np.sqrt(sum(np.sum((weights(net)[n] - before[n]) ** 2) for n in before))
    assert update == pytest.approx(lr * clip, rel=1e-4)


def test_ema_follows_mindcvs_warmed_up_decay():
    decay = 0.9
    net, step = make_step(ema_decay=decay)
    ema = {n: v.copy() for n, v in weights(net).items()}
    for updates in (1, 2, 3):
        step(*batch(seed=updates))
        d = decay * (1 - math.exp(-updates / EMA_WARMUP))
        ema = {n: d * ema[n] + (1 - d) * w for n, w in weights(net).items()}
    got = {p.name[len("ema."):]: p.asnumpy() for p in step.ema_params}
    for name, value in ema.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-7)


class TinyNetWithAuxHeads(nn.Cell):
    """TinyNet that, in training, also returns two auxiliary logits (as ShuffleNetV2.Large does three)."""

    def __init__(self):
        super().__init__()
        self.body = TinyNet()
        self.aux_heads = nn.CellList([nn.Dense(6, 3), nn.Dense(6, 3)])

    def construct(self, x):
        logits = self.body(x)
        if self.training:
            return logits, self.aux_heads[0](x), self.aux_heads[1](x)
        return logits


@pytest.mark.parametrize("mode", ["graph", "pynative"])
def test_auxiliary_logits_in_training_are_weighed_into_the_loss(mode):
    from mindcv_shufflenet import runtime

    ms.set_seed(0)
    net = TinyNetWithAuxHeads()
    x, y = batch()
    ce = create_loss("CE")
    net.set_train(True)
    main, aux1, aux2 = net(x)
    expected = float(ce(main, y).asnumpy()) + 0.7 * float(ce(aux1, y).asnumpy()) + 0.5 * float(ce(aux2, y).asnumpy())
    opt = nn.Momentum(net.trainable_params(), learning_rate=0.1, momentum=0.0)
    step = TrainStep(net, create_loss("CE", aux_weights=(0.7, 0.5)), opt)
    step.set_train(True)
    before = weights(net)
    runtime.set_mode(mode)
    try:
        loss, finite, _ = step(x, y)
    finally:
        runtime.set_mode("pynative")
    assert bool(finite.asnumpy()) and float(loss.asnumpy()) == pytest.approx(expected, rel=1e-5)
    after = weights(net)
    assert all(not np.array_equal(before[name], after[name]) for name in before if "aux_heads" in name)
    net.set_train(False)
    assert net(x).shape == (8, 3)  # evaluation sees the main logits only
