"""Reconstruction decoders p(x | z_hat): rebuild an image on the server from the decoded latent.

The decoder reads the same center values the classifier reads, so attaching one changes neither the
bitstream nor the labels. It is shipped as its own weights file beside a codec checkpoint
(``jointcodec.reconstruction.files``), never inside ``model.safetensors``.

``UpsamplingDecoder``: 3x3 conv -> residual block at the latent's resolution -> one sub-pixel
(PixelShuffle) step per factor of 2, each followed by a residual block -> 3x3 conv -> sigmoid.
Sub-pixel steps instead of transposed convolutions: no checkerboard artefacts, and on a CPU one 3x3 conv
at the low resolution is cheaper than upsampling first. The sigmoid keeps the output in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from jointcodec.errors import ConfigError


class _Residual(nn.Module):
    """Two 3x3 convs with a ReLU between and an identity shortcut (no BatchNorm: a regression net)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(width, width, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


class UpsamplingDecoder(nn.Module):
    """(N, C, h, w) latent values -> (N, 3, h * upsample, w * upsample) images in [0, 1].

    ``widths[i]`` is the width at scale i (the latent's resolution first); one sub-pixel step of 2x per
    further entry, so ``upsample == 2 ** (len(widths) - 1)``: 4x (8x8 -> 32x32, CIFAR presets) with three
    widths, 8x (28x28 -> 224x224, ImageNet presets) with four.
    """

    def __init__(self, latent_channels: int, widths: tuple[int, ...] = (64, 32, 16)) -> None:
        super().__init__()
        if len(widths) < 1 or min(widths) < 1:
            raise ConfigError(f"decoder widths must be positive, got {widths}")
        self.latent_channels = latent_channels
        self.upsample = 2 ** (len(widths) - 1)
        layers: list[nn.Module] = [nn.Conv2d(latent_channels, widths[0], 3, padding=1), nn.ReLU(inplace=True),
                                   _Residual(widths[0])]
        for before, after in zip(widths, widths[1:], strict=False):
            layers += [nn.Conv2d(before, 4 * after, 3, padding=1), nn.PixelShuffle(2), nn.ReLU(inplace=True)]
            if after >= 32:  # a residual block at the higher resolutions only where it is wide enough to help
                layers.append(_Residual(after))
        layers.append(nn.Conv2d(widths[-1], 3, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        if values.ndim != 4 or values.shape[1] != self.latent_channels:
            raise ConfigError(f"the decoder reads (N, {self.latent_channels}, h, w) latent values, "
                              f"got {tuple(values.shape)}")
        return torch.sigmoid(self.body(values.float()))


DECODERS: dict[str, Callable[..., nn.Module]] = {"upsampling": UpsamplingDecoder}


def default_decoder_args(latent_channels: int, image_size: int, latent_size: int) -> dict:
    """The decoder for a model whose ``latent_size`` latent comes from an ``image_size`` image."""
    factor = image_size // latent_size
    if factor < 1 or factor * latent_size != image_size or factor & (factor - 1):
        raise ConfigError(f"no decoder for a {latent_size}px latent of a {image_size}px image "
                          "(the factor must be a power of 2)")
    steps = int(math.log2(factor))
    # CIFAR (4x): 64 -> 32 -> 16 channels, ~0.2 M parameters, ~20 M MACs per 32x32 image.
    # ImageNet (8x): one more step, narrower at the top because 224x224 has 49x the pixels.
    widths = (64, 32, 16) if steps <= 2 else (64, 48, 32, 16)
    return {"latent_channels": latent_channels, "widths": list(widths[: steps + 1])}


def create_decoder(kind: str, args: dict) -> nn.Module:
    if kind not in DECODERS:
        raise ConfigError(f"unknown decoder kind {kind!r}; choose from {', '.join(sorted(DECODERS))}")
    args = {k: tuple(v) if isinstance(v, list) else v for k, v in args.items()}
    try:
        return DECODERS[kind](**args)
    except TypeError as err:
        raise ConfigError(f"bad arguments for a {kind} decoder: {err}") from err


@torch.no_grad()
def reconstruct(decoder: nn.Module, values: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Latent center values (N, C, h, w) -> images (N, 3, H, W) float in [0, 1]."""
    decoder.eval()
    return torch.cat([decoder(values[i:i + batch_size]) for i in range(0, len(values), batch_size)])


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1] -> uint8, rounded (what a PNG holds and what PSNR is measured on)."""
    return (images.clamp(0, 1) * 255).round().to(torch.uint8)
