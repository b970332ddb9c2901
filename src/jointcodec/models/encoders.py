"""Edge encoders q(z|x): small residual networks that map an image to a C x h x w latent.

Every encoder ends in a BatchNorm (no activation), so the latent is roughly zero-mean, unit-variance
and sits on the quantizer's initial centers in [-2, 2].
"""

from __future__ import annotations

from torch import nn

from jointcodec.models.layers import conv_bn, residual_stages


class CifarEncoder(nn.Module):
    """Residual encoder for 32x32 images; downsamples by 4 to a ``latent_channels`` x 8 x 8 latent.

    stem 3x3 at full resolution -> stride-2 conv -> residual blocks at 1/2 resolution -> stride-2
    conv to the latent (+ BN). Residual work happens at 16x16, not 32x32: on a 2-core CPU the
    full-resolution blocks cost 4x as much for little gain. ``bottleneck`` inserts a wider 3x3 conv
    and a 1x1 projection before the latent (the AE-V2 style).
    """

    def __init__(self, stem: int, width: int, blocks: int, latent_channels: int,
                 bottleneck: int | None = None) -> None:
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, stem), conv_bn(stem, width, 3, stride=2))
        self.stages, ch = residual_stages(width, (width,), (blocks,))
        if bottleneck:
            self.head = nn.Sequential(conv_bn(ch, bottleneck, 3, stride=2),
                                      conv_bn(bottleneck, latent_channels, 1, relu=False))
        else:
            self.head = conv_bn(ch, latent_channels, 3, stride=2, relu=False)
        self.latent_channels = latent_channels

    def forward(self, x):
        return self.head(self.stages(self.stem(x)))


class ImageNetEncoder(nn.Module):
    """The paper's AE-V3 / AE-V4: the ResNet-18 stem and first stage, then one downsampling block.

    AE-V3: the downsampling block has ``latent_channels`` (32) channels, then BatchNorm.
    AE-V4: the block has ``block_channels`` (128) channels, then a 3x3 conv down to 32, then BatchNorm.
    The latent is at 1/8 of the input resolution.
    """

    def __init__(self, latent_channels: int = 32, block_channels: int | None = None) -> None:
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, 64, 7, stride=2), nn.MaxPool2d(3, stride=2, padding=1))
        block = block_channels or latent_channels
        self.stages, ch = residual_stages(64, (64, block), (2, 1))
        if block_channels:
            self.head = conv_bn(ch, latent_channels, 3, relu=False)
        else:
            self.head = nn.BatchNorm2d(ch)
        self.latent_channels = latent_channels

    def forward(self, x):
        return self.head(self.stages(self.stem(x)))
