"""The shared training loop, checkpoints and run logging."""
from ..checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .loop import Trainer, run_config, train

__all__ = ["CheckpointError", "Trainer", "load_checkpoint", "run_config", "save_checkpoint", "train"]
