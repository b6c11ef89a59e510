"""The Ascend paths as far as a machine without an NPU can check them in process: an unavailable GPU names
its build, the sunk benchmark's source has a length, and the train step picks the float-status handling only on
Ascend (the commands' refusals: integration/test_ascend_paths.py)."""

import numpy as np
import pytest

from mindcv_shufflenet import runtime
from tests.helpers import load_script


def test_an_unavailable_gpu_names_the_gpu_build():
    with pytest.raises(ValueError, match=r"^device_target GPU is not available .*MindSpore's GPU build"):
        runtime.check_device_available("GPU")


def test_sunk_benchmark_source_has_a_length():
    import mindspore.dataset as ds

    benchmark = load_script("scripts/benchmark.py")
    source = benchmark._SameBatch(np.zeros((2, 3), np.float32), np.zeros(2, np.int32), 7)
    data = ds.GeneratorDataset(source, ["x", "y"], shuffle=False)
    assert data.get_dataset_size() == 7  # what ms.data_sink counts; without a length it never ends
    assert len(list(data.create_tuple_iterator(num_epochs=1))) == 7


def test_the_float_status_register_is_used_only_on_ascend(monkeypatch):
    from mindcv_shufflenet.npu import STANDIN_ENV, uses_float_status_register

    monkeypatch.delenv(STANDIN_ENV, raising=False)
    assert runtime.current_device() == "CPU"
    assert uses_float_status_register() is False
