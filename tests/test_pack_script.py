"""The lossless CIFAR packer that carries the data set to a machine with a size-capped transfer and no network
(tools/pack_cifar_lossless.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "pack_cifar_lossless.py"
spec = importlib.util.spec_from_file_location("pack_cifar_lossless", SCRIPT)
packer = importlib.util.module_from_spec(spec)
spec.loader.exec_module(packer)


def test_residuals_round_trip_exactly_on_extreme_and_random_pixels() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    images[0] = 0
    images[1] = 255
    images[2, :, :, 0], images[2, :, :, 1] = 255, 0  # R - G wraps around mod 256
    assert np.array_equal(packer.from_residuals(packer.to_residuals(images)), images)


def test_pack_unpack_reproduces_the_npz_copy(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    source = tmp_path / "cifar10"
    source.mkdir()
    for split, n in (("train", 7), ("test", 3)):
        np.savez(source / f"{split}.npz", images=rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
                 labels=rng.integers(0, 10, n))
    packer.pack(source, tmp_path / "packed", parts=2)
    packer.unpack(tmp_path / "packed", tmp_path / "copy")
    for split in ("train", "test"):
        a, b = np.load(source / f"{split}.npz"), np.load(tmp_path / "copy" / f"{split}.npz")
        assert np.array_equal(a["images"], b["images"]) and np.array_equal(a["labels"], b["labels"])
