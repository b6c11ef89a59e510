"""Checkpoint files below every user of them: what is wrong with a file (:mod:`.integrity`), and MindCV's own V1
layouts, read as this project's (:mod:`.mindcv_v1`).

The rest of the checkpoint family builds on these: ``models.weights`` reads and writes checkpoints with the
record that lets ``create_model`` rebuild the network, loads them strictly and finds released weights (it sits
with the models because the builders and ``create_model`` load through it); ``engine.checkpoint`` writes a
training run's checkpoints so that they survive a kill, and resumes from them.
"""

from .integrity import CheckpointFileError, CheckpointFileInfo, check_checkpoint_file, checkpoint_problem
from .mindcv_v1 import grouped_from_split_convs

__all__ = ["CheckpointFileError", "CheckpointFileInfo", "check_checkpoint_file", "checkpoint_problem",
           "grouped_from_split_convs"]
