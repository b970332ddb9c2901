"""Server-side classifiers p(y | z_hat): the rest of a ResNet, run on the decoded latent."""

from __future__ import annotations

import math

import torch
from torch import nn

from jointcodec.models.layers import conv_bn, residual_stages


class LatentResNet(nn.Module):
    """A ResNet that starts at the latent's resolution: 3x3 stem -> residual stages -> pool -> linear."""

    def __init__(self, latent_channels: int, num_classes: int, widths: tuple[int, ...],
                 blocks: tuple[int, ...], dropout: float = 0.0) -> None:
        super().__init__()
        self.stem = conv_bn(latent_channels, widths[0])
        self.stages, ch = residual_stages(widths[0], widths, blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(ch, num_classes)

    def forward(self, z):
        return self.fc(self.dropout(self.pool(self.stages(self.stem(z))).flatten(1)))


class ReceiverEnsemble(nn.Module):
    """Several receivers on the same latent that vote: the output is the log of their mean probability (log
    probabilities are logits to softmax and argmax). The bits, and so the edge, are the same as for one.

    ``solo``: the index of a member that answers alone. ``jointcodec add-receiver`` sets it while it trains a new
    member, so that member is fitted on its own (against the labels, not against what the frozen members already
    get right on their training images), and to measure each member apart.
    """

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.solo: int | None = None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.solo is not None:
            return self.members[self.solo](z)
        log_probs = torch.stack([member(z).float().log_softmax(1) for member in self.members])
        return log_probs.logsumexp(0) - math.log(len(self.members))
