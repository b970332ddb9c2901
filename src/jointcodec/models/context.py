"""The probability estimator (PE): a 3D masked convolutional context model over the latent volume.

The latent (C, H, W) is read as a 3D volume whose depth is the channel axis. Symbols are coded in
raster order: channel, then row, then column. A symbol's distribution may depend only on symbols that
come earlier in that order, so every kernel is masked:

* mask "A" (first layer) keeps the kernel taps strictly before the centre;
* mask "B" (later layers) also keeps the centre, which by then holds only past information.

Receptive field: with ``layers`` masked 3x3x3 convolutions, a symbol sees at most ``layers`` steps back
in each of channel, row and column (a causal box of (layers+1) x (2*layers+1) x (2*layers+1) minus the
future). With the defaults (4 layers) that is up to 4 previous channels and a 9x9 spatial window.

Parallel-decodable alternatives (preset ``context_args={"kind": ...}``, see ``models.registry.CONTEXTS``):

* ``ChannelContextModel`` ("channel"): the same network with masks that let a symbol see only *earlier
  channels*, so a whole channel plane is decoded in one step (16 steps for a 16 x 8 x 8 latent);
* ``CheckerboardContextModel`` ("checkerboard"): earlier channels plus, inside each plane, a checkerboard:
  the "anchor" squares ((row + column) even) see earlier channels only, the others also see the anchors
  around them; two steps per channel.

Every context model also states its decoding order (``decoding_steps``): which symbols the decoder can
produce together, one step after another (``jointcodec.entropy`` checks the order against the masks).
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

    Depth is the channel axis of the latent, so the taps at positive depth offsets are always masked
    out. The remaining depth slices (with a kernel of depth 3: the previous and the current channel)
    are computed as one 2D convolution over the stacked channels: conv2d is several times faster than
    conv3d on CPU, and the result equals a masked conv3d (tested).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, include_centre: bool = False,
                 mask: torch.Tensor | None = None) -> None:
        super().__init__(in_channels, out_channels, kernel, padding=kernel // 2)
        mask = causal_mask(kernel, include_centre) if mask is None else mask.float()
        if mask.shape != (kernel,) * 3 or mask[kernel // 2 + 1 :].any():
            raise ValueError(f"a context mask must be ({kernel},)*3 and never see later channels")
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, F, D, H, W) -> (N, out, D, H, W)."""
        return conv_over_past_channels(x, self.weight * self.mask, self.bias)


