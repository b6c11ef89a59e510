"""Evaluation (and, later, training) loops."""

from .evaluate import EvalResult, evaluate

__all__ = ["EvalResult", "evaluate"]
