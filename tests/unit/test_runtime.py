"""runtime: bad settings are refused, and the mode and seeds are set as asked (the defaults a command applies when it
imports the package: integration/test_runtime_and_cli.py)."""

import numpy as np
import pytest

from mindcv_shufflenet import runtime


@pytest.mark.parametrize("kwargs, message", [
    ({"device": "TPU"}, "device: unknown value 'TPU'"),
    ({"mode": "eager"}, "mode: unknown value 'eager'"),
    ({"jit_level": "O3"}, "jit_level: unknown value 'O3'"),
    ({"num_threads": 0}, "num_threads must be >= 1"),
])
def test_init_runtime_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        runtime.init_runtime(**kwargs)


def test_init_runtime_selects_mode_and_seeds_reproducibly():
    import mindspore as ms

    from mindcv_shufflenet import create_model

    info = runtime.init_runtime(device="cpu", mode="PyNative", seed=11, num_threads=2)
    assert (info.device, info.mode, runtime.current_device()) == ("CPU", "pynative", "CPU")
    first = dict(create_model("shufflenet_v2_x0_5").parameters_and_names())["classifier.weight"].asnumpy()
    runtime.set_seed(11)
    second = dict(create_model("shufflenet_v2_x0_5").parameters_and_names())["classifier.weight"].asnumpy()
    np.testing.assert_array_equal(first, second)
    runtime.set_seed(5)
    draws = np.random.rand(3)
    runtime.set_seed(5)
    np.testing.assert_array_equal(draws, np.random.rand(3))
    runtime.set_mode("graph")
    assert runtime.current_mode() == "graph" and ms.get_context("mode") == ms.GRAPH_MODE
    runtime.set_mode("pynative")
