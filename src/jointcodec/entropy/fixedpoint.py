"""The context model in exact fixed-point arithmetic: the same integers on every machine.

The arithmetic decoder must see exactly the probabilities the encoder used, or it decodes garbage. Float
convolutions do not guarantee that: their summation order changes with batch size, thread count, CPU and
library version. So the coder never sees the float network. It sees this integer version of it:

* the symbols enter as integer codes ``round(center * 2**IN_BITS)``;
* weights are ``round(w * 2**WEIGHT_BITS)``, biases are rounded to the accumulator's scale;
* every convolution runs in float64 on integer-valued tensors. A bound check at construction proves every
  accumulator (hence every partial sum, in any order) stays below 2**53 in magnitude, so each sum is an
  exact integer whatever the order, FMA or blocking: float64 is used as a fast exact integer machine;
* activations are requantized by ``floor(acc / 2**shift)`` (exact: a power-of-two scale and a floor; the
  bias carries half an output unit, so this rounds to nearest);
* integer logits (units of 2**-LOGIT_BITS nat) become integer frequencies through an exp lookup table
  computed with ``decimal`` (software arithmetic, identical everywhere); every symbol gets at least 1 and
  the frequencies sum to exactly 2**FREQ_BITS.

The decoding order comes from the context model (``decoding_steps``) and is checked against its masks
(``FixedPointContext.verify_order``). ``docs/bitstream.md`` describes the whole scheme.
"""

from __future__ import annotations

import decimal
import functools
import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import torch

from jointcodec.errors import ConfigError
from jointcodec.models.context import ContextModel3D, MaskedConv3d

IN_BITS = 8  # symbol codes: round(center * 2**8)
WEIGHT_BITS = 14  # weights: round(w * 2**14)
ACT_BITS = 10  # hidden activations: units of 2**-10
LOGIT_BITS = 8  # logits: units of 2**-8 nat
EXP_BITS = 16  # exp table: round(2**16 * exp(-d / 2**LOGIT_BITS))
FREQ_BITS = 16  # every distribution sums to exactly 2**16
FREQ_TOTAL = 1 << FREQ_BITS
EXACT_LIMIT = 2.0**53  # integers below this are exact in float64
SCHEME = "jointcodec-fixedpoint-v1"
WORKING_SET_BYTES = 4 << 20  # largest gathered block per layer: keeps a step's data in cache


@functools.lru_cache(maxsize=1)
def exp_table() -> np.ndarray:
    """``table[d] = round(2**EXP_BITS * exp(-d / 2**LOGIT_BITS))`` (half-even) until it reaches 0.

    Computed with ``decimal`` at 40 significant digits: software arithmetic with correctly rounded exp,
    so every machine builds the same table (a test pins its SHA-256).
    """
    context = decimal.Context(prec=40, rounding=decimal.ROUND_HALF_EVEN)
    scale = decimal.Decimal(1 << EXP_BITS)
    step = decimal.Decimal(1 << LOGIT_BITS)
    values = []
    d = 0
    while True:
        scaled = context.multiply(context.exp(context.divide(-d, step)), scale)
        value = int(scaled.to_integral_value(rounding=decimal.ROUND_HALF_EVEN, context=context))
        if value == 0:
            break
        values.append(value)
        d += 1
    values.append(0)
    return np.asarray(values, dtype=np.int64)


def frequencies(logits: np.ndarray) -> np.ndarray:
    """Integer logits (..., L) -> integer frequencies (..., L), each >= 1, summing to 2**FREQ_BITS.

    ``f_i = 1 + floor(e_i * (2**16 - L) / sum(e))`` with ``e_i = exp_table[max(z) - z_i]``; the few
    units left over by the floors go to the most probable symbol (the first, on ties).
    """
    logits = np.asarray(logits, dtype=np.int64)
    levels = logits.shape[-1]
    if levels == 2:
        return _binary_frequencies(logits)
    table = exp_table()
    gap = np.minimum(logits.max(-1, keepdims=True) - logits, len(table) - 1)
    weights = table[gap]
    freq = 1 + weights * (FREQ_TOTAL - levels) // weights.sum(-1, keepdims=True)
    leftover = FREQ_TOTAL - freq.sum(-1, keepdims=True)
    freq += leftover * (logits.argmax(-1)[..., None] == np.arange(levels))
    return freq


@functools.lru_cache(maxsize=1)
def _binary_table() -> np.ndarray:
    """For L = 2: the less probable symbol's frequency as a function of the logit gap (the general formula)."""
    table = exp_table()
    return 1 + table * (FREQ_TOTAL - 2) // (table[0] + table)


