"""Learning-rate schedules, weight-decay filters and optimizer updates against MindCV's formulas (re-derived
here as plain loops and NumPy) and the official ShuffleNet training code."""

import math
from bisect import bisect_right

import mindspore as ms
import numpy as np
import pytest
from mindspore import Parameter, Tensor, mint, nn, ops

from mindcv_shufflenet import create_model
from mindcv_shufflenet.constants import SCHEDULERS, WEIGHT_DECAY_FILTERS
from mindcv_shufflenet.engine.loss import create_loss
from mindcv_shufflenet.engine.optim import create_optimizer, weight_decay_groups
from mindcv_shufflenet.engine.schedules import build_lr_schedule
from tests.helpers import read_param_list

# ---------------------------------------------------------------------------------------------------
# Schedules
# ---------------------------------------------------------------------------------------------------

def mindcv_reference(scheduler, lr, epochs, spe, min_lr=1e-6, warmup_epochs=0, warmup_factor=0.0,
                     decay_epochs=10, decay_rate=0.9, milestones=(30, 60, 90), stair=False, num_cycles=1,
                     cycle_decay=1.0):
    """MindCV's create_scheduler + dynamic_lr, step by step with Python floats."""
    def position(i):
        return math.floor(i / spe) if stair else i / spe

    lrs = []
    for i in range(warmup_epochs * spe):
        start = lr * warmup_factor
        lrs.append(start + min(position(i), warmup_epochs) / warmup_epochs * (lr - start))
    main_epochs = epochs - warmup_epochs
    main = []
    if scheduler in ("cosine_decay", "warmup_cosine_decay"):
        for c in range(num_cycles):
            delta = 0.5 * (lr * cycle_decay ** c - min_lr)
            for i in range(spe * decay_epochs):
                t = min(position(i), decay_epochs)
                if len(main) < main_epochs * spe:
                    main.append(min_lr + delta * (1.0 + math.cos(math.pi * t / decay_epochs)))
        main += [min_lr] * max(0, (main_epochs - num_cycles * decay_epochs) * spe)
    for i in range(main_epochs * spe):
        epoch = math.floor(i / spe)
        if scheduler == "exponential_decay":
            main.append(lr * decay_rate ** position(i))
        elif scheduler == "polynomial_decay":
            main.append(lr * (1 - min(position(i), main_epochs) / main_epochs) ** decay_rate)
        elif scheduler == "step_decay":
            main.append(lr * decay_rate ** math.floor(epoch / decay_epochs))
        elif scheduler == "multi_step_decay":
            main.append(lr * decay_rate ** bisect_right(sorted(milestones), epoch))
        elif scheduler == "constant":
            main.append(lr)
    return np.array(lrs + main)


MINDCV_CASES = [
    ("cosine_decay", dict(warmup_epochs=2, warmup_factor=0.01, decay_epochs=6, min_lr=1e-4)),
    ("cosine_decay", dict(warmup_epochs=0, decay_epochs=3, num_cycles=2, cycle_decay=0.5, min_lr=0.0)),
    ("cosine_decay", dict(warmup_epochs=1, decay_epochs=3, min_lr=1e-3)),  # flat min_lr tail
    ("warmup_cosine_decay", dict(warmup_epochs=3, decay_epochs=5)),
    ("step_decay", dict(warmup_epochs=1, decay_epochs=2, decay_rate=0.5)),
    ("multi_step_decay", dict(warmup_epochs=2, milestones=(1, 4), decay_rate=0.1)),
    ("exponential_decay", dict(warmup_epochs=1, decay_rate=0.8)),
    ("polynomial_decay", dict(warmup_epochs=2, decay_rate=2.0)),
    ("constant", dict(warmup_epochs=3, warmup_factor=0.1)),
]


def schedule(scheduler, lr, epochs, spe, **kw):
    """build_lr_schedule with the reference's keyword names."""
    if "milestones" in kw:
        kw["multi_step_decay_milestones"] = kw.pop("milestones")
    if "stair" in kw:
        kw["lr_epoch_stair"] = kw.pop("stair")
    return build_lr_schedule(scheduler, lr, epochs, spe, **kw)


