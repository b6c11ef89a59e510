"""BatchNorm folded into the convolution before it: the same logits to float rounding, with one op fewer per pair.

Folding is for inference only. It changes the network it is given (never a checkpoint file): each
``Conv2d -> BatchNorm2d`` pair inside a ``SequentialCell`` becomes one ``Conv2d`` with a bias, and the
BatchNorm cell an identity. With ``s = gamma / sqrt(moving_variance + eps)`` the weights become ``W * s``
and the bias ``(b - moving_mean) * s + beta``, computed in float64 and stored in the weights' dtype. A
``Conv2d`` subclass must add its bias when ``has_bias`` is set (``layers.DepthwiseConv2d`` and
``layers.PadValueConv2d`` do).

``prepare_for_inference`` (``validate.py``, ``infer.py``) folds what it can and leaves any other BatchNorm
working as it was; ``fold_batchnorm(strict=True)`` (``export.py``) also requires that none is left.
"""

from __future__ import annotations

from typing import List

import mindspore as ms
import numpy as np
from mindspore import nn

__all__ = ["fold_batchnorm", "prepare_for_inference", "unfolded_batchnorms", "forget_compiled_graphs"]


def _foldable(conv: nn.Cell, bn: nn.Cell) -> bool:
    """A conv whose only reader is a BatchNorm on its moving statistics, both NCHW, channels matching."""
    return (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
            and bn.use_batch_statistics is not True and conv.data_format == "NCHW"
            and getattr(bn, "format", "NCHW") == "NCHW" and conv.out_channels == bn.num_features)


def _as_float64(parameter: ms.Parameter) -> np.ndarray:
    return parameter.asnumpy().astype(np.float64)


def _fold_pair(conv: nn.Conv2d, bn: nn.BatchNorm2d, bias_name: str) -> None:
    """Put ``bn``'s affine map into ``conv``'s weight and bias (see the module docstring)."""
    scale = _as_float64(bn.gamma) / np.sqrt(_as_float64(bn.moving_variance) + bn.eps)
    bias = _as_float64(conv.bias) if conv.has_bias else 0.0
    weight = _as_float64(conv.weight) * scale.reshape(-1, *([1] * (len(conv.weight.shape) - 1)))
    new_bias = (bias - _as_float64(bn.moving_mean)) * scale + _as_float64(bn.beta)
    dtype = ms.dtype_to_nptype(conv.weight.dtype)
    conv.weight.set_data(ms.Tensor(weight.astype(dtype)))
    conv.bias = ms.Parameter(ms.Tensor(new_bias.astype(dtype)), name=bias_name)
    conv.has_bias = True


def forget_compiled_graphs(net: nn.Cell) -> None:
    """Make graph mode compile a changed network again: MindSpore keys a compiled graph by the cell, not by
    what it holds, so it would otherwise run the graph compiled before the change (after folding: BatchNorm
    applied twice on the folded weights; after a new classifier: the old one's shape)."""
    for _, cell in net.cells_and_names():
        cell.compile_cache.clear()


def unfolded_batchnorms(net: nn.Cell) -> List[str]:
    """The names of the BatchNorm2d cells still in ``net``."""
    return [name for name, cell in net.cells_and_names() if isinstance(cell, nn.BatchNorm2d)]


def fold_batchnorm(net: nn.Cell, strict: bool = True) -> int:
    """Fold every BatchNorm2d that directly follows a convolution in a SequentialCell into it, in place,
    and put ``net`` in eval mode. Returns how many were folded.

    Raises:
        ValueError: with ``strict``, if a BatchNorm2d could not be folded (an exported file must have none).
    """
    net.set_train(False)
    folded = 0
    for name, cell in list(net.cells_and_names()):
        if not isinstance(cell, nn.SequentialCell):
            continue
        for i in range(1, len(cell)):
            if _foldable(cell[i - 1], cell[i]):
                _fold_pair(cell[i - 1], cell[i], f"{name}.{i - 1}.bias" if name else f"{i - 1}.bias")
                cell[i] = nn.Identity()
                folded += 1
    if folded:
        forget_compiled_graphs(net)
    left = unfolded_batchnorms(net) if strict else []
    if left:
        raise ValueError(f"{len(left)} BatchNorm2d cells do not follow a convolution and were not folded: {left[:4]}")
    return folded


def prepare_for_inference(net: nn.Cell, fold_bn: bool = True) -> int:
    """Eval mode, and (``fold_bn``) every BatchNorm that can be folded folded, the rest left as they are:
    for running a loaded network, never for one that will train. Returns how many were folded."""
    net.set_train(False)
    return fold_batchnorm(net, strict=False) if fold_bn else 0
