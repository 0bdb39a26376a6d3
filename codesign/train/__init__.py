"""Training: float pre-training, QAT fine-tuning and checkpoints."""
from .checkpoint import CheckpointError, load_checkpoint, load_weights, save_checkpoint
from .trainer import DIGITS_PRESET, PRESETS, TrainConfig, add_train_arguments, evaluate, run_from_args, train

__all__ = ["DIGITS_PRESET", "PRESETS", "CheckpointError", "TrainConfig", "add_train_arguments", "evaluate",
           "load_checkpoint", "load_weights", "run_from_args", "save_checkpoint", "train"]