@pytest.mark.parametrize("stair", [False, True])
@pytest.mark.parametrize("name, kw", MINDCV_CASES)
def test_schedules_equal_mindcv_create_scheduler_step_by_step(name, kw, stair):
    got = schedule(name, 0.4, 8, 5, stair=stair, **kw)
    want = mindcv_reference(name, 0.4, 8, 5, stair=stair, **kw)
    assert got.dtype == np.float32 and got.shape == (8 * 5,)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)


def test_warmup_starts_at_lr_times_factor_and_ends_one_step_short_of_lr():
    lr, factor, warmup, spe = 0.35, 0.01, 4, 10
    lrs = build_lr_schedule("cosine_decay", lr, 250, spe, warmup_epochs=warmup, warmup_factor=factor,
                            decay_epochs=246, min_lr=0.0)
    warmup_steps = warmup * spe
    assert lrs[0] == pytest.approx(lr * factor, rel=1e-6)
    assert lrs[1] == pytest.approx(lr * (factor + (1 - factor) / warmup_steps), rel=1e-6)
    last = lr * (factor + (1 - factor) * (warmup_steps - 1) / warmup_steps)
    assert lrs[warmup_steps - 1] == pytest.approx(last, rel=1e-6)
    assert np.all(np.diff(lrs[:warmup_steps]) > 0)
    assert lrs[warmup_steps] == pytest.approx(lr, rel=1e-7)  # the cosine starts at the peak


def test_cosine_of_the_shufflenet_recipe_ends_just_above_min_lr_on_the_last_step():
    lr, min_lr, spe, decay = 0.35, 1e-5, 7, 246
    lrs = build_lr_schedule("cosine_decay", lr, 250, spe, warmup_epochs=4, decay_epochs=decay, min_lr=min_lr)
    decay_steps = decay * spe
    last = min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * (decay_steps - 1) / decay_steps))
    assert lrs[-1] == pytest.approx(last, rel=1e-5)
    assert lrs[-1] > min_lr
    assert np.all(np.diff(lrs[4 * spe:]) <= 0)


def test_cosine_decay_epochs_default_to_the_epochs_after_warmup():
    explicit = build_lr_schedule("cosine_decay", 0.5, 20, 3, warmup_epochs=5, decay_epochs=15)
    default = build_lr_schedule("cosine_decay", 0.5, 20, 3, warmup_epochs=5)
    np.testing.assert_array_equal(default, explicit)


def test_cosine_cycles_restart_at_decayed_peaks_then_hold_min_lr():
    spe, decay, min_lr = 4, 3, 0.01
    lrs = build_lr_schedule("cosine_decay", 1.0, 10, spe, decay_epochs=decay, num_cycles=2, cycle_decay=0.5,
                            min_lr=min_lr)
    cycle = decay * spe
    assert lrs[0] == pytest.approx(1.0) and lrs[cycle] == pytest.approx(0.5)
    np.testing.assert_allclose(lrs[2 * cycle:], min_lr, rtol=1e-6)


def test_cosine_that_does_not_fit_warns_and_is_cut_off_like_mindcv():
    with pytest.warns(UserWarning, match="cut off"):
        lrs = build_lr_schedule("cosine_decay", 0.1, 10, 2, warmup_epochs=2, decay_epochs=10, min_lr=0.0)
    # the last of the 16 main steps is at 7.5 of the 10 cosine epochs
    assert lrs.shape == (20,) and lrs[-1] == pytest.approx(0.05 * (1 + math.cos(math.pi * 0.75)), rel=1e-6)


