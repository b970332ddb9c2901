"""Server-side classifiers p(y | z_hat): the rest of a ResNet, run on the decoded latent."""

from __future__ import annotations

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
