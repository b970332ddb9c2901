"""Protocol v2 of the baselines: the strong receiver, its recipe, the codec-robust sampler, fine-tuning, and
one tiny end-to-end sweep on real CIFAR-10 through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from jointcodec.baselines.airnet import create_airnet
from jointcodec.baselines.receiver_training import ReceiverRecipe, evaluate, load_receiver, lr_factor, train_receiver
from jointcodec.baselines.robust import RobustSource, build_pool, plan_pool
from jointcodec.codecs import get_codec
from jointcodec.errors import CheckpointError, ConfigError


def _images(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 4
    # Four classes a small network can tell apart in a few steps: the class sets the mean colour.
    base = (labels.view(-1, 1, 1, 1) * 60 + 20).expand(n, 3, 32, 32).float()
    noise = torch.randint(-15, 16, (n, 3, 32, 32), generator=g).float()
    return (base + noise).clamp(0, 255).to(torch.uint8), labels


def test_whitening_stem_decorrelates_patches() -> None:
    images, _ = _images(64)
    model = create_airnet("airnet-s", 4)
    x = (images.float() / 255 - 0.5) / 0.25
    model.init_whitening(x)
    out = torch.nn.functional.conv2d(x, model.whiten.weight[:12])
    flat = out.permute(1, 0, 2, 3).reshape(12, -1)
    cov = torch.cov(flat)
    # Whitened: the covariance of the first 12 filters' outputs is close to the identity.
    assert torch.allclose(cov, torch.eye(12), atol=0.05)
    assert not model.whiten.weight.requires_grad


def test_schedule_rises_then_falls_to_zero() -> None:
    total = 100
    values = [lr_factor(s, total, 0.2) for s in range(total + 1)]
    assert values[0] == pytest.approx(0.2)
    assert max(values) == pytest.approx(1.0) and values.index(max(values)) == 20
    assert values[-1] == 0.0
    assert lr_factor(10, total, 0.0) == pytest.approx(0.9)


def test_plan_gives_each_image_distinct_entries_spread_evenly() -> None:
    plan = plan_pool(3000, 12, 3, seed=0)
    assert plan.shape == (3, 3000)
    assert all(len(set(plan[:, i])) == 3 for i in range(3000))
    counts = np.bincount(plan.ravel(), minlength=12)
    assert counts.min() > 0.8 * counts.mean()  # uniform: each entry gets about 3 * 3000 / 12 images
    assert np.array_equal(plan, plan_pool(3000, 12, 3, seed=0))
    with pytest.raises(ConfigError):
        plan_pool(10, 4, 5, seed=0)


def test_pool_holds_each_image_decoded_at_its_planned_setting(tmp_path: Path) -> None:
    codec = get_codec("jpeg420")
    hwc = np.ascontiguousarray(_images(12)[0].permute(0, 2, 3, 1).numpy())
    entries = [(codec, 5), (codec, 60)]
    plan = plan_pool(12, 2, 2, seed=1)
    pool, rows = build_pool(hwc, entries, plan, tmp_path, log=lambda *_: None)
    assert pool.shape == (2, 12, 3, 32, 32)
    for v in range(2):
        for i in range(12):
            codec_, setting = entries[plan[v, i]]
            expected = codec_.decode(codec_.encode(hwc[i], setting))
            assert np.array_equal(pool[v, i].permute(1, 2, 0).numpy(), expected)
    assert [r["setting"] for r in rows] == [5, 60] and rows[0]["payload_bpp"] < rows[1]["payload_bpp"]


def test_robust_source_draws_versions_and_some_clean_images() -> None:
    n = 2000
    clean = torch.zeros(n, 3, 4, 4, dtype=torch.uint8)
    pool = torch.stack([torch.full((n, 3, 4, 4), v + 1, dtype=torch.uint8) for v in range(3)])
    source = RobustSource(pool, clean, torch.zeros(n, dtype=torch.long), p_clean=0.1)
    g = torch.Generator().manual_seed(0)
    first = source(1, g)[0][:, 0, 0, 0]
    counts = torch.bincount(first.long(), minlength=4).float() / n
    assert 0.07 < counts[0] < 0.13  # clean
    assert all(0.25 < c < 0.35 for c in counts[1:])  # each version about 0.9 / 3
    assert not torch.equal(first, source(2, g)[0][:, 0, 0, 0])  # a fresh draw each epoch
    with pytest.raises(ConfigError):
        RobustSource(pool, clean, torch.zeros(n, dtype=torch.long), p_clean=1.0)


def test_training_learns_resumes_and_fine_tunes_keeping_the_best_epoch(tmp_path: Path) -> None:
    images, labels = _images(512)
    val = _images(64, seed=1)
    recipe = ReceiverRecipe(epochs=3, batch_size=64, lr=0.2)  # the mechanism, not the CIFAR-tuned peak
    source = lambda epoch, g: (images, labels)  # noqa: E731
    first = train_receiver(source, 4, ReceiverRecipe(epochs=1, batch_size=64, lr=0.2), tmp_path / "a", val=val,
                           progress=False, log=lambda *_: None)
    with pytest.raises(ConfigError, match="another recipe"):
        train_receiver(source, 4, recipe, tmp_path / "a", val=val, progress=False, log=lambda *_: None)
    done = train_receiver(source, 4, recipe, tmp_path / "b", val=val, progress=False, log=lambda *_: None)
    assert len(done["history"]) == 3 and first["history"][0]["epoch"] == 1
    model, meta = load_receiver(tmp_path / "b")
    assert evaluate(model, *val)["top1"] > 60.0  # four easy classes: chance is 25 %
    assert meta["recipe"]["epochs"] == 3
    # Resuming a finished run trains nothing more and keeps the history.
    again = train_receiver(source, 4, recipe, tmp_path / "b", val=val, progress=False, log=lambda *_: None)
    assert again["history"] == done["history"]

    # Fine-tuning starts from the trained weights (epoch 0 is evaluated) and keeps the best epoch on validation.
    logged: list[str] = []
    tuned = train_receiver(source, 4, ReceiverRecipe(epochs=2, batch_size=64, lr=0.1, warmup=0.0),
                           tmp_path / "c", val=val, init_from=tmp_path / "b", keep_best=True, progress=False,
                           log=logged.append)
    assert logged[0].startswith("epoch 0 (starting weights)")
    best = max([tuned["best_val_top1"]] + [row["val_top1"] for row in tuned["history"]])
    assert tuned["best_val_top1"] == best
    model_c, meta_c = load_receiver(tmp_path / "c")
    assert evaluate(model_c, *val)["top1"] == pytest.approx(tuned["best_val_top1"])
    assert meta_c["init_from"] == str(tmp_path / "b")
    with pytest.raises(ConfigError, match="validation"):
        train_receiver(source, 4, recipe, tmp_path / "d", keep_best=True, progress=False)


def test_load_receiver_rejects_other_files(tmp_path: Path) -> None:
    bad = tmp_path / "receiver.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError):
        load_receiver(tmp_path)


def test_sweep_cli_end_to_end_on_real_cifar(cli_env: dict[str, str], tmp_path: Path) -> None:
    """Every stage on 300 training and 100 test images of real CIFAR-10, one epoch each."""
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "jointcodec.cli.main", "sweep", "clean", "robust", "test", "finetune", "scratch",
           "--codec", "jpeg420", "webp", "--epochs", "1", "--finetune-epochs", "1", "--train-subset", "300",
           "--test-subset", "100", "--val-size", "60", "--targets", "0.8", "--results", str(results),
           "--runs", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    proc = subprocess.run(cmd, env=cli_env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    robust = sorted(p.relative_to(results).as_posix() for p in results.glob("*/*-robust.json"))
    ladder = [f"jpeg420/{s}-robust.json" for s in get_codec("jpeg420").ladder]
    assert set(ladder) <= set(robust) and "clean/none-robust.json" in robust
    tuned = json.loads((results / "jpeg420" / "15-fine-tuned.json").read_text())  # q15 is nearest 0.8 bpp
    assert tuned["protocol"] == "fine-tuned" and tuned["n_test"] == 100 and tuned["cpu_s"] > 0
    assert 0.6 < tuned["payload_bpp"] < 0.9 and tuned["receiver"] == "airnet-s"
    assert json.loads((results / "clean" / "none-clean.json").read_text())["payload_bpp"] == 24.0
    assert (results / "jpeg420" / "15-scratch.json").is_file()
    assert (results / "receivers" / "robust.json").is_file()
    # A rerun finds every point done and trains nothing.
    again = subprocess.run(cmd, env=cli_env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "[robust]" not in again.stdout


def test_robust_from_clean_starts_from_the_clean_receiver(cli_env: dict[str, str], tmp_path: Path) -> None:
    """--robust-from-clean: the robust receiver is the clean one trained on the pool; test points name it."""
    results, runs = tmp_path / "results", tmp_path / "runs"
    common = ["--codec", "jpeg420", "--epochs", "1", "--train-subset", "300", "--test-subset", "100",
              "--val-size", "60", "--results", str(results), "--runs", str(runs), "--cache-dir",
              str(tmp_path / "cache"), "--no-progress", "--robust-from-clean", "1"]
    base = [sys.executable, "-m", "jointcodec.cli.main", "sweep"]
    early = subprocess.run([*base, "robust", *common], env=cli_env, capture_output=True, text=True, timeout=600)
    assert early.returncode != 0 and "clean stage first" in early.stderr and "Traceback" not in early.stderr
    proc = subprocess.run([*base, "clean", "robust", "test", "--first", "1", *common], env=cli_env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads((results / "receivers" / "robust-from-clean.json").read_text())
    assert record["init_from"] == str(runs / "clean") and record["recipe"]["warmup"] == 0.0
    assert [row["epoch"] for row in record["history"]] == [1] and record["chosen_epoch"] in (0, 1)
    assert not (runs / "robust").exists() and (runs / "robust-from-clean" / "receiver.safetensors").is_file()
    point = json.loads((results / "jpeg420" / f"{get_codec('jpeg420').ladder[0]}-robust.json").read_text())
    assert point["robust_receiver"] == "robust-from-clean"
    # clean-test: the clean receiver on each ladder's highest setting only, as protocol clean-receiver.
    ceiling = subprocess.run([*base, "clean-test", "--last", "1", *common], env=cli_env, capture_output=True,
                             text=True, timeout=600)
    assert ceiling.returncode == 0, ceiling.stderr[-2000:]
    written = sorted(p.name for p in results.glob("jpeg420/*-clean-receiver.json"))
    assert written == [f"{get_codec('jpeg420').ladder[-1]}-clean-receiver.json"]


def test_sweep_cli_bad_flags_are_one_line_errors(cli_env: dict[str, str]) -> None:
    for flags in (["nosuchstage"], ["test", "--codec", "nosuchcodec"], ["clean", "--scratch", "jpeg420"],
                  ["clean", "--receiver", "airnet-xxl"], ["test", "--last", "-1"]):
        proc = subprocess.run([sys.executable, "-m", "jointcodec.cli.main", "sweep", *flags], env=cli_env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.strip().startswith("jointcodec: error:"), proc.stderr


def test_test_time_shift_moves_content_and_reflects_the_border() -> None:
    from jointcodec.baselines.receiver_training import _shifted

    images = torch.arange(2 * 3 * 5 * 5, dtype=torch.uint8).view(2, 3, 5, 5)
    moved = _shifted(images, 1, 1)  # down-right
    assert torch.equal(moved[..., 1:, 1:], images[..., :-1, :-1])
    assert torch.equal(moved[..., 0, 1:], images[..., 1, :-1])  # reflected row
    assert torch.equal(_shifted(images, 0, 0), images)