def test_multi_step_milestones_count_epochs_from_the_end_of_warmup():
    lr, spe, warmup, gamma = 0.1, 6, 2, 0.1
    lrs = build_lr_schedule("multi_step_decay", lr, 12, spe, warmup_epochs=warmup, decay_rate=gamma,
                            multi_step_decay_milestones=[3, 5])
    for k, milestone in enumerate([3, 5]):
        boundary = (warmup + milestone) * spe
        assert lrs[boundary - 1] == pytest.approx(lr * gamma ** k, rel=1e-6)
        assert lrs[boundary] == pytest.approx(lr * gamma ** (k + 1), rel=1e-6)


def test_step_decay_changes_only_at_epoch_boundaries_even_per_step():
    spe = 5
    lrs = build_lr_schedule("step_decay", 1.0, 9, spe, decay_epochs=2, decay_rate=0.5)
    changes = np.nonzero(np.diff(lrs))[0] + 1
    np.testing.assert_array_equal(changes, [2 * spe, 4 * spe, 6 * spe, 8 * spe])


@pytest.mark.parametrize("name", SCHEDULERS)
def test_epoch_stair_holds_each_epoch_at_its_first_step(name):
    spe = 4
    kw = dict(warmup_epochs=2, warmup_factor=0.1, decay_epochs=3, multi_step_decay_milestones=[2, 4])
    per_step = build_lr_schedule(name, 0.3, 9, spe, **kw)
    stair = build_lr_schedule(name, 0.3, 9, spe, lr_epoch_stair=True, **kw)
    first_of_epoch = (np.arange(per_step.size) // spe) * spe
    np.testing.assert_array_equal(stair, per_step[first_of_epoch])


def official_lambda_lr(lr, total_iters):
    """The learning rate each iteration of the official ShuffleNet train.py trains with: a LambdaLR with
    ``lambda step: 1 - step / total_iters`` (constructed at step 0), stepped before every iteration."""
    last_epoch = 0  # set by the LambdaLR constructor
    lrs = []
    for _ in range(total_iters):
        last_epoch += 1  # scheduler.step() at the top of the loop
        lrs.append(lr * ((1.0 - last_epoch / total_iters) if last_epoch <= total_iters else 0))
    return np.array(lrs)


def test_linear_decay_with_min_lr_zero_is_the_official_per_iteration_schedule():
    lrs = build_lr_schedule("linear_decay", 0.5, 6, 50, min_lr=0.0)
    np.testing.assert_allclose(lrs, official_lambda_lr(0.5, 300), rtol=1e-6, atol=1e-9)
    assert lrs[-1] == 0.0


def test_linear_decay_after_warmup_decays_over_the_remaining_steps_to_min_lr():
    lr, min_lr, spe = 0.5, 0.001, 10
    lrs = build_lr_schedule("linear_decay", lr, 5, spe, warmup_epochs=1, min_lr=min_lr)
    main = lrs[spe:]
    np.testing.assert_allclose(main, min_lr + (lr - min_lr) * (1 - np.arange(1, 4 * spe + 1) / (4 * spe)),
                               rtol=1e-6)
    assert lrs[0] == 0.0 and main[-1] == pytest.approx(min_lr)


def test_unknown_scheduler_lists_the_valid_names_and_the_closest():
    with pytest.raises(ValueError, match="'cosine_decay'") as err:
        build_lr_schedule("cosine_decy", 0.1, 10, 10)
    assert all(name in str(err.value) for name in SCHEDULERS)


@pytest.mark.parametrize("args, kw, key", [
    ((0.0, 10, 10), {}, "lr"),
    ((-0.1, 10, 10), {}, "lr"),
    ((0.1, 0, 10), {}, "epochs"),
    ((0.1, 10, 0), {}, "steps_per_epoch"),
    ((0.1, 10, 10), dict(warmup_epochs=11), "warmup_epochs"),
    ((0.1, 10, 10), dict(warmup_epochs=1.5), "warmup_epochs"),
    ((0.1, 10, 10), dict(warmup_factor=1.5), "warmup_factor"),
    ((0.1, 10, 10), dict(min_lr=0.2), "min_lr"),
    ((0.1, 10, 10), dict(decay_epochs=0), "decay_epochs"),
    ((0.1, 10, 10), dict(num_cycles=0), "num_cycles"),
])
def test_bad_cosine_values_raise_naming_the_key(args, kw, key):
    with pytest.raises(ValueError, match=key):
        build_lr_schedule("cosine_decay", *args, **kw)


@pytest.mark.parametrize("name, kw, key", [
    ("step_decay", {}, "decay_epochs"),
    ("step_decay", dict(decay_epochs=2, decay_rate=0.0), "decay_rate"),
    ("exponential_decay", dict(decay_rate=1.5), "decay_rate"),
    ("multi_step_decay", dict(multi_step_decay_milestones=[5, 3]), "multi_step_decay_milestones"),
    ("multi_step_decay", dict(multi_step_decay_milestones=[]), "multi_step_decay_milestones"),
    ("polynomial_decay", dict(decay_rate=-1.0), "decay_rate"),
])
def test_bad_decay_values_raise_naming_the_key(name, kw, key):
    with pytest.raises(ValueError, match=key):
        build_lr_schedule(name, 0.1, 10, 10, **kw)


# ---------------------------------------------------------------------------------------------------
# Weight-decay filters
# ---------------------------------------------------------------------------------------------------

class ScaleCell(nn.Cell):
    """A layer with a 2-D parameter called ``weight`` that is neither a convolution nor a dense layer."""

    def __init__(self):
        super().__init__()
        self.weight = Parameter(Tensor(np.eye(3, dtype=np.float32)), name="weight")


class FilterNet(nn.Cell):
    """Layers on which the filters disagree (only its parameters are used, never its forward)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1, has_bias=True)
        self.bn = nn.BatchNorm2d(3)
        self.ln = mint.nn.LayerNorm(3)  # a norm whose parameters are called weight/bias
        self.gamma_head = nn.Dense(3, 3, has_bias=False)  # "gamma" in the name of a dense layer
        self.scale = ScaleCell()
        self.fc = nn.Dense(3, 2)


def decayed_names(groups):
    names = set()
    for group in groups:
        if "params" in group and group["weight_decay"] > 0:
            names |= {p.name for p in group["params"]}
    return names


def test_filters_decay_the_parameters_each_rule_names():
    net = FilterNet()
    everything = {p.name for p in net.trainable_params()}
    expected = {
        "disable": everything,
        "auto": everything - {"bn.gamma", "bn.beta", "gamma_head.weight"},
        "norm_and_bias": {"conv.weight", "gamma_head.weight", "scale.weight", "fc.weight"},
        "official": {"conv.weight", "gamma_head.weight", "fc.weight"},
    }
    for rule in WEIGHT_DECAY_FILTERS:
        assert decayed_names(weight_decay_groups(net, 1e-4, rule)) == expected[rule], rule


def test_auto_filter_is_what_mindspore_does_with_ungrouped_parameters():
    net = FilterNet()
    plain = nn.Momentum(net.trainable_params(), 0.1, 0.9, weight_decay=1e-4)
    grouped = nn.Momentum(weight_decay_groups(net, 1e-4, "auto"), 0.1, 0.9)
    assert [p.name for p in grouped.parameters] == [p.name for p in plain.parameters]
    assert tuple(grouped.decay_flags) == tuple(plain.decay_flags)


def test_groups_partition_the_parameters_and_keep_the_network_order():
    net = FilterNet()
    params = net.trainable_params()
    for rule in WEIGHT_DECAY_FILTERS:
        groups = weight_decay_groups(net, 1e-4, rule)
        assert [p.name for p in groups[-1]["order_params"]] == [p.name for p in params]
        grouped = [p.name for g in groups[:-1] for p in g["params"]]
        assert sorted(grouped) == sorted(p.name for p in params)
        assert all(g["weight_decay"] in (1e-4, 0.0) for g in groups[:-1])


def test_unknown_filter_names_the_closest_valid_one():
    with pytest.raises(ValueError, match="'norm_and_bias'"):
        weight_decay_groups(FilterNet(), 1e-4, "norm_and_bais")
    with pytest.raises(ValueError, match="weight_decay"):
        weight_decay_groups(FilterNet(), -1.0, "auto")


@pytest.fixture(scope="module")
def shufflenet():
    return create_model("shufflenet_v2_x0_5")


def test_shufflenet_filters_decay_exactly_the_conv_and_classifier_weights(shufflenet):
    mindcv = [(name, kind) for name, _, kind in read_param_list("shufflenet_v2_x0_5.txt")]
    trainable = {name for name, kind in mindcv if kind == "trainable"}
    weights = {name for name in trainable if name.endswith(".weight")}
    layers = sum(isinstance(c, (nn.Conv2d, nn.Dense)) for _, c in shufflenet.cells_and_names())
    assert len(weights) == layers  # every conv and the classifier, and nothing else
    assert decayed_names(weight_decay_groups(shufflenet, 4e-5, "disable")) == trainable
    for rule in ("auto", "norm_and_bias", "official"):
        groups = weight_decay_groups(shufflenet, 4e-5, rule)
        assert decayed_names(groups) == weights, rule
        assert [len(g["params"]) for g in groups[:-1]] == [len(weights), len(trainable - weights)]
        assert {p.name.rsplit(".", 1)[1] for p in groups[1]["params"]} == {"gamma", "beta"}


def test_momentum_checkpoint_has_mindcv_slot_names_in_network_order(shufflenet, tmp_path):
    lrs = build_lr_schedule("cosine_decay", 0.35, 3, 2, warmup_epochs=1)
    opt = create_optimizer(shufflenet, "momentum", lrs, weight_decay=4e-5, weight_decay_filter="auto",
                           loss_scale=1024.0)
    trainable = [p.name for p in shufflenet.trainable_params()]
    assert [p.name for p in opt.parameters] == trainable
    assert [p.name for p in opt.moments] == ["moments." + name for name in trainable]
    path = str(tmp_path / "opt.ckpt")
    ms.save_checkpoint(opt, path)
    saved = ms.load_checkpoint(path)
    slots = set(saved) - {name for name, _ in shufflenet.parameters_and_names()}
    assert slots == {"moments." + n for n in trainable} | {"momentum", "learning_rate", "global_step"}
    np.testing.assert_array_equal(saved["learning_rate"].asnumpy(), lrs)
    assert saved["momentum"].asnumpy() == pytest.approx(0.9)


# ---------------------------------------------------------------------------------------------------
# Optimizer updates against NumPy
# ---------------------------------------------------------------------------------------------------

class Tiny(nn.Cell):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 1, has_bias=True)
        self.bn = nn.BatchNorm2d(3)
        self.fc = nn.Dense(3, 4)

    def construct(self, x):
        return self.fc(ops.mean(self.bn(self.conv(x)), (2, 3)))


def tiny_net(seed=0):
    net = Tiny()
    rng = np.random.default_rng(seed)
    for p in net.get_parameters():
        p.set_data(Tensor(rng.normal(0, 1, p.shape).astype(np.float32)))
    return net


def run_steps(opt, grads_per_step):
    for grads in grads_per_step:
        opt(tuple(Tensor(g) for g in grads))


def random_grads(net, steps, seed=1):
    rng = np.random.default_rng(seed)
    return [[rng.normal(0, 1, p.shape).astype(np.float32) for p in net.trainable_params()]
            for _ in range(steps)]


LRS = np.array([0.5, 0.25, 0.1, 0.05, 0.02], dtype=np.float32)  # distinct, so the step index shows


def reference_momentum(params, grads_per_step, decayed, wd, lrs, momentum, nesterov, loss_scale, sgd=False):
    """nn.Momentum (ApplyMomentum) or nn.SGD (whose first step sets the buffer to the gradient), with
    L2 decay ``g + wd * p`` on the unscaled gradient. Nesterov: nn.SGD uses the updated buffer, as
    documented; MindSpore 2.10's CPU ApplyMomentum uses the buffer from before the step."""
    params = [p.astype(np.float64) for p in params]
    accum = [np.zeros_like(p) for p in params]
    for step, grads in enumerate(grads_per_step):
        lr = float(lrs[step])
        for k, g in enumerate(grads):
            g = g.astype(np.float64) / loss_scale
            if decayed[k]:
                g = g + wd * params[k]
            previous = accum[k]
            accum[k] = g if (sgd and step == 0) else momentum * accum[k] + g
            if nesterov:
                update = g + momentum * (accum[k] if sgd else previous)
            else:
                update = accum[k]
            params[k] = params[k] - lr * update
    return params


@pytest.mark.parametrize("opt_name, nesterov", [("momentum", False), ("momentum", True), ("nesterov", False),
                                                ("sgd", False), ("sgd", True)])
def test_momentum_and_sgd_steps_equal_numpy_with_decay_on_filtered_params(opt_name, nesterov):
    net, wd = tiny_net(), 0.05
    names = [p.name for p in net.trainable_params()]
    decayed = [n in ("conv.weight", "fc.weight") for n in names]  # the "official" rule
    start = [p.asnumpy().copy() for p in net.trainable_params()]
    grads = random_grads(net, 4)
    opt = create_optimizer(net, opt_name, LRS, momentum=0.9, weight_decay=wd, weight_decay_filter="official",
                           use_nesterov=nesterov)
    run_steps(opt, grads)
    want = reference_momentum(start, grads, decayed, wd, LRS, 0.9, nesterov or opt_name == "nesterov", 1.0,
                              sgd=opt_name == "sgd")
    for name, p, w in zip(names, net.trainable_params(), want):
        np.testing.assert_allclose(p.asnumpy(), w, rtol=2e-5, atol=2e-6, err_msg=name)
    assert int(opt.global_step.asnumpy()[0]) == 4


def test_momentum_with_a_loss_scale_unscales_gradients_and_keeps_the_nominal_weight_decay():
    net, wd, scale = tiny_net(), 0.05, 8.0
    names = [p.name for p in net.trainable_params()]
    start = [p.asnumpy().copy() for p in net.trainable_params()]
    scaled = [[g * scale for g in step] for step in random_grads(net, 3)]
    opt = create_optimizer(net, "momentum", LRS, weight_decay=wd, weight_decay_filter="disable",
                           loss_scale=scale)
    run_steps(opt, scaled)
    want = reference_momentum(start, scaled, [True] * len(names), wd, LRS, 0.9, False, scale)
    for name, p, w in zip(names, net.trainable_params(), want):
        np.testing.assert_allclose(p.asnumpy(), w, rtol=2e-5, atol=2e-6, err_msg=name)


def reference_adam(params, grads_per_step, decayed, wd, lrs, eps, mindcv_adamw, loss_scale=1.0, b1=0.9, b2=0.999):
    """nn.Adam (weight decay in the gradient; eps outside the bias-corrected sqrt) or MindCV's AdamW
    (bias-corrected moments, eps added to sqrt(v_hat), lr * wd * param decoupled)."""
    params = [p.astype(np.float64) for p in params]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for step, grads in enumerate(grads_per_step):
        t, lr = step + 1, float(lrs[step])
        for k, g in enumerate(grads):
            g = g.astype(np.float64) / loss_scale
            if decayed[k] and not mindcv_adamw:
                g = g + wd * params[k]
            m[k] = b1 * m[k] + (1 - b1) * g
            v[k] = b2 * v[k] + (1 - b2) * g * g
            if mindcv_adamw:
                update = (m[k] / (1 - b1 ** t)) / (eps + np.sqrt(v[k] / (1 - b2 ** t)))
                if decayed[k]:
                    update = update + wd * params[k]
                params[k] = params[k] - lr * update
            else:
                lr_t = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
                params[k] = params[k] - lr_t * m[k] / (np.sqrt(v[k]) + eps)
    return params


@pytest.mark.parametrize("loss_scale", [1.0, 4.0])
@pytest.mark.parametrize("opt_name", ["adam", "adamw"])
def test_adam_and_adamw_steps_equal_numpy(opt_name, loss_scale):
    net, wd, eps = tiny_net(), 0.1, 1e-6
    names = [p.name for p in net.trainable_params()]
    decayed = [n in ("conv.weight", "fc.weight") for n in names]
    start = [p.asnumpy().copy() for p in net.trainable_params()]
    grads = [[g * loss_scale for g in step] for step in random_grads(net, 3)]
    opt = create_optimizer(net, opt_name, LRS / 10, weight_decay=wd, weight_decay_filter="official", eps=eps,
                           loss_scale=loss_scale)
    run_steps(opt, grads)
    want = reference_adam(start, grads, decayed, wd, LRS / 10, eps, opt_name == "adamw", loss_scale)
    for name, p, w in zip(names, net.trainable_params(), want):
        np.testing.assert_allclose(p.asnumpy(), w, rtol=1e-4, atol=1e-6, err_msg=name)
    assert int(opt.global_step.asnumpy()[0]) == 3


@pytest.mark.parametrize("opt_name", ["momentum", "adamw"])
def test_optimizer_steps_in_graph_mode_equal_numpy(graph_mode, opt_name):
    net, wd = tiny_net(), 0.05
    names = [p.name for p in net.trainable_params()]
    decayed = [n in ("conv.weight", "fc.weight") for n in names]
    start = [p.asnumpy().copy() for p in net.trainable_params()]
    grads = random_grads(net, 2)
    opt = create_optimizer(net, opt_name, LRS / 10, weight_decay=wd, weight_decay_filter="official")
    run_steps(opt, grads)
    if opt_name == "momentum":
        want = reference_momentum(start, grads, decayed, wd, LRS / 10, 0.9, False, 1.0)
    else:
        want = reference_adam(start, grads, decayed, wd, LRS / 10, 1e-8, True)
    for name, p, w in zip(names, net.trainable_params(), want):
        np.testing.assert_allclose(p.asnumpy(), w, rtol=1e-4, atol=1e-6, err_msg=name)


def test_train_step_in_graph_mode_follows_the_schedule(graph_mode):
    net = tiny_net()
    lrs = build_lr_schedule("cosine_decay", 0.1, 2, 2, warmup_epochs=1, warmup_factor=0.5)
    opt = create_optimizer(net, "momentum", lrs, weight_decay=1e-4, weight_decay_filter="official")
    step = nn.TrainOneStepCell(nn.WithLossCell(net, create_loss("CE", label_smoothing=0.1)), opt)
    step.set_train(True)
    x = Tensor(np.random.default_rng(0).normal(0, 1, (4, 2, 3, 3)).astype(np.float32))
    y = Tensor(np.array([0, 1, 2, 3], np.int32))
    losses = [float(step(x, y).asnumpy()) for _ in range(len(lrs))]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert int(opt.global_step.asnumpy()[0]) == len(lrs)
    with pytest.raises(RuntimeError):  # past the end of the schedule
        step(x, y)


@pytest.mark.parametrize("kw, key", [
    (dict(opt="momentun"), "'momentum'"),
    (dict(weight_decay_filter="offical"), "'official'"),
    (dict(momentum=1.0), "momentum"),
    (dict(loss_scale=0.0), "loss_scale"),
    (dict(lr=np.zeros((2, 2))), "lr"),
    (dict(lr=np.array([0.1, -0.1])), "lr"),
    (dict(opt="adam", eps=0.0), "eps"),
])
def test_bad_optimizer_arguments_raise_naming_the_key(kw, key):
    args = dict(opt="momentum", lr=0.1)
    args.update(kw)
    with pytest.raises(ValueError, match=key):
        create_optimizer(tiny_net(), args.pop("opt"), args.pop("lr"), **args)
