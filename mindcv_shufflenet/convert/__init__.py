"""Converters from other checkpoint layouts to this project's, on plain ``name -> numpy array`` maps."""

from .mindcv_v1 import grouped_from_split_convs

__all__ = ["grouped_from_split_convs"]
