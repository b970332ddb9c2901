"""Training: the recipe (loss, optimizer, schedule, checkpoints) and its metric history."""

from jointcodec.training.recipe import TrainConfig, train

__all__ = ["TrainConfig", "train"]
