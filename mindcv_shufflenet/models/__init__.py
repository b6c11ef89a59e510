"""The ShuffleNet networks (V1, V2, V2+, V2.Large / ExLarge) and the model registry."""

from . import shufflenet_v1, shufflenet_v2, shufflenet_v2_large, shufflenet_v2_plus  # noqa: F401  (registers them)
from .backbone import FeatureInfo, StageInfo
from .complexity import Counts, ParamCount, count_macs, count_params, model_counts
from .factory import create_model
from .fusion import fold_batchnorm, prepare_for_inference
from .metadata import Accuracy, ModelInfo, Preprocessing, PublishedFigures, ReleasedWeights, Reported
from .registry import list_models, model_info, register_model
from .shufflenet_v1 import SHUFFLENET_V1_CHANNELS, ShuffleNetV1
from .shufflenet_v2 import SHUFFLENET_V2_50_CHANNELS, SHUFFLENET_V2_CHANNELS, ShuffleNetV2
from .shufflenet_v2_large import SHUFFLENET_V2_LARGE_CONFIGS, ShuffleNetV2Large
from .shufflenet_v2_plus import SHUFFLENET_V2_PLUS_CHANNELS, ShuffleNetV2Plus
from .weights import (
                      CheckpointMismatchError,
                      checkpoint_record,
                      load_checkpoint,
                      load_pretrained,
                      load_state_dict,
                      save_checkpoint,
)

__all__ = [
    "create_model", "list_models", "model_info", "register_model",
    "Accuracy", "ModelInfo", "Preprocessing", "PublishedFigures", "ReleasedWeights", "Reported",
    "ShuffleNetV1", "ShuffleNetV2", "ShuffleNetV2Plus", "ShuffleNetV2Large", "SHUFFLENET_V2_LARGE_CONFIGS",
    "SHUFFLENET_V1_CHANNELS", "SHUFFLENET_V2_CHANNELS",
    "SHUFFLENET_V2_50_CHANNELS", "SHUFFLENET_V2_PLUS_CHANNELS",
    "count_params", "count_macs", "model_counts", "ParamCount", "Counts",
    "load_checkpoint", "load_state_dict", "load_pretrained", "CheckpointMismatchError",
    "save_checkpoint", "checkpoint_record", "fold_batchnorm", "prepare_for_inference", "FeatureInfo", "StageInfo",
]
