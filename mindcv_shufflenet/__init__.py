"""ShuffleNet V1 and V2 for MindSpore, compatible with MindCV's model names and checkpoints."""

from . import runtime

# Before anything imports MindSpore's kernels: the oneDNN ISA cap and log verbosity (see runtime.py).
runtime.apply_env_defaults()

from .models import create_model, list_models, model_info  # noqa: E402

__version__ = "0.1.0"
__all__ = ["create_model", "list_models", "model_info", "runtime", "__version__"]
