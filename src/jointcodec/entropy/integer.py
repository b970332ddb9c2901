"""The integer context model in numpy: the part of the coder that both the server and the torch-free edge run.

Nothing here imports torch. ``FixedPointContext`` (``jointcodec.entropy.fixedpoint``) builds an
``IntegerContext`` from a trained float context model; ``IntegerContext.load`` rebuilds the same object from
the arrays ``to_npz`` wrote (``jointcodec export --onnx``), so a device with only numpy evaluates exactly the
network the server evaluates, with the same code:

* the symbols enter as integer codes ``round(center * 2**IN_BITS)``;
* weights are ``round(w * 2**WEIGHT_BITS)``, biases are rounded to the accumulator's scale;
* every convolution runs in float64 on integer-valued arrays. A bound check at construction proves every
  accumulator (hence every partial sum, in any order) stays below 2**53 in magnitude, so each sum is an
  exact integer whatever the order, FMA or blocking: float64 is used as a fast exact integer machine;
* activations are requantized by ``floor(acc / 2**shift)`` (exact: a power-of-two scale and a floor; the
  bias carries half an output unit, so this rounds to nearest);
* integer logits (units of 2**-LOGIT_BITS nat) become integer frequencies through an exp lookup table
  computed with ``decimal`` (software arithmetic, identical everywhere); every symbol gets at least 1 and
  the frequencies sum to exactly 2**FREQ_BITS.

The decoding order (``coding_order``) comes from a schedule: the float context model's ``decoding_steps`` on the
server, the exported arrays on the edge; it is checked against the masks either way (``verify_order``).
``docs/bitstream.md`` describes the whole scheme.
"""

from __future__ import annotations

import decimal
import functools
import hashlib
import io
import itertools
import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jointcodec.errors import ConfigError

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
EXPORT_FORMAT = 1  # version of the arrays written by IntegerContext.to_npz

Shape = tuple[int, int, int]
Schedule = Callable[[Shape], tuple[np.ndarray, np.ndarray]]  # shape -> (step, position class), each (C, H, W)


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


def to_int(values: np.ndarray, bits: int) -> np.ndarray:
    """round(values * 2**bits) in float64 (a power-of-two scaling is exact; rint rounds half to even)."""
    return np.rint(np.asarray(values, dtype=np.float64) * float(2**bits))


@dataclass
class IntLayer:
    """One masked convolution in integers: ``out = floor((conv(x, weight) + bias) / 2**shift)``.

    ``weights``, ``biases`` and ``masks`` hold one entry per position class (one for the 3D and channel
    contexts, two for the checkerboard: anchor squares and the others).
    """

    weights: list[np.ndarray]  # (out, in, k, k, k) float64 holding integers, masked taps zero
    biases: list[np.ndarray]  # (out,) float64 holding integers, at the accumulator's scale
    masks: list[np.ndarray]  # (k, k, k) bool
    shift: int


@dataclass
class Step:
    """One decoding step: the raster indices (c*H*W + h*W + w, ascending) of its symbols and their class."""

    raster: np.ndarray  # int64
    position_class: int
    plan: dict = field(default_factory=dict, repr=False)  # gather indices, filled by IncrementalContext


