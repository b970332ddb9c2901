"""The probability estimator (PE): a 3D masked convolutional context model over the latent volume.

The latent (C, H, W) is read as a 3D volume whose depth is the channel axis. Symbols are coded in
raster order: channel, then row, then column. A symbol's distribution may depend only on symbols that
come earlier in that order, so every kernel is masked:

* mask "A" (first layer) keeps the kernel taps strictly before the centre;
* mask "B" (later layers) also keeps the centre, which by then holds only past information.

Receptive field: with ``layers`` masked 3x3x3 convolutions, a symbol sees at most ``layers`` steps back
in each of channel, row and column (a causal box of (layers+1) x (2*layers+1) x (2*layers+1) minus the
future). With the defaults (4 layers) that is up to 4 previous channels and a 9x9 spatial window.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

LN2 = math.log(2.0)


def causal_mask(kernel: int, include_centre: bool) -> torch.Tensor:
    """(k, k, k) mask of the taps that precede the centre in (depth, row, column) raster order."""
    centre = kernel // 2
    d, h, w = torch.meshgrid(*(torch.arange(kernel) - centre,) * 3, indexing="ij")
    before = (d < 0) | ((d == 0) & (h < 0)) | ((d == 0) & (h == 0) & (w < 0))
    if include_centre:
        before |= (d == 0) & (h == 0) & (w == 0)
    return before.float()


class MaskedConv3d(nn.Conv3d):
    """A 3D convolution whose kernel only sees the past of the coding order.

    Depth is the channel axis of the latent, so with a kernel of depth 3 the taps at depth +1 are
    always masked out. The remaining two depth slices are computed as one 2D convolution over the
    (previous channel, current channel) pair: conv2d is several times faster than conv3d on CPU,
    and the result equals a masked conv3d (tested).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, include_centre: bool) -> None:
        super().__init__(in_channels, out_channels, kernel, padding=kernel // 2)
        self.register_buffer("mask", causal_mask(kernel, include_centre), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, F, D, H, W) -> (N, out, D, H, W)."""
        n, f, depth, h, w = x.shape
        weight = self.weight * self.mask
        centre = self.kernel_size[0] // 2
        taps = weight[:, :, centre - 1 : centre + 1]  # depth offsets -1 and 0 (the rest are masked)
        weight_2d = taps.permute(0, 2, 1, 3, 4).reshape(self.out_channels, 2 * f, *taps.shape[-2:])
        previous = F.pad(x, (0, 0, 0, 0, 1, 0))[:, :, :depth]  # the channel before, zeros for the first
        stacked = torch.cat([previous, x], dim=1).view(n, 2, f, depth, h, w)
        stacked = stacked.permute(0, 3, 1, 2, 4, 5).reshape(n * depth, 2 * f, h, w)
        out = F.conv2d(stacked, weight_2d, self.bias, padding=self.padding[1:])
        return out.view(n, depth, self.out_channels, h, w).transpose(1, 2)


class ContextModel3D(nn.Module):
    """Predict each symbol's L-way distribution from the symbols before it.

    Input: the quantized latent values (N, C, H, W). Output: logits (N, C, H, W, L).
    """

    def __init__(self, levels: int, width: int = 24, layers: int = 4, kernel: int = 3) -> None:
        super().__init__()
        self.levels = levels
        self.first = MaskedConv3d(1, width, kernel, include_centre=False)
        # Residual pairs of masked convs, as in Mentzer et al.; depth sets the receptive field.
        self.hidden = nn.ModuleList(
            MaskedConv3d(width, width, kernel, include_centre=True) for _ in range(layers - 2)
        )
        self.last = MaskedConv3d(width, levels, kernel, include_centre=True)
        self.layers = layers

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.first(latent.unsqueeze(1)))
        for conv in self.hidden:
            x = x + F.relu(conv(x))
        logits = self.last(x)  # (N, L, C, H, W)
        return logits.permute(0, 2, 3, 4, 1)

    @staticmethod
    def bits(logits: torch.Tensor, one_hot: torch.Tensor) -> torch.Tensor:
        """Bits of each image under the model: cross-entropy of the (straight-through) one-hot symbols.

        The forward value is the exact code length of the hard symbols; the gradient also reaches
        the encoder through the soft assignment carried by ``one_hot``.
        """
        log_probs = F.log_softmax(logits.float(), dim=-1)
        return -(one_hot.float() * log_probs).flatten(1).sum(1) / LN2
