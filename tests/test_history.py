"""The per-epoch history: its CSV and its collapse warning."""

import csv

from jointcodec.training.history import COLLAPSE_DROP, History


def row(epoch: int, top1: float) -> dict:
    return {"epoch": epoch, "train_loss": 1.0, "train_top1": top1, "train_bpp": 0.75, "elapsed_s": 10.0 * epoch}


def test_a_collapse_warns_and_ordinary_noise_does_not(tmp_path) -> None:
    history = History(tmp_path / "metrics.csv")
    history.append(row(1, 50.79))
    assert history.collapse_warning() is None  # one epoch: nothing to compare
    history.append(row(2, 51.47))
    assert history.collapse_warning() is None  # rising
    history.append(row(3, 51.47 - COLLAPSE_DROP + 0.01))
    assert history.collapse_warning() is None  # a large dip, still under the threshold
    history.append(row(4, 60.0))
    history.append(row(5, 20.90))  # the CIFAR-100 run at peak lr 0.05: 51.47 % then 20.90 %
    warning = history.collapse_warning()
    assert warning is not None and "60.00 % to 20.90 % in epoch 5" in warning and "--lr" in warning
    with open(tmp_path / "metrics.csv") as f:
        assert [float(r["train_top1"]) for r in csv.DictReader(f)][-1] == 20.90
