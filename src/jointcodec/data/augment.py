"""Batch augmentation and normalisation on uint8 tensors (no per-image PIL work: 2 CPU cores).

The batch may live on any device; the random numbers are always drawn from a CPU generator and then moved, so
a run draws the same flips, shifts and squares on a GPU as on a CPU, and the GPU is not left waiting on the
host to augment."""

from __future__ import annotations

import torch
from torch.nn import functional as F

# CIFAR statistics; for other data sets they are close enough, and the encoder's BatchNorm adapts.
MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> float, standardised per channel."""
    return (images.float() / 255.0 - MEAN.to(images.device)) / STD.to(images.device)


def flip_and_translate(images: torch.Tensor, translate: int, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flip and random translation by up to ``translate`` pixels (reflect padding)."""
    n, _, h, w = images.shape
    flip = (torch.rand(n, generator=generator) < 0.5).to(images.device)
    images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
    if translate <= 0:
        return images
    padded = F.pad(images.float(), (translate,) * 4, mode="reflect").to(images.dtype)
    device = images.device
    dx = torch.randint(0, 2 * translate + 1, (n,), generator=generator).to(device)
    dy = torch.randint(0, 2 * translate + 1, (n,), generator=generator).to(device)
    # Gather each image's crop with one advanced index instead of a Python loop.
    rows = (dy.view(n, 1) + torch.arange(h, device=device)).view(n, 1, h, 1)
    cols = (dx.view(n, 1) + torch.arange(w, device=device)).view(n, 1, 1, w)
    batch = torch.arange(n, device=device).view(n, 1, 1, 1)
    channels = torch.arange(images.shape[1], device=device).view(1, -1, 1, 1)
    return padded[batch, channels, rows, cols]


def cutout(images: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Each image with one ``size`` x ``size`` square set to zero (the data set's mean, once normalised), its
    centre anywhere in the image so the square may be clipped at the border (DeVries and Taylor, 2017).
    ``size`` 0 returns the batch as it is and draws no random numbers, so runs without it are unchanged."""
    if size <= 0:
        return images
    n, _, h, w = images.shape
    device = images.device
    cy = torch.randint(0, h, (n, 1, 1), generator=generator).to(device)
    cx = torch.randint(0, w, (n, 1, 1), generator=generator).to(device)
    top, left = cy - size // 2, cx - size // 2
    rows = torch.arange(h, device=device).view(1, h, 1)
    cols = torch.arange(w, device=device).view(1, 1, w)
    inside = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    return images.masked_fill(inside.unsqueeze(1), 0)


def downscale(images: torch.Tensor, size: int) -> torch.Tensor:
    """A float batch resized to ``size`` x ``size``, antialiased (a plain bilinear resize would alias fine texture)."""
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
