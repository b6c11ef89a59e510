"""ShuffleNet V1 and V2 networks and the model registry."""

from . import shufflenet_v1, shufflenet_v2  # noqa: F401  (registers the builders)
from .complexity import ParamCount, count_macs, count_params
from .metadata import ModelInfo, Preprocessing, PublishedFigures, ReleasedWeights, Reported
from .registry import create_model, list_models, model_info, register_model
from .shufflenet_v1 import SHUFFLENET_V1_CHANNELS, ShuffleNetV1
from .shufflenet_v2 import SHUFFLENET_V2_CHANNELS, ShuffleNetV2
from .weights import (CheckpointMismatchError, checkpoint_record, load_checkpoint, load_pretrained,
                      load_state_dict, save_checkpoint)

__all__ = [
    "create_model", "list_models", "model_info", "register_model",
    "ModelInfo", "Preprocessing", "PublishedFigures", "ReleasedWeights", "Reported",
    "ShuffleNetV1", "ShuffleNetV2", "SHUFFLENET_V1_CHANNELS", "SHUFFLENET_V2_CHANNELS",
    "count_params", "count_macs", "ParamCount",
    "load_checkpoint", "load_state_dict", "load_pretrained", "CheckpointMismatchError",
    "save_checkpoint", "checkpoint_record",
]