def _binary_frequencies(logits: np.ndarray) -> np.ndarray:
    """``frequencies`` for L = 2, by table lookup on the logit gap: the same integers, fewer array passes."""
    gap = logits[..., 1] - logits[..., 0]
    other = _binary_table()[np.minimum(np.abs(gap), len(exp_table()) - 1)]
    second = np.where(gap > 0, FREQ_TOTAL - other, other)  # symbol 0 wins ties, as argmax does
    return np.stack([FREQ_TOTAL - second, second], axis=-1)


def code_length_bits(freq: np.ndarray, symbols: np.ndarray) -> np.ndarray:
    """Ideal code length (bits) of ``symbols`` (N, S) under integer frequencies (N, S, L), per image."""
    chosen = np.take_along_axis(freq, symbols[..., None].astype(np.int64), -1)[..., 0]
    return (FREQ_BITS - np.log2(chosen)).sum(-1)


@dataclass
class IntLayer:
    """One masked convolution in integers: ``out = floor((conv(x, weight) + bias) / 2**shift)``.

    ``weights``, ``biases`` and ``masks`` hold one entry per position class (one for the 3D and channel
    contexts, two for the checkerboard: anchor squares and the others).
    """

    weights: list[torch.Tensor]  # (out, in, k, k, k) float64 holding integers, masked taps zero
    biases: list[torch.Tensor]  # (out,) float64 holding integers, at the accumulator's scale
    masks: list[torch.Tensor]  # (k, k, k) bool
    shift: int


@dataclass
class Step:
    """One decoding step: the raster indices (c*H*W + h*W + w, ascending) of its symbols and their class."""

    raster: torch.Tensor
    position_class: int
    plan: dict = field(default_factory=dict, repr=False)  # gather indices, filled by IncrementalContext


def _to_int(values: torch.Tensor, bits: int) -> torch.Tensor:
    """round(values * 2**bits) in float64 (a power-of-two scaling is exact; rint rounds half to even)."""
    return torch.round(values.detach().to(torch.float64).cpu() * float(2**bits))


def requantize(acc: torch.Tensor, shift: int) -> torch.Tensor:
    """floor(acc / 2**shift), exact for integer-valued float64 (in place)."""
    return acc.mul_(2.0**-shift).floor_()


def _per_class(conv: torch.nn.Module) -> list[MaskedConv3d]:
    return list(conv.per_class) if hasattr(conv, "per_class") else [conv]


