"""Patch whitening (airbench): a first convolution whose filters are the principal directions of the data's patches.

Its outputs are decorrelated from the first step, so the layers after it do not spend early epochs undoing the
strong correlation of neighbouring pixels and colour channels.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

PATCH_BUDGET = 250_000  # patches enough for a stable covariance of a few hundred dimensions, in bounded memory


@torch.no_grad()
def patch_eigenbasis(images: torch.Tensor, kernel: int, count: int, max_patches: int | None = PATCH_BUDGET,
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``count`` largest eigenvalues of the covariance of ``images``' kernel x kernel patches (N x C x H x W,
    standardised), ascending, and their eigenvectors as filters (count x C x kernel x kernel, unit norm). The
    patches come from as many leading images as ``max_patches`` allows (None: all)."""
    channels, height, width = images.shape[1:]
    dims = channels * kernel * kernel
    if not 1 <= count <= dims:
        raise ValueError(f"{count} filters asked of {dims}-dimensional patches")
    positions = (height - kernel + 1) * (width - kernel + 1)
    used = (images if max_patches is None else images[: max(1, max_patches // positions)]).double()
    patches = F.unfold(used, kernel).transpose(1, 2).reshape(-1, dims)  # one row per patch, (C, kh, kw) order
    patches = patches - patches.mean(0)
    eigenvalues, eigenvectors = torch.linalg.eigh(patches.T @ patches / len(patches))  # ascending
    top = slice(dims - count, dims)
    return eigenvalues[top], eigenvectors[:, top].T.reshape(count, channels, kernel, kernel)


@torch.no_grad()
def whiten_first_conv(module: nn.Module, images: torch.Tensor) -> nn.Conv2d:
    """Start ``module``'s first convolution as +/- the leading principal directions of ``images``' patches (a
    ReLU keeps either sign), each filter at the norm of the layer's own random initialisation: a BatchNorm after
    it standardises every output, so only the directions matter, and the norm keeps the layer's step size as
    before. Odd leftover filters keep their random start. Returns the layer."""
    conv = next((m for m in module.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None or conv.in_channels != images.shape[1] or conv.groups != 1:
        raise ValueError("the model's first convolution does not read the images' channels")
    pairs = conv.out_channels // 2
    _, directions = patch_eigenbasis(images, conv.kernel_size[0], pairs)
    norm = conv.weight.flatten(1).norm(dim=1).mean()
    filters = (directions * norm).to(conv.weight.dtype)
    conv.weight[: 2 * pairs].copy_(torch.cat([filters, -filters]))
    return conv
