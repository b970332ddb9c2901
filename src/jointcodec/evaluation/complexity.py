"""Model size and compute: parameters and multiply-accumulates (MACs) per image."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def count_macs(module: nn.Module, example: torch.Tensor) -> int:
    """MACs of one forward pass on ``example`` (batch of 1), from torch's FLOP counter (FLOPs / 2)."""
    was_training = module.training
    module.eval()
    counter = FlopCounterMode(display=False)
    with counter:
        module(example)
    module.train(was_training)
    return counter.get_total_flops() // 2