class FixedPointContext:
    """The integer twin of a trained context model (and the quantizer's centers), for the coder."""

    def __init__(self, context: ContextModel3D, centers: torch.Tensor) -> None:
        self.levels = int(context.levels)
        self.kind = context.kind
        self.kernel = int(context.kernel)
        self.width = int(context.width)
        self.codes = _to_int(centers, IN_BITS)  # (L,) symbol -> integer input value
        self._decoding_steps = context.decoding_steps
        convs = [context.first, *context.hidden, context.last]
        scales = [IN_BITS] + [ACT_BITS] * (len(convs) - 1)
        out_scales = [ACT_BITS] * (len(convs) - 1) + [LOGIT_BITS]
        self.layers = []
        for conv, scale, out_scale in zip(convs, scales, out_scales, strict=True):
            shift = scale + WEIGHT_BITS - out_scale
            parts = _per_class(conv)
            # The bias carries half an output unit, so the floor of the requantization rounds to nearest.
            self.layers.append(IntLayer(
                weights=[_to_int(c.weight * c.mask, WEIGHT_BITS) for c in parts],
                biases=[_to_int(c.bias, scale + WEIGHT_BITS) + 2.0 ** (shift - 1) for c in parts],
                masks=[c.mask.bool() for c in parts], shift=shift))
        self.check_bounds()
        self.fingerprint = self._fingerprint(context, centers)
        self._orders: dict[tuple[int, ...], list[Step]] = {}  # per shape (and joined groups per batch size)

    def _fingerprint(self, context: ContextModel3D, centers: torch.Tensor) -> bytes:
        """SHA-256 (first 8 bytes) of the scheme, the context's kind and size, its weights and the centers."""
        digest = hashlib.sha256()
        meta = {"scheme": SCHEME, "kind": self.kind, "levels": self.levels, "kernel": self.kernel,
                "width": self.width, "layers": len(self.layers)}
        digest.update(json.dumps(meta, sort_keys=True).encode())
        digest.update(centers.detach().cpu().to(torch.float32).contiguous().numpy().tobytes())
        for name, tensor in sorted(context.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().to(torch.float32).contiguous().numpy().tobytes())
        return digest.digest()[:8]

    def check_bounds(self) -> None:
        """Prove that no accumulator can reach 2**53 for any symbols (interval arithmetic, worst case)."""
        bound = float(self.codes.abs().max())
        for i, layer in enumerate(self.layers):
            acc = max(float((w.abs().flatten(1).sum(1) * bound + b.abs()).max())
                      for w, b in zip(layer.weights, layer.biases, strict=True))
            if acc >= EXACT_LIMIT:
                raise ConfigError(f"context layer {i}: fixed-point accumulators may reach {acc:.3g} >= 2**53; "
                                  "the weights or centers are too large for exact coding")
            out = acc / 2**layer.shift + 1
            bound = out if i == 0 else bound + out  # hidden layers are residual: x + relu(...)

    # --- the decoding order ------------------------------------------------------------------
    def coding_order(self, shape: tuple[int, int, int]) -> list[Step]:
        """The decoding steps, in order (the context model's ``decoding_steps``, checked against the masks)."""
        shape = tuple(int(v) for v in shape)
        if shape not in self._orders:
            step, position_class = (t.flatten() for t in self._decoding_steps(shape))
            self.verify_order(shape, step, position_class)
            order = torch.argsort(step * step.numel() + torch.arange(step.numel()))
            self._orders[shape] = [Step(raster, int(position_class[raster[0]]))
                                   for raster in torch.split(order, torch.bincount(step).tolist()) if raster.numel()]
        return self._orders[shape]

    def verify_order(self, shape: tuple[int, int, int], step: torch.Tensor, position_class: torch.Tensor) -> None:
        """Every first-layer tap must lie in an earlier step, every later-layer tap in an earlier or the same
        step, and a step's symbols must share one position class; else the order cannot decode."""
        channels, height, width = shape
        c, h, w = (t.flatten() for t in torch.meshgrid(*(torch.arange(n) for n in shape), indexing="ij"))
        r = self.kernel // 2
        for i, layer in enumerate(self.layers):
            for cls, mask in enumerate(layer.masks):
                at = position_class == cls
                for dc, dh, dw in (torch.nonzero(mask) - r).tolist():
                    qc, qh, qw = c[at] + dc, h[at] + dh, w[at] + dw
                    inside = (qc >= 0) & (qc < channels) & (qh >= 0) & (qh < height) & (qw >= 0) & (qw < width)
                    source = step[((qc * height + qh) * width + qw)[inside]]
                    target = step[at][inside]
                    ok = (source < target) if i == 0 else (source <= target)
                    if not bool(ok.all()):
                        raise ConfigError(f"the {self.kind} context's decoding order is not causal for its masks")
        for value in torch.unique(step):
            if torch.unique(position_class[step == value]).numel() != 1:
                raise ConfigError(f"the {self.kind} context mixes position classes within a decoding step")

    # --- the full pass (encoder side: all symbols known) ---------------------------------------
    @torch.no_grad()
    def logits(self, symbols: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """Integer logits (N, C, H, W, L) int64 of every symbol given the symbols before it.

        The decoder's own evaluation (``IncrementalContext``) with every symbol known in advance, so
        consecutive decoding steps of one position class can be evaluated together, in groups whose
        gathered inputs stay under WORKING_SET_BYTES (cache-friendly, few Python-level steps).
        """
        symbols = torch.as_tensor(symbols, dtype=torch.int64)
        count, shape = len(symbols), tuple(symbols.shape[1:])
        size = shape[0] * shape[1] * shape[2]
        batch_size = batch_size or self.decode_batch_size(shape)
        out = torch.zeros(count, size, self.levels, dtype=torch.int64)
        states: dict[int, IncrementalContext] = {}
        for start in range(0, count, batch_size):
            chunk = symbols[start:start + batch_size].reshape(-1, size)
            if len(chunk) not in states:
                states[len(chunk)] = IncrementalContext(self, len(chunk), shape)
            state = states[len(chunk)]
            state.set_symbols(torch.arange(size), chunk)
            for group in self._groups(shape, len(chunk)):
                out[start:start + len(chunk), group.raster] = state.step_logits(group)
        return out.view(count, *shape, self.levels)

    def bytes_per_position(self) -> int:
        """Bytes the widest layer gathers for one position of one image (float64)."""
        return 8 * max(int(m.sum()) * layer.weights[0].shape[1] for layer in self.layers for m in layer.masks)

    def decode_batch_size(self, shape: tuple[int, int, int]) -> int:
        """Images to decode together: the largest step's gathered block about WORKING_SET_BYTES."""
        largest = max(len(step.raster) for step in self.coding_order(shape))
        return max(64, min(1000, WORKING_SET_BYTES // (largest * self.bytes_per_position())))

    def _groups(self, shape: tuple[int, int, int], count: int) -> list[Step]:
        """Consecutive steps of one class joined while their gathered block stays under WORKING_SET_BYTES."""
        key = (*shape, -count)
        if key not in self._orders:
            self._orders[key] = self._join_steps(shape, count)
        return self._orders[key]

    def _join_steps(self, shape: tuple[int, int, int], count: int) -> list[Step]:
        limit = WORKING_SET_BYTES // (count * self.bytes_per_position())
        groups: list[Step] = []
        for step in self.coding_order(shape):
            last = groups[-1] if groups else None
            if last and last.position_class == step.position_class and len(last.raster) + len(step.raster) <= limit:
                groups[-1] = Step(torch.cat([last.raster, step.raster]), step.position_class)
            else:
                groups.append(step)
        return groups


class IncrementalContext:
    """Evaluate the integer network only at the symbols of the next decoding step (decoder side).

    Activations live in zero-padded buffers laid out (positions, features, N). A step runs the layers one
    after another over its k positions: one gather of the layer's input at every tap of every position
    (earlier steps, or this step for the layers after the first) gives a (k, taps * features, N) block, and
    one batched matrix product with the flattened integer kernel of the step's position class gives the
    (k, out, N) accumulators; then requantize and store. Every value equals what any other evaluation order
    gives, because all arithmetic is exact (tests compare with the float model's convolution code).
    """

    def __init__(self, fixed: FixedPointContext, count: int, shape: tuple[int, int, int]) -> None:
        self.fixed = fixed
        r = fixed.kernel // 2
        channels, height, width = shape
        padded = (channels + r, height + 2 * r, width + 2 * r)
        size = padded[0] * padded[1] * padded[2]
        stride = torch.tensor([padded[1] * padded[2], padded[2], 1])
        # Only the zero padding must be initialised: every interior position is written (by its own step,
        # or by set_symbols) before any tap reads it, so a context can be reused for the next batch as is.
        self.inputs = torch.empty(size, 1, count, dtype=torch.float64)
        self.buffers = [torch.empty(size, fixed.width, count, dtype=torch.float64) for _ in fixed.layers[:-1]]
        self.taps, self.kernels, self.biases = [], [], []  # [layer][class]
        for layer in fixed.layers:
            taps, kernels = [], []
            for weight, mask in zip(layer.weights, layer.masks, strict=True):
                taps.append(((torch.nonzero(mask) - r) * stride).sum(1))
                weight = weight[:, :, mask]  # (out, in, taps) -> (out, taps * in)
                kernels.append(weight.permute(0, 2, 1).reshape(weight.shape[0], -1).contiguous())
            self.taps.append(taps)
            self.kernels.append(kernels)
            self.biases.append([b.view(1, -1, 1) for b in layer.biases])
        c, h, w = torch.meshgrid(torch.arange(channels), torch.arange(height), torch.arange(width), indexing="ij")
        self.raster_to_padded = ((c + r) * stride[0] + (h + r) * stride[1] + (w + r)).flatten()
        padding = torch.ones(size, dtype=torch.bool)
        padding[self.raster_to_padded] = False
        for buffer in (self.inputs, *self.buffers):
            buffer[padding] = 0.0

    def _plan(self, step: Step) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """A step's padded positions and, per layer, the flat gather index of every tap of every position."""
        if "index" not in step.plan:  # the same for every batch of this model and shape: computed once
            positions = self.raster_to_padded[step.raster]
            step.plan["positions"] = positions
            step.plan["index"] = [(positions[:, None] + taps[step.position_class][None, :]).flatten()
                                  for taps in self.taps]
        return step.plan["positions"], step.plan["index"]

    def _layer(self, i: int, source: torch.Tensor, index: torch.Tensor, k: int, cls: int) -> torch.Tensor:
        gathered = source.index_select(0, index).view(k, -1, source.shape[-1])  # (k, taps * in, N)
        kernel, bias = self.kernels[i][cls], self.biases[i][cls]
        acc = torch.baddbmm(bias.expand(k, -1, gathered.shape[-1]), kernel.expand(k, -1, -1), gathered)
        return requantize(acc, self.fixed.layers[i].shift)

    @torch.no_grad()
    def step_logits(self, step: Step) -> torch.Tensor:
        """Integer logits (N, k, L) int64 of the k symbols of one decoding step."""
        positions, index = self._plan(step)
        k, cls = positions.numel(), step.position_class
        x = self._layer(0, self.inputs, index[0], k, cls).clamp_min_(0)
        self.buffers[0][positions] = x
        for i in range(1, len(self.fixed.layers) - 1):
            x = x + self._layer(i, self.buffers[i - 1], index[i], k, cls).clamp_min_(0)
            self.buffers[i][positions] = x
        logits = self._layer(len(self.fixed.layers) - 1, self.buffers[-1], index[-1], k, cls)
        return logits.permute(2, 0, 1).to(torch.int64)

    def set_symbols(self, where: torch.Tensor | Step, symbols: torch.Tensor) -> None:
        """Record symbols (N, k) at raster indices ``where`` (or at a decoding step's positions)."""
        positions = self._plan(where)[0] if isinstance(where, Step) else self.raster_to_padded[where]
        self.inputs[positions, 0, :] = self.fixed.codes[symbols.T]
