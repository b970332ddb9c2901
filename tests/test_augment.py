"""Batch augmentation on uint8 tensors, and the downscaling of low-resolution epochs."""

from __future__ import annotations

import torch

from jointcodec.data import cutout, downscale, flip_and_translate


def test_translation_shifts_each_image_by_a_whole_crop_of_its_padded_self() -> None:
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.uint8).view(2, 3, 8, 8)
    moved = flip_and_translate(images, 2, torch.Generator().manual_seed(0))
    assert moved.shape == images.shape and moved.dtype == images.dtype
    for n in range(2):  # flipped or not, then cropped from the reflect-padded image
        crops = [torch.nn.functional.pad(image.float(), (2,) * 4, mode="reflect")[0, :, y:y + 8, x:x + 8]
                 for image in (images[n:n + 1], images[n:n + 1].flip(-1)) for y in range(5) for x in range(5)]
        assert sum(torch.equal(moved[n].float(), crop) for crop in crops) == 1


def test_the_same_generator_seed_draws_the_same_batch() -> None:
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    first, second = (flip_and_translate(images, 2, torch.Generator().manual_seed(7)) for _ in range(2))
    assert torch.equal(first, second)


def test_cutout_zeroes_one_square_per_image_clipped_at_the_border() -> None:
    images = torch.ones(256, 3, 32, 32)
    cut = cutout(images, 8, torch.Generator().manual_seed(0))
    zeroed = (cut == 0).all(dim=1)  # the same pixels in every channel
    assert torch.equal((cut == 0).any(dim=1), zeroed)
    counts = zeroed.flatten(1).sum(1)
    assert counts.max() == 64 and counts.min() >= 16  # a whole 8 x 8 square, or one clipped to a corner (4 x 4)
    assert (counts < 64).any()  # some squares reach past the border
    for mask in zeroed[:16]:  # each zeroed region is one axis-aligned rectangle
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        assert mask.sum() == len(rows) * len(cols) and rows.diff().eq(1).all() and cols.diff().eq(1).all()
    assert torch.equal(cut, cutout(images, 8, torch.Generator().manual_seed(0)))


def test_no_cutout_returns_the_batch_and_draws_nothing() -> None:
    images = torch.rand(4, 3, 32, 32)
    generator = torch.Generator().manual_seed(3)
    assert cutout(images, 0, generator) is images
    assert torch.equal(torch.rand(5, generator=generator), torch.rand(5, generator=torch.Generator().manual_seed(3)))


def test_downscale_keeps_a_flat_image_flat_and_the_mean_of_a_textured_one() -> None:
    flat = torch.full((2, 3, 32, 32), 0.75)
    assert torch.allclose(downscale(flat, 24), torch.full((2, 3, 24, 24), 0.75))
    textured = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    small = downscale(textured, 24)
    assert small.shape == (4, 3, 24, 24)
    assert torch.allclose(small.mean(dim=(2, 3)), textured.mean(dim=(2, 3)), atol=0.01)
    # Antialiased: a one-pixel checkerboard averages out instead of aliasing into a pattern.
    checker = (torch.arange(32).view(1, 1, 32, 1) + torch.arange(32).view(1, 1, 1, 32)) % 2
    assert downscale(checker.float().expand(1, 3, 32, 32), 16).std() < 0.05
