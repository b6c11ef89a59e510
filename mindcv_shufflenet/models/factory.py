"""``create_model(name, ...)``: a registered model built, optionally with weights (MindCV's signature)."""

from __future__ import annotations

import functools
from typing import Optional, Sequence

from mindspore import nn

from .registry import call_builder, canonical_model_name
from .weights import build_from_checkpoint


def create_model(
    model_name: str,
    num_classes: int = 1000,
    in_channels: int = 3,
    pretrained: bool = False,
    checkpoint_path: Optional[str] = None,
    ema: bool = False,
    finetune: bool = False,
    features_only: bool = False,
    out_indices: Optional[Sequence[int]] = None,
    pretrained_url: Optional[str] = None,
    **kwargs,
) -> nn.Cell:
    """Build a registered model, optionally with weights.

    Args:
        model_name: a name from ``list_models()`` (MindCV's legacy V1 names are accepted too).
        num_classes, in_channels: classifier outputs and image channels.
        pretrained: load MindCV's released ImageNet weights from the local weights folder
            (see ``download.pretrained_dir``), checked against their SHA-256 first.
        pretrained_url: with ``pretrained``, download the released file from this URL if it is not in the
            weights folder yet (verified, then kept there); see ``download`` for the environment setting
            that does the same for every model. Default: offline.
        checkpoint_path: load this checkpoint strictly (every network parameter must be in it with the
            right shape); MindCV checkpoints of either V1 layout are accepted. Empty means none. Model
            options the file records (converted torchvision/official weights record ``pool_padding``,
            ``proj_channels``, ...) are applied; passing a different value for one is an error.
        ema: take the weights from the checkpoint's EMA copy (``ema.*``) instead of the raw ones.
        finetune: the checkpoint is a starting point for another class count: if its classifier has
            another number of classes than ``num_classes``, the classifier is re-initialised (a message
            says so) and everything else loads strictly. Without it, that is an error.
        features_only: build the network as a feature extractor (``models.backbone``): without the
            classifier head, returning a tuple of feature maps described by ``net.feature_info``. Weights
            (``pretrained``, ``checkpoint_path``) load into it without the head, strictly otherwise.
        out_indices: with ``features_only``, which maps, in that order: 0 stride 4, 1-3 the stages at
            strides 8/16/32, 4 the final conv where the family has one (default: all it has).
        **kwargs: passed to the model class, e.g. ``pool_padding="symmetric"``. A value of None means
            "not given": the checkpoint's recorded option, or the model's default.
    """
    name = canonical_model_name(model_name)
    options = {key: value for key, value in kwargs.items() if value is not None}
    if out_indices is not None and not features_only:
        raise ValueError("out_indices chooses the maps of a feature extractor: add features_only=True")
    if features_only:
        options.update(features_only=True, out_indices=out_indices)
    if pretrained_url and not pretrained:
        raise ValueError("pretrained_url is where the released weights are downloaded from: add pretrained=True")
    if pretrained and checkpoint_path:
        raise ValueError("pass either pretrained=True or checkpoint_path, not both")
    if ema and not checkpoint_path:
        raise ValueError("ema=True selects the EMA weights of a checkpoint: give checkpoint_path too")
    if finetune and not checkpoint_path:
        raise ValueError("finetune=True re-initialises a checkpoint's classifier: give checkpoint_path too "
                         "(pretrained=True does it by itself)")
    if pretrained_url:  # fetched (and verified) before the builder loads it
        from .download import fetch_released_weights

        fetch_released_weights(name, pretrained_url)
    build = functools.partial(call_builder, name, pretrained=pretrained, num_classes=num_classes,
                              in_channels=in_channels)
    if checkpoint_path:
        return build_from_checkpoint(build, name, checkpoint_path, options, ema=ema, finetune=finetune)
    return build(**options)
