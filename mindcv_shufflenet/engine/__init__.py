"""Training and evaluation: the train-step Cell, optimizers, schedules, losses, checkpoints, the loop."""

from .evaluate import EvalResult, evaluate

__all__ = ["EvalResult", "evaluate"]
