import mindspore as ms
import numpy as np
import pytest

from mindcv_shufflenet.models.layers import ChannelShuffle, EvenOddSplit, downsample_pool
from mindcv_shufflenet.models.shufflenet_v2 import ShuffleV2Block


def mindcv_v1_shuffle(x, groups):
    """MindCV's V1 shuffle in NumPy: reshape (B, C/g, g, H, W), swap axes 1 and 2, reshape back."""
    b, c, h, w = x.shape
    return x.reshape(b, c // groups, groups, h, w).transpose(0, 2, 1, 3, 4).reshape(b, c, h, w)


@pytest.mark.parametrize("channels, groups", [(60, 3), (96, 8), (36, 4), (26, 2)])
def test_v1_channel_shuffle_equals_mindcvs_transpose(channels, groups):
    x = np.random.rand(2, channels, 5, 3).astype(np.float32)
    out = ChannelShuffle(groups)(ms.Tensor(x)).asnumpy()
    np.testing.assert_array_equal(out, mindcv_v1_shuffle(x, groups))


@pytest.mark.parametrize("shape", [(1, 8, 1, 1), (3, 58, 5, 7), (2, 116, 4, 4)])
def test_even_odd_split_and_its_gradient_match_numpy(shape):
    x = np.random.rand(*shape).astype(np.float32)
    even, odd = EvenOddSplit()(ms.Tensor(x))
    np.testing.assert_array_equal(even.asnumpy(), x[:, 0::2])
    np.testing.assert_array_equal(odd.asnumpy(), x[:, 1::2])
    weights = np.arange(shape[1] // 2, dtype=np.float32).reshape(1, -1, 1, 1)

    def loss(t):
        e, o = EvenOddSplit()(t)
        return (e * ms.Tensor(weights)).sum() + (o * ms.Tensor(2 * weights)).sum()

    grad = ms.grad(loss)(ms.Tensor(x)).asnumpy()
    expected = np.zeros_like(x)
    expected[:, 0::2], expected[:, 1::2] = weights, 2 * weights
    np.testing.assert_array_equal(grad, expected)


def test_v2_unit_sends_even_channels_through_and_odd_channels_to_the_main_branch():
    block = ShuffleV2Block(4, 8, 4, stride=1)
    block.set_train(False)
    x = np.random.rand(1, 8, 6, 6).astype(np.float32)
    out = block(ms.Tensor(x)).asnumpy()
    # MindCV: reshape (B*C/2, 2, HW), transpose -> x[0] are the even channels, x[1] the odd ones.
    np.testing.assert_array_equal(out[:, :4], x[:, 0::2])
    main = block.branch_main(ms.Tensor(np.ascontiguousarray(x[:, 1::2]))).asnumpy()
    np.testing.assert_allclose(out[:, 4:], main, rtol=1e-6, atol=1e-6)


def numpy_max_pool(x, pad_top_left, pad_bottom_right):
    padded = np.pad(x, ((0, 0), (0, 0), (pad_top_left, pad_bottom_right), (pad_top_left, pad_bottom_right)),
                    constant_values=-np.inf)
    h = (padded.shape[2] - 3) // 2 + 1
    w = (padded.shape[3] - 3) // 2 + 1
    return np.array([[[[padded[b, c, 2 * i:2 * i + 3, 2 * j:2 * j + 3].max() for j in range(w)]
                       for i in range(h)] for c in range(x.shape[1])] for b in range(x.shape[0])])


def test_same_max_pool_pads_only_bottom_right_and_symmetric_pads_every_side():
    x = np.random.rand(1, 2, 8, 8).astype(np.float32)
    same = downsample_pool("max", "same")(ms.Tensor(x)).asnumpy()
    symmetric = downsample_pool("max", "symmetric")(ms.Tensor(x)).asnumpy()
    np.testing.assert_array_equal(same, numpy_max_pool(x, 0, 1))
    np.testing.assert_array_equal(symmetric, numpy_max_pool(x, 1, 1))
    assert same.shape == symmetric.shape == (1, 2, 4, 4)


def test_average_pool_divisor_excludes_same_padding_and_includes_symmetric_padding():
    x = np.ones((1, 1, 4, 4), np.float32)
    same = downsample_pool("avg", "same")(ms.Tensor(x)).asnumpy()
    symmetric = downsample_pool("avg", "symmetric")(ms.Tensor(x)).asnumpy()
    np.testing.assert_allclose(same, np.ones((1, 1, 2, 2)))
    # top-left window holds 4 real ones of 9 positions; bottom-right 6 (one padded row/column each side)
    np.testing.assert_allclose(symmetric[0, 0], [[4 / 9, 6 / 9], [6 / 9, 1.0]], rtol=1e-6)
