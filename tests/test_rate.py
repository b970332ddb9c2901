"""The rate penalty works: a lower target bit rate gives a lower estimated rate, same seed, same data."""

from __future__ import annotations

from pathlib import Path

import pytest

from jointcodec.training import TrainConfig, train
from jointcodec.training.hyperparameters import RATE_RAMP_EPOCHS


def tiny_run(data_dir: Path, out: Path, target_bpp: float) -> list[dict]:
    config = TrainConfig(
        preset="cifar-v1", dataset="cifar10", levels=2, target_bpp=target_bpp, beta=20.0,
        # The penalty's weight ramps up over RATE_RAMP_EPOCHS: run them all, and one at full strength.
        epochs=RATE_RAMP_EPOCHS + 1, batch_size=128, train_subset=1024, val_size=0, seed=0,
        device="cpu", precision="32-true", data_dir=str(data_dir), out=str(out),
        test_at_end=False, progress=False,
    )
    return train(config)["history"]


@pytest.mark.slow
def test_estimated_bits_fall_when_the_target_bpp_falls(data_dir: Path, tmp_path: Path) -> None:
    high = tiny_run(data_dir, tmp_path / "high", target_bpp=2.0)
    low = tiny_run(data_dir, tmp_path / "low", target_bpp=0.1)

    assert [row["epoch"] for row in high] == [row["epoch"] for row in low] == list(range(1, RATE_RAMP_EPOCHS + 2))
    high_bpp, low_bpp = high[-1]["train_bpp"], low[-1]["train_bpp"]
    # Latent 16x8x8 with L=2 on 32x32 images: at most about 1 bpp with an uninformed context model.
    assert low_bpp >= 0.0 and 0.0 < high_bpp < 1.5
    assert low_bpp < 0.5 * high_bpp, f"target 0.1 -> {low_bpp:.3f} bpp, target 2.0 -> {high_bpp:.3f} bpp"
    assert low_bpp < 0.4