def conv_over_past_channels(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """A 3D 'same' convolution whose (already masked) kernel has no taps at later depths.

    x: (N, F, D, H, W), weight: (out, F, k, k, k). The depth offsets -k//2..0 are stacked into the input
    channels of one 2D convolution. Also the reference the fixed-point context model
    (``jointcodec.entropy``) is tested against, in float64 on integer-valued tensors.
    """
    n, f, depth, h, w = x.shape
    out_channels, kernel = weight.shape[0], weight.shape[-1]
    centre = kernel // 2
    count = centre + 1
    taps = weight[:, :, :count]  # depth offsets -centre..0 (the later ones are masked)
    weight_2d = taps.permute(0, 2, 1, 3, 4).reshape(out_channels, count * f, kernel, kernel)
    padded = F.pad(x, (0, 0, 0, 0, centre, 0))  # the channels before, zeros before the first
    stacked = torch.stack([padded[:, :, i : i + depth] for i in range(count)], dim=1)
    stacked = stacked.permute(0, 3, 1, 2, 4, 5).reshape(n * depth, count * f, h, w)
    out = F.conv2d(stacked, weight_2d, bias, padding=centre)
    return out.view(n, depth, out_channels, h, w).transpose(1, 2)


class ContextModel3D(nn.Module):
    """Predict each symbol's L-way distribution from the symbols before it.

    Input: the quantized latent values (N, C, H, W). Output: logits (N, C, H, W, L).
    """

    kind = "3d"  # the preset's context_args["kind"] (see models.registry.CONTEXTS)

    def __init__(self, levels: int, width: int = 24, layers: int = 4, kernel: int = 3) -> None:
        super().__init__()
        self.levels = levels
        self.first = self.make_conv(1, width, kernel, first=True)
        # Residual pairs of masked convs, as in Mentzer et al.; depth sets the receptive field.
        self.hidden = nn.ModuleList(self.make_conv(width, width, kernel, first=False) for _ in range(layers - 2))
        self.last = self.make_conv(width, levels, kernel, first=False)
        self.layers = layers
        self.width = width
        self.kernel = kernel

    def make_conv(self, in_channels: int, out_channels: int, kernel: int, first: bool) -> nn.Module:
        return MaskedConv3d(in_channels, out_channels, kernel, mask=self.layer_mask(kernel, first))

    @staticmethod
    def layer_mask(kernel: int, first: bool) -> torch.Tensor:
        """The taps a layer may use: mask "A" for the first layer (reads symbols), "B" for the others."""
        return causal_mask(kernel, include_centre=not first)

    def decoding_steps(self, shape: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(step, position class) of every symbol, each (C, H, W) int64.

        The decoder produces all symbols of a step together, steps in increasing order; a step's
        symbols share one position class (the index of the kernel set used there; 0 here). For the
        raster-causal masks this is the wavefront ``t = a*c + b*h + e*w`` of ``linear_schedule``:
        t = 4c + 2h + w for 3x3x3 kernels, 82 steps for a 16 x 8 x 8 latent instead of 1,024.
        """
        a, b, e = linear_schedule(self.layer_mask(self.kernel, True), self.layer_mask(self.kernel, False))
        c, h, w = _grid(shape)
        return a * c + b * h + e * w, torch.zeros(shape, dtype=torch.int64)

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


class ChannelContextModel(ContextModel3D):
    """Channel-conditional context: a symbol's distribution depends only on the channels before it.

    The first layer sees all spatial taps of the previous channels and nothing of the current one; the
    later layers also see the whole 3x3 neighbourhood in the current channel, whose activations by then
    carry information of earlier channels only. Every symbol of a channel plane is therefore
    conditionally independent of the others given the earlier channels, and the decoder evaluates and
    decodes one whole plane per step. It costs some rate (no spatial context within a plane); see
    ``docs/bitstream.md`` for the measured difference.
    """

    kind = "channel"

    @staticmethod
    def layer_mask(kernel: int, first: bool) -> torch.Tensor:
        centre = kernel // 2
        mask = torch.zeros((kernel,) * 3)
        mask[: centre if first else centre + 1] = 1.0
        return mask


class ParityMaskedConv3d(nn.Module):
    """One masked 3D convolution per square colour of a checkerboard over (row, column).

    ``per_class[0]`` computes the outputs at the "anchor" squares ((row + column) even), ``per_class[1]``
    those at the others.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, masks: list[torch.Tensor]) -> None:
        super().__init__()
        self.per_class = nn.ModuleList(MaskedConv3d(in_channels, out_channels, kernel, mask=m) for m in masks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        anchor, other = (conv(x) for conv in self.per_class)
        return torch.where(checkerboard(*x.shape[-2:], device=x.device), other, anchor)


def checkerboard(height: int, width: int, device: torch.device | None = None) -> torch.Tensor:
    """(H, W) bool, True where (row + column) is odd (the non-anchor squares)."""
    rows, cols = torch.arange(height, device=device), torch.arange(width, device=device)
    return (rows[:, None] + cols[None, :]) % 2 == 1


class CheckerboardContextModel(ContextModel3D):
    """Earlier channels, plus a checkerboard inside each plane: two decoding steps per channel.

    Anchor squares ((row + column) even) are predicted from the earlier channels only; then the other
    squares from the earlier channels and the anchors of their own channel (the four neighbours, in the
    first layer). Later layers at an anchor read only anchors of the current plane (same-colour taps),
    later layers elsewhere read the whole neighbourhood. Each layer has one kernel per square colour.
    """

    kind = "checkerboard"

    def make_conv(self, in_channels: int, out_channels: int, kernel: int, first: bool) -> nn.Module:
        return ParityMaskedConv3d(in_channels, out_channels, kernel, self.class_masks(kernel, first))

    @staticmethod
    def class_masks(kernel: int, first: bool) -> list[torch.Tensor]:
        """[anchor mask, other mask] of a layer."""
        centre = kernel // 2
        d, h, w = torch.meshgrid(*(torch.arange(kernel) - centre,) * 3, indexing="ij")
        earlier = d < 0
        same_colour = (d == 0) & ((h + w) % 2 == 0)
        other_colour = (d == 0) & ((h + w) % 2 == 1)
        if first:
            return [earlier.float(), (earlier | other_colour).float()]
        return [(earlier | same_colour).float(), (d <= 0).float()]

    def decoding_steps(self, shape: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Step 2c: the anchors of channel c; step 2c + 1: its other squares."""
        c, h, w = _grid(shape)
        colour = (h + w) % 2
        return 2 * c + colour, colour


def _grid(shape: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return torch.meshgrid(*(torch.arange(int(n)) for n in shape), indexing="ij")


def linear_schedule(first_mask: torch.Tensor, later_mask: torch.Tensor) -> tuple[int, int, int]:
    """Smallest (a, b, e), by e then b then a, with every first-layer tap in an earlier step of
    ``t = a*c + b*h + e*w`` and every later-layer tap in an earlier or the same step.

    The first layer reads symbols, so its taps must be decoded already; later layers read activations,
    which the decoder computes layer by layer within a step. 3x3x3 raster masks give (4, 2, 1); the
    channel masks give (1, 0, 0).
    """
    centre = first_mask.shape[0] // 2
    first = torch.nonzero(first_mask > 0) - centre
    later = torch.nonzero(later_mask > 0) - centre
    bound = 4 * first_mask.shape[0] ** 2
    for e in range(bound):
        for b in range(bound):
            for a in range(1, bound):
                coefficients = torch.tensor([a, b, e])
                if (first @ coefficients < 0).all() and (later @ coefficients <= 0).all():
                    return a, b, e
    raise ValueError("these masks admit no linear decoding order")
