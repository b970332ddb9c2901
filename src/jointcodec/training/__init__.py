"""Training: the recipe as plain data (``hyperparameters``), the loop (``recipe.train``) and the tasks it trains.

``Recipe`` and ``RunSettings`` import no torch; ``train`` is loaded on first use.
"""

from __future__ import annotations

from typing import Any

from jointcodec.training.hyperparameters import Recipe, RunSettings, TrainConfig

__all__ = ["Recipe", "RunSettings", "TrainConfig", "train"]


def __getattr__(name: str) -> Any:
    if name == "train":  # the loop imports torch; the dataclasses above do not
        from jointcodec.training.recipe import train

        return train
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
