"""The 3D masked context model: exact masked convolutions, causality in coding order, bit counts."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn import functional as F

from jointcodec.models import ContextModel3D, LearnedQuantizer, MaskedConv3d, causal_mask, create_model


@pytest.mark.parametrize("kernel", [1, 3, 5])
@pytest.mark.parametrize("include_centre", [False, True], ids=["mask-A", "mask-B"])
def test_masked_conv_equals_conv3d_with_the_masked_weight(kernel: int, include_centre: bool) -> None:
    torch.manual_seed(kernel)
    conv = MaskedConv3d(3, 5, kernel, include_centre=include_centre).double()
    with torch.no_grad():  # make the masked-out taps large: any leak shows
        conv.weight.add_(torch.randn_like(conv.weight) * (1 - conv.mask) * 10)
    x = torch.randn(2, 3, 4, 6, 7, dtype=torch.float64)
    expected = F.conv3d(x, conv.weight * causal_mask(kernel, include_centre).double(), conv.bias,
                        padding=kernel // 2)
    with torch.no_grad():
        out = conv(x)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


def test_causal_mask_taps() -> None:
    """Mask A keeps exactly the 13 taps before the centre of a 3x3x3 kernel; mask B adds the centre."""
    a, b = causal_mask(3, include_centre=False), causal_mask(3, include_centre=True)
    assert a.sum() == 13 and b.sum() == 14
    assert a[1, 1, 1] == 0 and b[1, 1, 1] == 1
    assert a[0].sum() == 9 and a[2].sum() == 0  # all of the previous channel, none of the next
    assert a[1].flatten().tolist() == [1, 1, 1, 1, 0, 0, 0, 0, 0]


def _models() -> dict[int, ContextModel3D]:
    models = {}
    for layers in (2, 4):
        torch.manual_seed(layers)
        models[layers] = ContextModel3D(levels=3, width=8, layers=layers).double().eval()
    return models


MODELS = _models()


@settings(max_examples=150, deadline=None, database=None)
@given(channels=st.integers(1, 6), height=st.integers(1, 5), width=st.integers(1, 5),
       layers=st.sampled_from([2, 4]), data=st.data())
def test_logits_never_depend_on_the_current_or_later_symbols(channels, height, width, layers, data) -> None:
    """Changing the latent at positions >= k (raster order: channel, row, column) leaves logits <= k alone."""
    model = MODELS[layers]
    count = channels * height * width
    k = data.draw(st.integers(0, count - 1), label="k")
    seed = data.draw(st.integers(0, 2**31 - 1), label="seed")
    generator = torch.Generator().manual_seed(seed)
    latent = torch.randn(2, channels, height, width, generator=generator, dtype=torch.float64)
    changed = latent.clone().view(2, count)
    changed[:, k:] = torch.randn(2, count - k, generator=generator, dtype=torch.float64) * 3
    changed = changed.view_as(latent)
    assert torch.equal(latent.view(2, count)[:, :k], changed.view(2, count)[:, :k])

    with torch.no_grad():
        before = model(latent).reshape(2, count, model.levels)
        after = model(changed).reshape(2, count, model.levels)
    torch.testing.assert_close(after[:, : k + 1], before[:, : k + 1], rtol=0, atol=1e-9)


@pytest.mark.parametrize("layers", [2, 4])
def test_logits_do_depend_on_the_previous_symbols(layers: int) -> None:
    """The causality test is not vacuous: the previous column, row and channel all reach a symbol."""
    model = MODELS[layers]
    latent = torch.randn(1, 3, 4, 4, dtype=torch.float64)
    with torch.no_grad():
        base = model(latent)
        for c, h, w in [(1, 2, 1), (1, 1, 2), (0, 2, 2)]:  # left of, above, and the channel before (1, 2, 2)
            changed = latent.clone()
            changed[0, c, h, w] += 2.0
            assert not torch.allclose(model(changed)[0, 1, 2, 2], base[0, 1, 2, 2]), (c, h, w)


@pytest.mark.parametrize("levels", [2, 3, 6])
def test_bits_are_minus_log2_probability_of_the_hard_symbols(levels: int) -> None:
    torch.manual_seed(levels)
    quantizer = LearnedQuantizer(levels)
    context = ContextModel3D(levels, width=8, layers=3)
    z = torch.randn(3, 4, 5, 5, requires_grad=True)
    q = quantizer(z)
    logits = context(q.values)
    bits = ContextModel3D.bits(logits, q.one_hot)

    probabilities = torch.softmax(logits.detach().double(), dim=-1)
    p_symbol = probabilities.gather(-1, q.symbols.unsqueeze(-1)).squeeze(-1)
    expected = -torch.log2(p_symbol).flatten(1).sum(1)
    assert bits.shape == (3,)
    torch.testing.assert_close(bits.double(), expected, rtol=1e-5, atol=1e-4)
    # And the rate's gradient reaches the encoder output through the soft assignment.
    bits.sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_uniform_logits_cost_log2_levels_per_symbol() -> None:
    levels = 6
    symbols = torch.randint(0, levels, (2, 4, 3, 3))
    one_hot = F.one_hot(symbols, levels).float()
    bits = ContextModel3D.bits(torch.zeros(2, 4, 3, 3, levels), one_hot)
    torch.testing.assert_close(bits, torch.full((2,), 4 * 3 * 3 * math.log2(levels)))


def test_joint_model_bits_and_bpp() -> None:
    torch.manual_seed(0)
    model = create_model("cifar-v1", levels=3, num_classes=10).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = model(images)
        z = model.encoder(images)
        logits = model.context(model.quantizer(z).values)
    log_p = torch.log_softmax(logits.double(), dim=-1).gather(-1, out.symbols.unsqueeze(-1)).squeeze(-1)
    expected_bits = -log_p.flatten(1).sum(1) / math.log(2)
    torch.testing.assert_close(out.bits.double(), expected_bits, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(out.bpp, out.bits / (32 * 32))
    assert out.symbols.shape == (2, 16, 8, 8)
