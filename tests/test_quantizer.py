"""The learned quantizer: hard nearest-center values forward, soft gradients backward."""

from __future__ import annotations

import pytest
import torch

from jointcodec import ConfigError
from jointcodec.models import LearnedQuantizer, create_model


def brute_force_nearest(z: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Index of the nearest center, one center at a time (first one wins a tie)."""
    best = torch.zeros(z.shape, dtype=torch.int64)
    best_distance = (z - centers[0]).abs()
    for i in range(1, len(centers)):
        distance = (z - centers[i]).abs()
        closer = distance < best_distance
        best = torch.where(closer, torch.full_like(best, i), best)
        best_distance = torch.where(closer, distance, best_distance)
    return best


@pytest.mark.parametrize("levels", [2, 3, 6])
@pytest.mark.parametrize("shuffle", [False, True], ids=["sorted", "shuffled"])
def test_forward_is_exactly_the_nearest_center(levels: int, shuffle: bool) -> None:
    torch.manual_seed(levels)
    quantizer = LearnedQuantizer(levels)
    with torch.no_grad():  # learned centers drift: unsorted and unevenly spaced
        centers = torch.randn(levels) * 2
        quantizer.centers.copy_(centers[torch.randperm(levels)] if shuffle else centers.sort().values)
    z = torch.randn(4, 5, 3, 7) * 3

    q = quantizer(z)

    expected = brute_force_nearest(z, quantizer.centers.detach())
    assert q.symbols.dtype == torch.int64
    assert torch.equal(q.symbols, expected)
    assert torch.equal(q.values, quantizer.centers.detach()[expected])
    assert torch.equal(quantizer.symbols(z), expected)
    assert torch.equal(quantizer.dequantize(q.symbols), q.values.detach())
    # The one-hot is exactly hard in the forward pass (the context model's code length depends on it).
    assert torch.equal(q.one_hot, torch.nn.functional.one_hot(expected, levels).to(q.one_hot.dtype))


def test_ties_go_to_the_lower_index() -> None:
    quantizer = LearnedQuantizer(3)  # centers -2, 0, 2: midpoints -1 and 1
    q = quantizer(torch.tensor([[-1.0, 1.0, -3.0, 3.0]]))
    assert q.symbols.tolist() == [[0, 1, 0, 2]]
    assert q.values.tolist() == [[-2.0, 0.0, -2.0, 2.0]]


@pytest.mark.parametrize("levels", [2, 3, 6])
def test_gradient_reaches_the_encoder_input_and_the_centers(levels: int) -> None:
    torch.manual_seed(0)
    quantizer = LearnedQuantizer(levels)
    z = (torch.randn(2, 4, 5, 5) * 1.5).requires_grad_()
    q = quantizer(z)
    weights = torch.randn(q.values.shape)  # a generic downstream loss
    (q.values * weights).sum().backward()

    assert z.grad is not None and torch.isfinite(z.grad).all()
    assert z.grad.abs().sum() > 0
    assert (z.grad != 0).float().mean() > 0.5  # not just a few elements
    assert quantizer.centers.grad is not None and torch.isfinite(quantizer.centers.grad).all()
    assert quantizer.centers.grad.abs().sum() > 0


def test_gradient_through_the_one_hot_reaches_the_encoder_input() -> None:
    """The rate term is a function of ``one_hot``; its gradient must reach z too (soft assignment)."""
    torch.manual_seed(0)
    quantizer = LearnedQuantizer(4)
    z = torch.randn(2, 3, 4, 4).requires_grad_()
    q = quantizer(z)
    (q.one_hot * torch.randn(q.one_hot.shape)).sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert quantizer.centers.grad is not None and quantizer.centers.grad.abs().sum() > 0


def test_gradient_flows_through_the_whole_model_to_the_encoder() -> None:
    torch.manual_seed(0)
    model = create_model("cifar-v1", levels=3, num_classes=10)
    out = model(torch.randn(2, 3, 32, 32))
    (out.logits.sum() + out.bits.sum()).backward()
    first_conv = model.encoder.stem[0][0].weight
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0
    assert model.quantizer.centers.grad is not None and model.quantizer.centers.grad.abs().sum() > 0


@pytest.mark.parametrize("levels", [1, 0, -3])
def test_fewer_than_two_levels_is_a_config_error(levels: int) -> None:
    with pytest.raises(ConfigError, match="at least 2 levels"):
        LearnedQuantizer(levels)
    with pytest.raises(ConfigError, match="levels"):
        create_model("cifar-v1", levels=levels, num_classes=10)