class IntegerContext:
    """The integer network, its symbol codes and its decoding order: all the coder needs, in numpy."""

    def __init__(self, *, levels: int, kind: str, kernel: int, width: int, codes: np.ndarray,
                 layers: list[IntLayer], fingerprint: bytes, schedule: Schedule) -> None:
        self.levels = int(levels)
        self.kind = kind
        self.kernel = int(kernel)
        self.width = int(width)
        self.codes = np.asarray(codes, dtype=np.float64)  # (L,) symbol -> integer input value
        self.layers = layers
        self.fingerprint = bytes(fingerprint)
        self._schedule = schedule
        self.check_bounds()
        # Per latent shape, computed once (a dict entry is assigned in one step: safe to share between threads).
        self._orders: dict[Shape, list[Step]] = {}
        self._permutations: dict[Shape, np.ndarray] = {}
        self._batch_sizes: dict[Shape, int] = {}
        self._full_passes: dict[Shape, FullPass] = {}

    def check_bounds(self) -> None:
        """Prove that no accumulator can reach 2**53 for any symbols (interval arithmetic, worst case)."""
        bound = float(np.abs(self.codes).max())
        for i, layer in enumerate(self.layers):
            acc = max(float((np.abs(w).reshape(len(w), -1).sum(1) * bound + np.abs(b)).max())
                      for w, b in zip(layer.weights, layer.biases, strict=True))
            if acc >= EXACT_LIMIT:
                raise ConfigError(f"context layer {i}: fixed-point accumulators may reach {acc:.3g} >= 2**53; "
                                  "the weights or centers are too large for exact coding")
            out = acc / 2**layer.shift + 1
            bound = out if i == 0 else bound + out  # hidden layers are residual: x + relu(...)

    # --- the decoding order ------------------------------------------------------------------
    def coding_order(self, shape: Shape) -> list[Step]:
        """The decoding steps, in order (the schedule's steps, checked against the masks)."""
        shape = tuple(int(v) for v in shape)
        if shape not in self._orders:
            step, position_class = (np.asarray(t, dtype=np.int64).reshape(-1) for t in self._schedule(shape))
            self.verify_order(shape, step, position_class)
            order = np.argsort(step * step.size + np.arange(step.size))
            parts = np.split(order, np.cumsum(np.bincount(step))[:-1])
            self._orders[shape] = [Step(raster, int(position_class[raster[0]])) for raster in parts if raster.size]
        return self._orders[shape]

    def coding_permutation(self, shape: Shape) -> np.ndarray:
        """Raster index of each symbol in coding order: the decoding steps one after another (read-only)."""
        shape = tuple(int(v) for v in shape)
        if shape not in self._permutations:
            permutation = np.concatenate([step.raster for step in self.coding_order(shape)])
            permutation.flags.writeable = False
            self._permutations[shape] = permutation
        return self._permutations[shape]

    def verify_order(self, shape: Shape, step: np.ndarray, position_class: np.ndarray) -> None:
        """Every first-layer tap must lie in an earlier step, every later-layer tap in an earlier or the same
        step, and a step's symbols must share one position class; else the order cannot decode."""
        channels, height, width = shape
        if step.shape != (channels * height * width,) or position_class.shape != step.shape or step.min() < 0:
            raise ConfigError(f"the {self.kind} context's decoding order does not fit the latent shape {shape}")
        c, h, w = (t.reshape(-1) for t in np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"))
        r = self.kernel // 2
        for i, layer in enumerate(self.layers):
            for cls, mask in enumerate(layer.masks):
                at = position_class == cls
                for dc, dh, dw in (np.argwhere(mask) - r).tolist():
                    qc, qh, qw = c[at] + dc, h[at] + dh, w[at] + dw
                    inside = (qc >= 0) & (qc < channels) & (qh >= 0) & (qh < height) & (qw >= 0) & (qw < width)
                    source = step[((qc * height + qh) * width + qw)[inside]]
                    target = step[at][inside]
                    ok = (source < target) if i == 0 else (source <= target)
                    if not bool(ok.all()):
                        raise ConfigError(f"the {self.kind} context's decoding order is not causal for its masks")
        for value in np.unique(step):
            if np.unique(position_class[step == value]).size != 1:
                raise ConfigError(f"the {self.kind} context mixes position classes within a decoding step")

    # --- the full pass (encoder side: all symbols known) ---------------------------------------
    def logits(self, symbols: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Integer logits (N, C, H, W, L) int64 of every symbol given the symbols before it.

        The encoder knows every symbol, so each layer is one masked convolution over the whole batch
        (``FullPass``), ``batch_size`` images at a time (default: a cache-sized chunk). The integers are the ones
        the decoder computes step by step (``IncrementalContext``): all arithmetic is exact.
        """
        symbols = np.asarray(symbols, dtype=np.int64)
        shape = tuple(int(v) for v in symbols.shape[1:])
        if shape not in self._full_passes:
            self.coding_order(shape)  # the masks are checked against the order, as for decoding
            self._full_passes[shape] = FullPass(self, shape)
        return self._full_passes[shape].logits(symbols, batch_size)

    def bytes_per_position(self) -> int:
        """Bytes the widest layer gathers for one position of one image (float64)."""
        return 8 * max(int(m.sum()) * layer.weights[0].shape[1] for layer in self.layers for m in layer.masks)

    def decode_batch_size(self, shape: Shape) -> int:
        """Images to decode together: the largest step's gathered block about WORKING_SET_BYTES."""
        shape = tuple(int(v) for v in shape)
        if shape not in self._batch_sizes:
            largest = max(len(step.raster) for step in self.coding_order(shape))
            self._batch_sizes[shape] = max(64, min(1000, WORKING_SET_BYTES // (largest * self.bytes_per_position())))
        return self._batch_sizes[shape]

    # --- export: the same object on a device without torch ----------------------------------------
    def arrays(self, shapes: list[Shape]) -> dict[str, np.ndarray]:
        """Everything ``load`` needs, as named arrays, with the decoding order of each latent shape in ``shapes``."""
        meta = {"format": EXPORT_FORMAT, "scheme": SCHEME, "levels": self.levels, "kind": self.kind,
                "kernel": self.kernel, "width": self.width, "fingerprint": self.fingerprint.hex(),
                "layers": [{"shift": layer.shift, "classes": len(layer.weights)} for layer in self.layers],
                "shapes": [list(map(int, s)) for s in shapes]}
        out = {"meta": np.array(json.dumps(meta, sort_keys=True)), "codes": self.codes}
        for i, layer in enumerate(self.layers):
            for j, (w, b, m) in enumerate(zip(layer.weights, layer.biases, layer.masks, strict=True)):
                out[f"layer{i}.class{j}.weight"] = w
                out[f"layer{i}.class{j}.bias"] = b
                out[f"layer{i}.class{j}.mask"] = m
        for shape in shapes:
            step, position_class = (np.asarray(t, dtype=np.int64) for t in self._schedule(tuple(shape)))
            key = "x".join(map(str, shape))
            out[f"order.{key}.step"], out[f"order.{key}.class"] = step, position_class
        return out

    def to_npz(self, shapes: list[Shape]) -> bytes:
        """``arrays(shapes)`` as ``.npz`` bytes (the caller writes them, atomically); ``load`` reads them."""
        buffer = io.BytesIO()
        np.savez(buffer, **self.arrays(shapes))
        return buffer.getvalue()

    @classmethod
    def load(cls, path: str | Path) -> IntegerContext:
        """Rebuild the integer context written by ``to_npz`` (no pickles: plain arrays and a JSON string)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
            meta = json.loads(str(arrays["meta"]))
        except (OSError, ValueError, KeyError) as err:
            raise ConfigError(f"{path}: not an integer context model export ({err})") from err
        if meta.get("format") != EXPORT_FORMAT or meta.get("scheme") != SCHEME:
            raise ConfigError(f"{path}: integer context format {meta.get('format')} / {meta.get('scheme')} is not "
                              f"supported (this jointcodec reads {EXPORT_FORMAT} / {SCHEME})")
        layers = []
        for i, spec in enumerate(meta["layers"]):
            parts = [(arrays[f"layer{i}.class{j}.weight"], arrays[f"layer{i}.class{j}.bias"],
                      arrays[f"layer{i}.class{j}.mask"].astype(bool)) for j in range(spec["classes"])]
            layers.append(IntLayer([p[0] for p in parts], [p[1] for p in parts], [p[2] for p in parts],
                                   int(spec["shift"])))
        orders = {tuple(s): (arrays[f"order.{'x'.join(map(str, s))}.step"],
                             arrays[f"order.{'x'.join(map(str, s))}.class"]) for s in meta["shapes"]}

        def schedule(shape: Shape) -> tuple[np.ndarray, np.ndarray]:
            if tuple(shape) not in orders:
                raise ConfigError(f"the export holds the decoding order for latent shapes "
                                  f"{sorted(orders)} only, not {tuple(shape)}")
            return orders[tuple(shape)]

        return cls(levels=meta["levels"], kind=meta["kind"], kernel=meta["kernel"], width=meta["width"],
                   codes=arrays["codes"], layers=layers, fingerprint=bytes.fromhex(meta["fingerprint"]),
                   schedule=schedule)

    def digest(self) -> str:
        """SHA-256 of the integer network (codes, weights, biases, masks, shifts): equal digests, equal coder."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.codes, dtype="<f8").tobytes())
        for layer in self.layers:
            h.update(str(layer.shift).encode())
            for w, b, m in zip(layer.weights, layer.biases, layer.masks, strict=True):
                for a, dtype in ((w, "<f8"), (b, "<f8"), (m, "u1")):
                    h.update(np.ascontiguousarray(a, dtype=dtype).tobytes())
        return h.hexdigest()


class IncrementalContext:
    """Evaluate the integer network only at the symbols of the next decoding step (decoder side).

    Activations live in zero-padded buffers laid out (features, positions, N). A step runs the layers one
    after another over its k positions: one gather of the layer's input at every tap of every position
    (earlier steps, or this step for the layers after the first) gives a (features * taps, k * N) block, and
    one matrix product with the flattened integer kernel of the step's position class gives the
    (out, k * N) accumulators; then requantize and store. Every value equals what any other evaluation order
    gives, because all arithmetic is exact (tests compare with the float model's convolution code).
    """

    def __init__(self, fixed: IntegerContext, count: int, shape: Shape) -> None:
        self.fixed = fixed
        r = fixed.kernel // 2
        channels, height, width = shape
        padded = (channels + r, height + 2 * r, width + 2 * r)
        size = padded[0] * padded[1] * padded[2]
        stride = np.array([padded[1] * padded[2], padded[2], 1])
        # Only the zero padding must be initialised: every interior position is written (by its own step,
        # or by set_symbols) before any tap reads it, so a context can be reused for the next batch as is.
        self.inputs = np.empty((1, size, count))
        self.buffers = [np.empty((fixed.width, size, count)) for _ in fixed.layers[:-1]]
        self.taps, self.kernels, self.biases = [], [], []  # [layer][class]
        for layer in fixed.layers:
            taps, kernels = [], []
            for weight, mask in zip(layer.weights, layer.masks, strict=True):
                taps.append(((np.argwhere(mask) - r) * stride).sum(1))
                kernels.append(np.ascontiguousarray(weight[:, :, mask].reshape(len(weight), -1)))  # (out, in * taps)
            self.taps.append(taps)
            self.kernels.append(kernels)
            self.biases.append([b.reshape(-1, 1) for b in layer.biases])
        c, h, w = np.meshgrid(np.arange(channels), np.arange(height), np.arange(width), indexing="ij")
        self.raster_to_padded = ((c + r) * stride[0] + (h + r) * stride[1] + (w + r)).reshape(-1)
        padding = np.ones(size, dtype=bool)
        padding[self.raster_to_padded] = False
        for buffer in (self.inputs, *self.buffers):
            buffer[:, padding] = 0.0

    def _plan(self, step: Step) -> tuple[np.ndarray, list[np.ndarray]]:
        """A step's padded positions and, per layer, the flat gather index (tap-major) of every tap and position."""
        plan = step.plan.get("gather")
        if plan is None:  # the same for every batch of this model and shape: computed once
            positions = self.raster_to_padded[step.raster]
            index = [(taps[step.position_class][:, None] + positions[None, :]).reshape(-1) for taps in self.taps]
            plan = step.plan["gather"] = (positions, index)  # one assignment: safe to share between threads
        return plan

    def _layer(self, i: int, source: np.ndarray, index: np.ndarray, k: int, cls: int) -> np.ndarray:
        count = source.shape[-1]
        gathered = source.take(index, axis=1).reshape(-1, k * count)  # (in * taps, k * N)
        acc = self.kernels[i][cls] @ gathered
        acc += self.biases[i][cls]
        acc *= 2.0 ** -self.fixed.layers[i].shift  # exact: a power of two
        np.floor(acc, out=acc)
        return acc.reshape(-1, k, count)

    def step_logits(self, step: Step) -> np.ndarray:
        """Integer logits (N, k, L) int64 of the k symbols of one decoding step."""
        positions, index = self._plan(step)
        k, cls = positions.size, step.position_class
        x = np.maximum(self._layer(0, self.inputs, index[0], k, cls), 0.0)
        self.buffers[0][:, positions] = x
        for i in range(1, len(self.fixed.layers) - 1):
            x = x + np.maximum(self._layer(i, self.buffers[i - 1], index[i], k, cls), 0.0)
            self.buffers[i][:, positions] = x
        logits = self._layer(len(self.fixed.layers) - 1, self.buffers[-1], index[-1], k, cls)
        return logits.transpose(2, 1, 0).astype(np.int64)

    def set_symbols(self, where: np.ndarray | Step, symbols: np.ndarray) -> None:
        """Record symbols (N, k) at raster indices ``where`` (or at a decoding step's positions)."""
        positions = self._plan(where)[0] if isinstance(where, Step) else self.raster_to_padded[np.asarray(where)]
        self.inputs[0, positions, :] = self.fixed.codes[np.asarray(symbols)].T


MIN_STACK_ROWS = 16  # stack tap-shifted copies until a matrix product's inner dimension has at least this many rows
FULL_PASS_BYTES = 1 << 20  # a chunk's stacked activations: about one core's L2 cache


@dataclass
class _StackedPlan:
    """How ``FullPass`` evaluates a layer: matrix products of kernels with tap-shifted copies of its input.

    The stacked source is a row of ones (for the bias), then one block of ``features`` rows per entry of
    ``offsets``: the input shifted by that offset (``dw`` its column offset). Product ``b`` reads rows ``rows[b]`` of
    the source shifted by ``bases[b]`` with kernel ``kernels[cls][b]`` (out, rows): the taps at ``bases[b]`` + each
    offset, times 2**-shift.
    """

    features: int
    outputs: int
    offsets: list[int]
    dw: list[int]
    bases: list[int]
    rows: list[slice]
    kernels: list[list[np.ndarray]]


@dataclass
class _ShiftedPlan:
    """How ``FullPass`` evaluates a layer with fewer outputs than inputs (the logits): no copies of the input.

    One product of every tap's kernel with the input itself, ``kernels[cls]`` (taps * out, in), then each tap's rows
    added at its ``offsets`` entry, after the bias ``biases[cls]`` (out, 1); all times 2**-shift. A tap whose
    w + dw leaves the row has its rows zeroed at the input columns it would wrap to.
    """

    outputs: int
    offsets: list[int]
    dw: list[int]
    kernels: list[np.ndarray]
    biases: list[np.ndarray]


class FullPass:
    """The integer network over whole images at once: the encoder's side, where every symbol is known.

    Each image becomes a flat volume of r = kernel // 2 zero planes, then its C channel planes, each H rows of W
    values followed by r zero rows. A tap (dc, dh, dw) (dc <= 0: no mask sees later channels) is then one flat
    offset: from a real position it reads the same image, or zeros (a plane's trailing zero rows serve as the next
    plane's leading ones, the leading planes as channel -1), except where w + dw leaves the row: what such a tap
    would read there is zeroed. So each layer is a few matrix products on contiguous slices of the batch, no
    gathers. Values are also computed at the zero rows and planes; they are zeroed before the next layer reads them
    and never returned. Each position takes its own position class's result.

    Exact: the activations are integers, the kernels integers times 2**-shift (a power of two), and the bound that
    ``IntegerContext.check_bounds`` proves keeps every partial sum in any order below 2**53 (times that power of
    two), so float64 products and sums never round: these are the decoder's integers.
    """

    def __init__(self, fixed: IntegerContext, shape: Shape) -> None:
        channels, height, width = shape
        radius = fixed.kernel // 2
        self.fixed = fixed
        self.width = width
        self.size = channels * height * width
        self.strides = ((height + radius) * width, width, 1)  # plane, row, column
        self.image = (channels + radius) * self.strides[0]
        c, h, w = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
        self.interior = ((c + radius) * self.strides[0] + h * width + w).reshape(-1)
        self.keep = np.zeros(self.image)
        self.keep[self.interior] = 1.0
        position_class = np.zeros(self.size, dtype=np.int64)
        for step in fixed.coding_order(shape):
            position_class[step.raster] = step.position_class
        classes = max(len(layer.weights) for layer in fixed.layers)
        self.class_at = [np.zeros(self.image, dtype=bool) for _ in range(classes)]
        for cls, where in enumerate(self.class_at):
            where[self.interior[position_class == cls]] = True
        self.plans = [self._plan(layer) for layer in fixed.layers]
        rows = max(len(plan.offsets) * (plan.features if isinstance(plan, _StackedPlan) else plan.outputs) + 1
                   for plan in self.plans)
        self.chunk = max(1, FULL_PASS_BYTES // (8 * rows * self.image))
        self._workspaces = threading.local()  # buffers are reused call after call, one set per thread

    def _plan(self, layer: IntLayer) -> _StackedPlan | _ShiftedPlan:
        radius = self.fixed.kernel // 2
        features, outputs = layer.weights[0].shape[1], len(layer.weights[0])
        if any(mask[radius + 1:].any() for mask in layer.masks):
            raise ConfigError(f"the {self.fixed.kind} context has a mask that sees later channels")
        axes = [range(-radius, 1), range(-radius, radius + 1), range(-radius, radius + 1)]  # dc <= 0, dh, dw
        scale = 2.0 ** -layer.shift  # exact: a power of two

        def offset(tap: tuple[int, ...], strides: tuple[int, ...]) -> int:
            return sum(t * s for t, s in zip(tap, strides, strict=True))

        def weights(weight: np.ndarray, tap: tuple[int, ...]) -> np.ndarray:
            return weight[(..., *(t + radius for t in tap))]  # (out, in)

        if outputs < features:  # a narrowing layer (the logits): products of the input itself, shifted outputs
            taps = [t for t in itertools.product(*axes) if any(m[tuple(v + radius for v in t)] for m in layer.masks)]
            return _ShiftedPlan(outputs, [offset(t, self.strides) for t in taps], [t[-1] for t in taps],
                                [np.concatenate([weights(w, t) for t in taps]) * scale for w in layer.weights],
                                [b[:, None] * scale for b in layer.biases])
        depth = next(d for d in (1, 2, 3) if d == 3 or features * math.prod(map(len, axes[3 - d:])) >= MIN_STACK_ROWS)
        outer, inner = list(itertools.product(*axes[:3 - depth])), list(itertools.product(*axes[3 - depth:]))

        def used_blocks(prefix: tuple[int, ...]) -> list[int]:
            return [j for j, suffix in enumerate(inner)
                    if any(m[tuple(t + radius for t in prefix + suffix)] for m in layer.masks)]

        bases = [(p, used_blocks(p)) for p in outer if used_blocks(p)]
        # Each product reads the blocks from its first to its last used tap (the first product also the bias row).
        rows = [slice(0 if b == 0 else 1 + features * used[0], 1 + features * (used[-1] + 1))
                for b, (_, used) in enumerate(bases)]
        kernels = []
        for weight, bias in zip(layer.weights, layer.biases, strict=True):
            per_base = []
            for b, ((prefix, _), part) in enumerate(zip(bases, rows, strict=True)):
                ones = bias[:, None] if b == 0 else np.zeros((outputs, 1))
                blocks = [weights(weight, prefix + suffix) for suffix in inner]
                per_base.append(np.ascontiguousarray(np.concatenate([ones, *blocks], axis=1)[:, part] * scale))
            kernels.append(per_base)
        return _StackedPlan(features, outputs, [offset(s, self.strides[3 - depth:]) for s in inner],
                            [s[-1] for s in inner], [offset(p, self.strides[:3 - depth]) for p, _ in bases], rows,
                            kernels)

    def logits(self, symbols: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Integer logits (N, C, H, W, L) int64 of symbols (N, C, H, W), ``batch_size`` images per pass."""
        count = len(symbols)
        chunk = max(1, batch_size or self.chunk)
        out = np.empty((count, self.size, self.fixed.levels), dtype=np.int64)
        workspaces = self._workspaces.__dict__.setdefault("by_size", {})  # this thread's, by images per pass
        for start in range(0, count, chunk):
            part = symbols[start:start + chunk].reshape(-1, self.size)
            n = len(part)
            if n not in workspaces:
                workspaces[n] = _Workspace(self, n)
            workspace = workspaces[n]
            x = workspace.inputs
            x.reshape(n, self.image)[:, self.interior] = self.fixed.codes[part]
            for i, plan in enumerate(self.plans):
                acc = workspace.convolve(i, plan, x)
                if i == len(self.plans) - 1:
                    out[start:start + n] = acc.reshape(-1, n, self.image)[:, :, self.interior].transpose(1, 2, 0)
                    break
                np.maximum(acc, 0.0, out=acc)
                acc *= workspace.keep  # zero rows and planes, as the next layer's taps expect
                if i > 0:  # hidden layers are residual: x + relu(...)
                    acc += x
                x = acc
        return out.reshape(count, *symbols.shape[1:], self.fixed.levels)


class _Workspace:
    """``FullPass`` buffers for chunks of n images, reused chunk after chunk: every copy, zeroing and shifted window
    is a view made once (only the valid windows are rewritten, so zeros stay zeros)."""

    def __init__(self, full: FullPass, n: int) -> None:
        self.full = full
        self.positions = n * full.image
        self.inputs = np.zeros((1, self.positions))
        self.keep = np.tile(full.keep, n)
        self.class_at = [np.tile(where, n) for where in full.class_at] if len(full.class_at) > 1 else []
        self.layers = [self._stacked(plan) if isinstance(plan, _StackedPlan) else self._shifted(plan)
                       for plan in full.plans]

    def _stacked(self, plan: _StackedPlan) -> dict:
        lead, tail = max(0, -min(plan.bases)), max(0, max(plan.bases))  # multiples of the row length
        stacked = np.zeros((1 + len(plan.offsets) * plan.features, lead + self.positions + tail))
        stacked[0] = 1.0  # the bias row
        copies = []  # (block window, the slice of x it holds, its entries whose tap leaves the row)
        for j, (offset, dw) in enumerate(zip(plan.offsets, plan.dw, strict=True)):
            block = stacked[1 + j * plan.features:1 + (j + 1) * plan.features]
            lo, hi = max(0, lead - offset), min(stacked.shape[1], lead - offset + self.positions)
            copies.append((block[:, lo:hi], slice(lo - lead + offset, hi - lead + offset),
                           self._leaving_row(block, dw, reading=False)))
        windows = [stacked[rows, lead + base:lead + base + self.positions]
                   for base, rows in zip(plan.bases, plan.rows, strict=True)]
        return {"copies": copies, "windows": windows, **self._outputs(plan.outputs, plan.outputs)}

    def _shifted(self, plan: _ShiftedPlan) -> dict:
        outputs, positions = plan.outputs, self.positions
        buffers = self._outputs(outputs, len(plan.offsets) * outputs)
        product = buffers["product"]
        rows = [product[t * outputs:(t + 1) * outputs] for t in range(len(plan.offsets))]
        wrapped = [self._leaving_row(r, dw, reading=True) for r, dw in zip(rows, plan.dw, strict=True)]
        adds = []  # (target columns, the tap's rows shifted by its offset)
        for r, offset in zip(rows, plan.offsets, strict=True):
            lo, hi = max(0, -offset), min(positions, positions - offset)
            adds.append((slice(lo, hi), r[:, lo + offset:hi + offset]))
        return {"wrapped": [w for w in wrapped if w is not None], "adds": adds, **buffers}

    def _outputs(self, outputs: int, products: int) -> dict:
        return {"acc": np.empty((outputs, self.positions)), "product": np.empty((products, self.positions)),
                "result": np.empty((outputs, self.positions))}

    def _leaving_row(self, array: np.ndarray, dw: int, reading: bool) -> np.ndarray | None:
        """The entries of ``array`` (rows, positions) that a tap with column offset dw must not use: at the output
        columns where w + dw leaves the row, or (``reading``) at the input columns such a tap would wrap to."""
        width = self.full.width
        if not dw:
            return None
        if reading:
            columns = slice(max(0, width + dw), width) if dw < 0 else slice(0, min(width, dw))
        else:
            columns = slice(0, min(width, -dw)) if dw < 0 else slice(max(0, width - dw), width)
        return array.reshape(len(array), -1, width)[:, :, columns]

    def convolve(self, i: int, plan: _StackedPlan | _ShiftedPlan, x: np.ndarray) -> np.ndarray:
        """floor(masked convolution of x (features, positions) + bias, times 2**-shift): (out, positions)."""
        buffers = self.layers[i]
        acc, product, result = buffers["acc"], buffers["product"], buffers["result"]
        if isinstance(plan, _StackedPlan):
            for block, source, leaving in buffers["copies"]:
                block[...] = x[:, source]
                if leaving is not None:
                    leaving[...] = 0.0
        for cls in range(len(plan.kernels)):
            target = acc if cls == 0 else result
            if isinstance(plan, _ShiftedPlan):
                np.matmul(plan.kernels[cls], x, out=product)
                for wrapped in buffers["wrapped"]:
                    wrapped[...] = 0.0
                np.copyto(target, plan.biases[cls])
                for columns, shifted in buffers["adds"]:
                    target[:, columns] += shifted
            else:
                for b, (window, kernel) in enumerate(zip(buffers["windows"], plan.kernels[cls], strict=True)):
                    if b == 0:
                        np.matmul(kernel, window, out=target)
                    else:
                        np.matmul(kernel, window, out=product)
                        target += product
            if cls > 0:
                np.copyto(acc, result, where=self.class_at[cls])
        np.floor(acc, out=acc)
        return acc
