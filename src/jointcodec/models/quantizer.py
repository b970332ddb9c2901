"""Scalar quantizer with L learned centers (Mentzer et al. 2018, "Conditional Probability Models").

Forward values are hard (each element snapped to its nearest center); gradients come from the soft
assignment softmax(-sigma * (z - c)^2), through the straight-through estimator.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from jointcodec.errors import ConfigError


@dataclass
class Quantized:
    """What the quantizer hands on: values for the classifier, symbols for the coder."""

    values: torch.Tensor  # (N, C, H, W) hard center values in the forward pass, soft gradient
    symbols: torch.Tensor  # (N, C, H, W) int64 center indices, the symbols that are sent
    one_hot: torch.Tensor  # (N, C, H, W, L) hard one-hot forward, soft-assignment gradient


class LearnedQuantizer(nn.Module):
    """Snap every latent element to one of ``levels`` learned scalar centers."""

    def __init__(self, levels: int, sigma: float = 1.0, init_range: float = 2.0) -> None:
        super().__init__()
        if levels < 2:
            raise ConfigError(f"the quantizer needs at least 2 levels, got {levels}")
        self.levels = levels
        self.sigma = sigma
        # Uniform in [-2, 2], as in the paper; learned from there.
        self.centers = nn.Parameter(torch.linspace(-init_range, init_range, levels))

    def soft_assignment(self, z: torch.Tensor, centers: torch.Tensor | None = None) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, H, W, L) softmax over centers of -sigma * squared distance."""
        centers = self.centers if centers is None else centers
        distance = (z.float().unsqueeze(-1) - centers) ** 2
        return torch.softmax(-self.sigma * distance, dim=-1)

    def symbols(self, z: torch.Tensor) -> torch.Tensor:
        """Index of the nearest center for each element (ties go to the lower index)."""
        return torch.argmin((z.float().unsqueeze(-1) - self.centers.detach()) ** 2, dim=-1)

    def dequantize(self, symbols: torch.Tensor) -> torch.Tensor:
        """Center values for integer symbols, as the receiver computes them."""
        return self.centers.detach()[symbols]

    def forward(self, z: torch.Tensor, train_centers: bool = True) -> Quantized:
        """Quantize ``z``. With ``train_centers=False`` no gradient reaches the centers (the rate
        branch uses this: bits fall when one center drifts away from the data, a degenerate optimum
        that would collapse the rate)."""
        centers = self.centers if train_centers else self.centers.detach()
        soft = self.soft_assignment(z, centers)
        symbols = self.symbols(z)
        hard = nn.functional.one_hot(symbols, self.levels).to(soft.dtype)
        # Straight-through as in the paper, q = q_soft + stopgrad(q_hard - q_soft), but written as
        # stopgrad(q_hard) + (q_soft - stopgrad(q_soft)) so the forward value is exactly the hard one
        # (soft + (hard - soft) is not exact in floating point). Gradients reach z and the centers
        # only through the soft assignment; a gradient through centers[symbols] lets the centers
        # drift apart until one symbol takes almost every element.
        one_hot = hard + (soft - soft.detach())
        soft_values = (soft * centers).sum(-1)
        values = self.centers.detach()[symbols] + (soft_values - soft_values.detach())
        return Quantized(values=values, symbols=symbols, one_hot=one_hot)
