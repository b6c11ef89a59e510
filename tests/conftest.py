import os
import socket
from pathlib import Path

import numpy as np
import pytest

import mindcv_shufflenet  # noqa: F401  (applies the CPU defaults before MindSpore runs a kernel)
from mindcv_shufflenet import runtime

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session", autouse=True)
def cpu_pynative():
    """Tests run eagerly on the CPU unless they ask for graph mode."""
    runtime.init_runtime(device="CPU", mode="pynative")
    yield


@pytest.fixture(scope="session")
def images(tmp_path_factory):
    """The demo's digits as an image folder (train/ and val/), written once for the tests that train on it."""
    from mindcv_shufflenet.data.digits import write_digits_imagefolder

    root = tmp_path_factory.mktemp("digits")
    write_digits_imagefolder(root)
    return root


@pytest.fixture
def graph_mode():
    runtime.set_mode("graph")
    yield
    runtime.set_mode("pynative")


def read_param_list(filename):
    """A MindCV parameter list: ``(name, shape, "trainable" | "buffer")`` per line."""
    rows = []
    for line in (DATA / filename).read_text().splitlines():
        name, shape, kind = line.split("\t")
        rows.append((name, tuple(int(d) for d in shape.strip("()").split(",") if d.strip()), kind))
    return rows


def randomize(net, seed=0):
    """Give every parameter random values (BatchNorm scales and variances positive), so that a
    comparison of two networks cannot pass on untouched initial values."""
    import mindspore as ms

    rng = np.random.default_rng(seed)
    for name, p in net.parameters_and_names():
        shape = tuple(p.shape)
        if name.endswith(("moving_variance", "gamma")):
            value = rng.uniform(0.5, 1.5, shape)
        elif name.endswith(("moving_mean", "beta")):
            value = rng.normal(0.0, 0.1, shape)
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            value = rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape)
        p.set_data(ms.Tensor(value.astype(np.float32)))
    return net


def state_of(net):
    return {name: p.asnumpy().copy() for name, p in net.parameters_and_names()}


def run_eval(net, x):
    import mindspore as ms

    net.set_train(False)
    return net(ms.Tensor(x)).asnumpy()


def free_port() -> int:
    """A TCP port nobody listens on now, for an msrun master (tests may run in parallel workers)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def publish_release(monkeypatch, model_name: str, checkpoint: Path, home: Path) -> Path:
    """Make ``checkpoint`` the released weights of ``model_name`` for this test: move it into the weights folder
    ``home`` under a release name carrying its own SHA-256 prefix (as MindCV names its files), and register
    that release (undone after the test). Returns the file's place in ``home``."""
    import dataclasses

    from mindcv_shufflenet.models import registry
    from mindcv_shufflenet.models.download import sha256_of
    from mindcv_shufflenet.models.metadata import ReleasedWeights

    prefix = sha256_of(checkpoint)[:8]
    released = ReleasedWeights(f"http://127.0.0.1/releases/test/{model_name}-{prefix}.ckpt", prefix)
    info = registry.model_info(model_name)
    monkeypatch.setitem(registry._INFO, model_name, dataclasses.replace(info, weights=released))
    monkeypatch.setenv("MINDCV_SHUFFLENET_HOME", str(home))
    target = home / released.relative_path
    target.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.replace(target)
    return target
