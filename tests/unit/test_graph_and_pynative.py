"""Forward and backward in both execution modes, any batch size, inputs down to 32x32."""

import mindspore as ms
import numpy as np
import pytest

from mindcv_shufflenet import create_model, runtime
from tests.helpers import loss_and_grads, randomize, state_of


@pytest.mark.parametrize("model, batch, size", [
    ("shufflenet_v2_x0_5", 3, (32, 32)),
    pytest.param("shufflenet_v1_g3_05", 1, (32, 40), marks=pytest.mark.slow),
    pytest.param("shufflenet_v1_g8_05", 2, (48, 32), marks=pytest.mark.slow),
])
def test_graph_and_pynative_give_the_same_loss_and_gradients(model, batch, size):
    net = randomize(create_model(model, num_classes=10), seed=1)
    initial = state_of(net)
    rng = np.random.default_rng(0)
    x = rng.random((batch, 3, *size), dtype=np.float32)
    y = rng.integers(0, 10, batch).astype(np.int32)

    graph_loss, graph_grads = loss_and_grads(net, x, y, "graph")
    for name, p in net.parameters_and_names():  # undo the BatchNorm statistics update
        p.set_data(ms.Tensor(initial[name]))
    eager_loss, eager_grads = loss_and_grads(net, x, y, "pynative")

    assert np.isfinite(graph_loss)
    assert graph_loss == pytest.approx(eager_loss, rel=1e-5)
    assert len(graph_grads) == len(net.trainable_params())
    for g, e in zip(graph_grads, eager_grads):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6)
    assert any(np.abs(g).max() > 0 for g in graph_grads)


def test_graph_mode_inference_equals_pynative_for_several_batch_sizes(graph_mode):
    net = randomize(create_model("shufflenet_v2_x1_0", num_classes=10), seed=2)
    net.set_train(False)
    for batch in (1, 4):
        x = ms.Tensor(np.random.rand(batch, 3, 64, 64).astype(np.float32))
        graph_out = net(x).asnumpy()
        runtime.set_mode("pynative")
        eager_out = net(x).asnumpy()
        runtime.set_mode("graph")
        assert graph_out.shape == (batch, 10)
        np.testing.assert_allclose(graph_out, eager_out, rtol=1e-4, atol=1e-5)
