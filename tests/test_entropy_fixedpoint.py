"""The fixed-point context model: exact integers, the same on every path, close to the float model."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from jointcodec.entropy import FixedPointContext, IncrementalContext, exp_table, frequencies
from jointcodec.entropy.fixedpoint import FREQ_TOTAL, LOGIT_BITS, requantize
from jointcodec.entropy.integer import IntegerContext
from jointcodec.errors import ConfigError
from jointcodec.models import CONTEXTS, ChannelContextModel, ContextModel3D, create_context
from jointcodec.models.context import conv_over_past_channels, linear_schedule

KINDS = sorted(CONTEXTS)


def _context(kind: str, levels: int, seed: int = 0, layers: int = 3) -> tuple[ContextModel3D, torch.Tensor]:
    torch.manual_seed(seed)
    context = create_context(levels, {"kind": kind, "width": 8, "layers": layers}).eval()
    centers = torch.linspace(-2, 2, levels) + 0.1 * torch.randn(levels)
    return context, centers


def test_exp_table_is_pinned() -> None:
    """The table is part of the format: built with decimal arithmetic, identical on every machine."""
    table = exp_table()
    assert table[0] == 1 << 16 and table[-1] == 0 and (np.diff(table) <= 0).all()
    assert len(table) == 3018
    assert hashlib.sha256(table.astype("<i8").tobytes()).hexdigest()[:16] == "e7284d9771a94f85"


@settings(max_examples=200, deadline=None)
@given(arrays(np.int64, st.tuples(st.integers(1, 5), st.integers(2, 8)), elements=st.integers(-10**6, 10**6)))
def test_frequencies_are_positive_and_sum_to_the_total(logits: np.ndarray) -> None:
    freq = frequencies(logits)
    assert freq.dtype == np.int64 and (freq >= 1).all()
    assert (freq.sum(-1) == FREQ_TOTAL).all()
    # A more probable symbol never gets fewer counts.
    more_probable = logits[..., :, None] > logits[..., None, :]
    assert (freq[..., :, None] >= freq[..., None, :])[more_probable].all()


@settings(max_examples=200, deadline=None)
@given(arrays(np.int64, st.tuples(st.integers(1, 5), st.just(2)), elements=st.integers(-5000, 5000)))
def test_binary_fast_path_equals_the_general_formula(logits: np.ndarray) -> None:
    from jointcodec.entropy.fixedpoint import exp_table

    table = exp_table()
    weights = table[np.minimum(logits.max(-1, keepdims=True) - logits, len(table) - 1)]
    general = 1 + weights * (FREQ_TOTAL - 2) // weights.sum(-1, keepdims=True)
    general[np.arange(len(logits)), logits.argmax(-1)] += FREQ_TOTAL - general.sum(-1)
    np.testing.assert_array_equal(frequencies(logits), general)


def test_frequencies_follow_the_softmax() -> None:
    logits = np.array([[0, 256 * 1, -256 * 2], [5, 5, 5]], dtype=np.int64)
    probs = torch.softmax(torch.tensor(logits, dtype=torch.float64) / 2**LOGIT_BITS, -1).numpy()
    np.testing.assert_allclose(frequencies(logits) / FREQ_TOTAL, probs, atol=2e-4)


def stepwise_logits(fixed: IntegerContext, symbols: np.ndarray) -> np.ndarray:
    """The decoder's evaluation: one decoding step at a time, each step's symbols recorded once it is done."""
    symbols = np.asarray(symbols)
    count, shape = len(symbols), symbols.shape[1:]
    state = IncrementalContext(fixed, count, shape)
    flat = symbols.reshape(count, -1)
    out = np.zeros((*flat.shape, fixed.levels), dtype=np.int64)
    for step in fixed.coding_order(shape):
        out[:, step.raster] = state.step_logits(step)
        state.set_symbols(step, flat[:, step.raster])
    return out.reshape(*symbols.shape, fixed.levels)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("levels", [2, 3, 6])
def test_step_by_step_equals_full_pass_equals_integer_conv(kind: str, levels: int) -> None:
    """Decoder (one step at a time, symbols set as decoded) == encoder full pass == an integer conv3d."""
    context, centers = _context(kind, levels, seed=levels)
    fixed = FixedPointContext(context, centers)
    symbols = torch.randint(0, levels, (3, 5, 4, 6))
    full = fixed.logits(symbols)
    np.testing.assert_array_equal(stepwise_logits(fixed, symbols.numpy()), full)

    # Reference: the float model's own convolution code, run in float64 on the integer weights, each
    # position class's kernel where that class is.
    _, position_class = context.decoding_steps((5, 4, 6))

    def conv(x: torch.Tensor, layer) -> torch.Tensor:
        out = None
        for cls, (weight, bias) in enumerate(zip(layer.weights, layer.biases, strict=True)):
            y = requantize(conv_over_past_channels(x, torch.from_numpy(weight), torch.from_numpy(bias)), layer.shift)
            out = y if out is None else torch.where(position_class == cls, y, out)
        return out

    x = torch.from_numpy(fixed.codes)[symbols].unsqueeze(1)
    first, *hidden, last = fixed.layers
    x = conv(x, first).clamp_min(0)
    for layer in hidden:
        x = x + conv(x, layer).clamp_min(0)
    reference = conv(x, last)
    np.testing.assert_array_equal(reference.permute(0, 2, 3, 4, 1).to(torch.int64).numpy(), full)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("levels", [2, 3, 6, 16])
@pytest.mark.parametrize("layers", [2, 4])
def test_the_full_pass_equals_the_decoders_steps_exactly(kind: str, levels: int, layers: int) -> None:
    """The encoder's one-pass convolutions give the decoder's integers for every kind, L (16: more logits than the
    layer has inputs, computed like the hidden layers) and depth, at latent shapes where taps at every row, plane
    or image edge read padding, and for any images per pass."""
    context, centers = _context(kind, levels, seed=10 * levels + layers, layers=layers)
    fixed = FixedPointContext(context, centers)
    rng = np.random.default_rng(levels + layers)
    for shape in [(1, 1, 1), (3, 1, 5), (2, 6, 1), (6, 3, 4)]:
        symbols = rng.integers(0, levels, (5, *shape))
        reference = stepwise_logits(fixed, symbols)
        for batch_size in (None, 1, 2, 5):
            np.testing.assert_array_equal(fixed.logits(symbols, batch_size), reference)


@pytest.mark.parametrize("kind", KINDS)
def test_batch_composition_does_not_change_the_integers(kind: str) -> None:
    context, centers = _context(kind, 3)
    fixed = FixedPointContext(context, centers)
    symbols = torch.randint(0, 3, (7, 4, 5, 5))
    together = fixed.logits(symbols, batch_size=7)
    alone = np.concatenate([fixed.logits(symbols[i:i + 1], batch_size=1) for i in range(7)])
    np.testing.assert_array_equal(together, alone)


@pytest.mark.parametrize("kind", KINDS)
def test_fixed_point_logits_track_the_float_model(kind: str) -> None:
    context, centers = _context(kind, 3)
    fixed = FixedPointContext(context, centers)
    symbols = torch.randint(0, 3, (4, 6, 8, 8))
    with torch.no_grad():
        reference = context.double()(centers.double()[symbols])
    assert np.abs(fixed.logits(symbols) / 2**LOGIT_BITS - reference.numpy()).max() < 0.01


def test_the_coding_order_respects_every_dependency() -> None:
    """3D: t = 4c + 2h + w (82 steps for 16x8x8); channel: one step per channel; checkerboard: two."""
    first, later = ContextModel3D.layer_mask(3, first=True), ContextModel3D.layer_mask(3, first=False)
    assert linear_schedule(first, later) == (4, 2, 1)
    first, later = ChannelContextModel.layer_mask(3, first=True), ChannelContextModel.layer_mask(3, first=False)
    assert linear_schedule(first, later) == (1, 0, 0)
    for kind, steps in [("3d", 82), ("channel", 16), ("checkerboard", 32)]:
        context = create_context(2, {"kind": kind, "width": 4, "layers": 3})
        order = FixedPointContext(context, torch.tensor([-1.0, 1.0])).coding_order((16, 8, 8))
        assert len(order) == steps
        assert sorted(np.concatenate([step.raster for step in order]).tolist()) == list(range(16 * 8 * 8))


def test_a_non_causal_order_is_refused() -> None:
    context = create_context(2, {"kind": "3d", "width": 4, "layers": 3})
    one_step_per_channel = torch.arange(4).view(4, 1, 1).expand(4, 3, 3)
    context.decoding_steps = lambda shape: (one_step_per_channel, torch.zeros(shape, dtype=torch.int64))
    with pytest.raises(ConfigError, match="not causal"):
        FixedPointContext(context, torch.tensor([-1.0, 1.0])).coding_order((4, 3, 3))


@pytest.mark.parametrize("kind", KINDS)
def test_the_decoding_order_is_causal_for_the_float_model(kind: str) -> None:
    """Symbols decoded at a later step never change the float logits of an earlier or the current step."""
    context, centers = _context(kind, 2, layers=4)
    fixed = FixedPointContext(context, centers)
    shape = (4, 5, 5)
    steps = [torch.from_numpy(step.raster) for step in fixed.coding_order(shape)]
    symbols = torch.randint(0, 2, (1, *shape))
    with torch.no_grad():
        base = context(centers[symbols]).reshape(-1, 2)
        for k in (1, 3, len(steps) // 2, len(steps) - 2):
            later = torch.cat(steps[k:])
            changed = symbols.clone().reshape(-1)
            changed[later] = 1 - changed[later]
            logits = context(centers[changed.view(1, *shape)]).reshape(-1, 2)
            earlier_and_now = torch.cat(steps[:k + 1])
            torch.testing.assert_close(logits[earlier_and_now], base[earlier_and_now], rtol=0, atol=1e-5)


def test_weights_too_large_for_exact_arithmetic_are_refused() -> None:
    context, centers = _context("3d", 2)
    with torch.no_grad():
        context.last.weight.fill_(1e9)
    with pytest.raises(ConfigError, match="2\\*\\*53"):
        FixedPointContext(context, centers)


def test_fingerprint_covers_weights_and_centers() -> None:
    context, centers = _context("3d", 2)
    base = FixedPointContext(context, centers).fingerprint
    assert len(base) == 8 and FixedPointContext(context, centers.clone()).fingerprint == base
    assert FixedPointContext(context, centers + 1e-6).fingerprint != base
    with torch.no_grad():
        context.hidden[0].weight[0, 0, 0, 0, 0] += 1e-6
    assert FixedPointContext(context, centers).fingerprint != base


def test_the_encoder_writes_the_reference_bytes_for_real_images(data_dir) -> None:
    """CIFAR-10 test images through the shipped model: the encoder's bytes are the ones its definition gives, the
    decoder's step-by-step integers range-coded and trimmed by decoding, and they decode to the symbols."""
    from jointcodec.api import Codec
    from jointcodec.checkpoint import load_model
    from jointcodec.data import load_split
    from jointcodec.entropy import coder
    from jointcodec.entropy.payloads import coding_permutation, decode_latents, encode_latents

    model, _ = load_model("default")
    fixed = FixedPointContext(model.context, model.quantizer.centers)
    symbols = Codec(model).symbols(load_split("cifar10", "test", data_dir).images[:12]).numpy()
    order = coding_permutation(fixed, symbols.shape[1:])
    freq = frequencies(stepwise_logits(fixed, symbols)).reshape(len(symbols), -1, fixed.levels)[:, order]
    flat, probs = symbols.reshape(len(symbols), -1)[:, order], coder.probabilities(freq)
    reference = [coder.trim(coder.range_code(s, p)[0], s, p) for s, p in zip(flat, probs, strict=True)]
    assert encode_latents(fixed, symbols) == reference
    np.testing.assert_array_equal(decode_latents(fixed, reference, symbols.shape[1:]), symbols)
