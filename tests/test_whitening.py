"""The whitened first layer: principal directions of image patches, and how the training loop starts from them."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from jointcodec.baselines.airnet import create_airnet
from jointcodec.models import create_model
from jointcodec.models.whitening import patch_eigenbasis, whiten_first_conv


def correlated_images(count: int = 64, seed: int = 0) -> torch.Tensor:
    """Smooth, colour-correlated images: neighbouring pixels and channels move together, as in photographs."""
    generator = torch.Generator().manual_seed(seed)
    base = torch.randn(count, 1, 36, 36, generator=generator)
    smooth = nn.functional.avg_pool2d(base, 5, stride=1)  # 32 x 32, strongly correlated neighbours
    noise = 0.2 * torch.randn(count, 3, 32, 32, generator=generator)
    return smooth.expand(-1, 3, -1, -1) + noise


def output_covariance(images: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    features = nn.functional.conv2d(images.double(), weight.double()).permute(0, 2, 3, 1).flatten(0, 2)
    features = features - features.mean(0)
    return features.T @ features / len(features)


def test_the_eigenbasis_holds_the_leading_directions_unit_norm_and_ascending() -> None:
    values, directions = patch_eigenbasis(correlated_images(), kernel=3, count=10)
    assert directions.shape == (10, 3, 3, 3)
    assert torch.allclose(directions.flatten(1).norm(dim=1), torch.ones(10, dtype=torch.float64))
    assert bool((values[1:] >= values[:-1]).all())
    _, every = patch_eigenbasis(correlated_images(), kernel=3, count=27)
    assert torch.allclose(every[-10:], directions)  # the leading ones, whatever the count asked


def test_the_directions_decorrelate_the_patches() -> None:
    images = correlated_images()
    values, directions = patch_eigenbasis(images, kernel=3, count=12, max_patches=None)
    covariance = output_covariance(images, directions)
    assert torch.allclose(covariance.diagonal(), values, rtol=1e-6)
    off_diagonal = covariance - torch.diag(covariance.diagonal())
    assert off_diagonal.abs().max() < 1e-6 * values.max()
    random = output_covariance(images, torch.randn(12, 3, 3, 3, dtype=torch.float64))
    assert (random - torch.diag(random.diagonal())).abs().max() > 0.1 * random.diagonal().max()


def test_bad_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="28 filters asked of 27-dimensional patches"):
        patch_eigenbasis(correlated_images(), kernel=3, count=28)


def test_the_encoders_first_conv_becomes_signed_pairs_at_its_own_norm() -> None:
    model = create_model("cifar-v1-deep", levels=2, num_classes=10)
    conv = model.encoder.stem[0][0]
    norm_before = conv.weight.detach().flatten(1).norm(dim=1).mean()
    assert whiten_first_conv(model.encoder, correlated_images()) is conv
    weight = conv.weight.detach()
    half = conv.out_channels // 2
    assert torch.equal(weight[:half], -weight[half:])
    assert torch.allclose(weight.flatten(1).norm(dim=1), norm_before.expand(conv.out_channels))
    _, directions = patch_eigenbasis(correlated_images(), kernel=3, count=half)
    assert torch.allclose(weight[:half] / norm_before, directions.float(), atol=1e-6)


def test_an_odd_filter_keeps_its_random_start() -> None:
    layer = nn.Sequential(nn.Conv2d(3, 5, 3))
    last = layer[0].weight[4].detach().clone()
    whiten_first_conv(layer, correlated_images())
    assert torch.equal(layer[0].weight[4], last)
    assert torch.equal(layer[0].weight[:2], -layer[0].weight[2:4])


def test_a_model_whose_first_conv_reads_other_channels_is_refused() -> None:
    with pytest.raises(ValueError, match="does not read the images' channels"):
        whiten_first_conv(nn.Sequential(nn.Conv2d(1, 4, 3)), correlated_images())


def test_the_airnet_stem_is_the_whitened_eigenbasis() -> None:
    model = create_airnet("airnet-s", 10)
    images = correlated_images(16)
    model.init_whitening(images, eps=0.0)
    weight = model.whiten.weight.detach()
    assert torch.equal(weight[:12], -weight[12:])
    covariance = output_covariance(images, weight[:12])
    assert torch.allclose(covariance, torch.eye(12, dtype=torch.float64), atol=1e-4)  # white: unit, uncorrelated
