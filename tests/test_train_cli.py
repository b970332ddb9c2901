"""Training and the command line on real CIFAR-10: resume, an end-to-end run, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from jointcodec import ConfigError
from jointcodec.checkpoint import TRAINER_STATE, WEIGHTS, load_model, save_trainer_state
from jointcodec.data import load_split, normalize
from jointcodec.evaluation import evaluate_model
from jointcodec.models import JointModel
from jointcodec.training import RunSettings, TrainConfig, recipe, train
from jointcodec.training.hyperparameters import named_recipe

CLI = [sys.executable, "-m", "jointcodec.cli.main"]
EXPECTED_KEYS = {"top1", "top5", "bpp_estimated", "n_images", "encoder_params", "encoder_macs", "latent_shape",
                 "levels", "dataset", "split"}


class Interrupted(Exception):
    """Stands in for a killed process."""


TEST_IMAGES = 1000  # test images a run's end-of-training test reads where the test is about the code path


def tiny_config(data_dir: Path, out: Path, **overrides) -> TrainConfig:
    settings = dict(preset="cifar-v1", levels=2, epochs=2, batch_size=128, train_subset=512, val_size=128,
                    device="cpu", precision="32-true", data_dir=str(data_dir), out=str(out),
                    test_at_end=False, progress=False)
    return TrainConfig(**{**settings, **overrides})


def kill_at_checkpoint(monkeypatch, epoch: int, before_state: bool = False) -> list[int]:
    """Make the next training run die, as a killed process would, when it checkpoints ``epoch``: after its
    trainer state is written, or (``before_state``) between the model file and the trainer state. Returns the
    epochs whose trainer state was written."""
    saved_epochs: list[int] = []
    original_save = recipe.save_trainer_state

    def save_then_die(run_dir, state):
        if before_state and state["epoch"] == epoch:
            raise Interrupted
        original_save(run_dir, state)
        saved_epochs.append(state["epoch"])
        if state["epoch"] == epoch:
            raise Interrupted

    monkeypatch.setattr(recipe, "save_trainer_state", save_then_die)
    return saved_epochs


@pytest.mark.slow
def test_resume_continues_from_the_last_epoch(data_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    out = tmp_path / "run"
    saved_epochs = kill_at_checkpoint(monkeypatch, 1)
    with pytest.raises(Interrupted):
        train(tiny_config(data_dir, out))
    assert saved_epochs == [1]
    first_state = torch.load(out / TRAINER_STATE, weights_only=True)
    assert first_state["epoch"] == 1
    steps_per_epoch = (512 - 128) // 128
    assert first_state["scheduler"]["last_epoch"] == steps_per_epoch
    capsys.readouterr()

    # The resumed run must start from the checkpoint, not from a fresh model.
    def no_fresh_model(*args, **kwargs):
        raise AssertionError("--resume built a fresh model")

    monkeypatch.setattr(recipe, "create_model", no_fresh_model)
    result = train(tiny_config(data_dir, out, resume=True))

    assert saved_epochs == [1, 2]  # the second call trained epoch 2 only
    assert [row["epoch"] for row in result["history"]] == [1, 2]
    assert result["history"][0] == first_state["history"][0]
    printed = capsys.readouterr().out
    assert "epoch   2" in printed and "epoch   1" not in printed
    state = torch.load(out / TRAINER_STATE, weights_only=True)
    assert state["epoch"] == 2
    assert state["scheduler"]["last_epoch"] == 2 * steps_per_epoch  # the schedule continued, not restarted
    assert state["history"] == result["history"]
    assert json.loads((out / "config.json").read_text())["epoch"] == 2
    csv_lines = (out / "metrics.csv").read_text().strip().splitlines()
    assert len(csv_lines) == 3 and csv_lines[1].startswith("1,") and csv_lines[2].startswith("2,")


@pytest.mark.slow
@pytest.mark.parametrize(("ema_decay", "low_res"), [(0.0, 0), (0.9, 0), (0.9, 2)])
def test_a_killed_run_resumes_to_the_uninterrupted_runs_weights(data_dir: Path, tmp_path: Path, monkeypatch,
                                                                ema_decay: float, low_res: int) -> None:
    # Killed between writing epoch 2's model file and its trainer state: the harder of the two kill points (the
    # model file is an epoch ahead of the optimizer), so the resumed run starts after epoch 1. With a weight
    # average, the model file holds the average, and the live weights and the average both must continue. With
    # two low-resolution epochs, the resumed run starts inside them and leaves them where the whole run did.
    settings = dict(epochs=3, train_subset=512, val_size=64, batch_size=64, ema_decay=ema_decay,
                    low_res_epochs=low_res)
    train(tiny_config(data_dir, tmp_path / "whole", **settings))
    saved_epochs = kill_at_checkpoint(monkeypatch, 2, before_state=True)
    with pytest.raises(Interrupted):
        train(tiny_config(data_dir, tmp_path / "killed", **settings))
    monkeypatch.undo()
    assert saved_epochs == [1]
    with pytest.raises(ConfigError, match="--resume: .* another recipe: epochs=3 \\(now 4\\)"):
        train(tiny_config(data_dir, tmp_path / "killed", **{**settings, "epochs": 4}, resume=True))
    resumed = train(tiny_config(data_dir, tmp_path / "killed", **settings, resume=True))

    whole, killed = (load_file(str(tmp_path / run / WEIGHTS)) for run in ("whole", "killed"))
    assert whole.keys() == killed.keys()
    assert [name for name in whole if not torch.equal(whole[name], killed[name])] == []
    expected = torch.load(tmp_path / "whole" / TRAINER_STATE, weights_only=True)["history"]
    assert [drop_clock(row) for row in resumed["history"]] == [drop_clock(row) for row in expected]


@pytest.mark.slow
def test_low_resolution_epochs_train_on_downscaled_images_and_validate_at_full_size(data_dir: Path, tmp_path: Path,
                                                                                    monkeypatch) -> None:
    sizes: list[tuple[bool, int]] = []  # (training, image side) of every forward pass
    forward = JointModel.forward

    def spy(self, images, *args, **kwargs):
        sizes.append((self.training, images.shape[-1]))
        return forward(self, images, *args, **kwargs)

    monkeypatch.setattr(JointModel, "forward", spy)
    train(tiny_config(data_dir, tmp_path, epochs=3, low_res_epochs=2, low_res_size=16, val_every=1))
    steps = (512 - 128) // 128
    trained = [side for training, side in sizes if training]
    assert trained == [16] * (2 * steps) + [32] * steps
    assert {side for training, side in sizes if not training} == {32}


@pytest.mark.slow
def test_a_whitened_stem_starts_from_the_training_images_and_a_resume_keeps_its_weights(data_dir: Path, tmp_path: Path,
                                                                                      monkeypatch) -> None:
    calls: list[torch.Tensor] = []
    whiten = recipe.whiten_first_conv

    def spy(module, images):
        calls.append(images)
        return whiten(module, images)

    monkeypatch.setattr(recipe, "whiten_first_conv", spy)
    config = tiny_config(data_dir, tmp_path / "run", epochs=2, whiten_stem=True)
    kill_at_checkpoint(monkeypatch, epoch=1)
    with pytest.raises(Interrupted):
        train(config)
    train_set, _ = recipe.training_split(config.split()[0], str(data_dir), False, 32)
    assert len(calls) == 1 and torch.equal(calls[0], normalize(train_set.images))  # 384 < CALIBRATION_IMAGES
    monkeypatch.setattr(recipe, "save_trainer_state", save_trainer_state)
    train(tiny_config(data_dir, tmp_path / "run", epochs=2, whiten_stem=True, resume=True))
    assert len(calls) == 1  # the resumed run continues from its saved stem


@pytest.mark.slow
def test_the_recipes_translation_and_cutout_reach_the_augmentation(data_dir: Path, tmp_path: Path,
                                                                  monkeypatch) -> None:
    shifts: list[int] = []
    squares: list[tuple[int, float]] = []
    augment, cut = recipe.flip_and_translate, recipe.cutout

    def spy(images, translate, generator):
        shifts.append(translate)
        return augment(images, translate, generator)

    def spy_cutout(images, size, generator):
        squares.append((size, images.mean().item()))  # normalised images: the square is cut after normalize
        return cut(images, size, generator)

    monkeypatch.setattr(recipe, "flip_and_translate", spy)
    monkeypatch.setattr(recipe, "cutout", spy_cutout)
    train(tiny_config(data_dir, tmp_path, epochs=1, translate=3, cutout=8))
    steps = (512 - 128) // 128
    assert shifts == [3] * steps
    assert [size for size, _ in squares] == [8] * steps and all(abs(mean) < 1 for _, mean in squares)


@pytest.mark.slow
def test_val_every_validates_after_every_nth_epoch_and_the_last(data_dir: Path, tmp_path: Path) -> None:
    result = train(tiny_config(data_dir, tmp_path, epochs=3, val_every=2))
    assert [row["epoch"] for row in result["history"] if "val_top1" in row] == [2, 3]
    header, *rows = (tmp_path / "metrics.csv").read_text().strip().splitlines()
    val_column = header.split(",").index("val_top1")
    assert [bool(row.split(",")[val_column]) for row in rows] == [False, True, True]


@pytest.mark.slow
def test_a_weight_average_is_what_is_validated_saved_and_tested(data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    # The end-of-training test on the first 1,000 test images: the same code path at a tenth of the time.
    full_test_set = recipe.JointTask.test_set
    monkeypatch.setattr(recipe.JointTask, "test_set",
                        lambda task, *args: full_test_set(task, *args).subset(slice(0, TEST_IMAGES)))
    result = train(tiny_config(data_dir, tmp_path, epochs=2, ema_decay=0.9, test_at_end=True))
    assert result["test"]["n_images"] == TEST_IMAGES
    saved = load_file(str(tmp_path / WEIGHTS))
    state = torch.load(tmp_path / TRAINER_STATE, weights_only=True)
    live, average = state["model"], state["average"]
    assert average["n_averaged"].item() == 2 * ((512 - 128) // 128)  # one update per step
    averaged = {name.removeprefix("module."): tensor for name, tensor in average.items() if name != "n_averaged"}
    assert averaged.keys() == saved.keys() == live.keys()
    assert all(torch.equal(saved[name], averaged[name].to(saved[name].dtype)) for name in saved)
    moved = [name for name in saved if saved[name].is_floating_point() and not torch.equal(saved[name], live[name])]
    assert any(".weight" in name for name in moved)  # the file is not the live weights
    assert any("running_mean" in name for name in moved)  # batch-norm statistics are averaged too
    # The final test reads the saved (averaged) model, as `evaluate` of the run directory would.
    model, _ = load_model(tmp_path)
    test_set = load_split("cifar10", "test", str(data_dir), False, 32).subset(slice(0, TEST_IMAGES))
    again = evaluate_model(model, test_set, 500, progress=False, device="cpu")
    assert again["top1"] == result["test"]["top1"]


def drop_clock(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "elapsed_s"}


@pytest.mark.slow
def test_the_fast_recipe_runs_on_a_tiny_subset_and_its_loss_falls(data_dir: Path, tmp_path: Path) -> None:
    # The named recipe as `train --recipe fast` builds it (its preset and schedule), on 144 images in batches of 16.
    fast = named_recipe("fast", train_subset=160, val_size=16, batch_size=16)
    run = RunSettings(device="cpu", precision="32-true", data_dir=str(data_dir), out=str(tmp_path), test_at_end=False,
                      progress=False)
    history = train(fast, run)["history"]
    assert len(history) == fast.epochs and (tmp_path / WEIGHTS).is_file()
    losses = [row["train_loss"] for row in history]
    assert losses[-1] < 0.9 * losses[0], losses


@pytest.mark.slow
def test_resume_refuses_another_preset(data_dir: Path, tmp_path: Path) -> None:
    train(tiny_config(data_dir, tmp_path, epochs=1, train_subset=384, val_size=0))
    with pytest.raises(ConfigError, match="--resume"):
        train(tiny_config(data_dir, tmp_path, epochs=2, train_subset=384, val_size=0, resume=True, levels=3))


def run_cli(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 150) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_train_then_evaluate_end_to_end(cli_env: dict[str, str], tmp_path: Path) -> None:
    run, report = tmp_path / "run", tmp_path / "eval.json"
    started = time.monotonic()
    trained = run_cli(["train", "--preset", "cifar-v1", "--levels", "2", "--train-subset", "1024",
                       "--val-size", "128", "--batch-size", "128", "--epochs", "1", "--device", "cpu",
                       "--precision", "32-true", "--no-test", "--no-progress", "--out", str(run)], cli_env, tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert (run / WEIGHTS).is_file() and (run / "metrics.csv").is_file()
    evaluated = run_cli(["evaluate", "--checkpoint", str(run), "--json", str(report), "--limit", "500",
                         "--no-progress"], cli_env, tmp_path)
    elapsed = time.monotonic() - started
    assert evaluated.returncode == 0, evaluated.stderr
    assert elapsed < 120, f"train + evaluate took {elapsed:.0f} s"

    result = json.loads(report.read_text())
    assert not EXPECTED_KEYS - set(result), f"missing keys: {EXPECTED_KEYS - set(result)}"
    assert result["n_images"] == 500
    assert result["dataset"] == "cifar10" and result["split"] == "test"
    assert result["levels"] == 2 and result["latent_shape"] == [16, 8, 8]
    assert 0.0 <= result["top1"] <= result["top5"] <= 100.0
    assert 0.0 < result["bpp_estimated"] < 2.0  # 16x8x8 binary symbols over 32x32 pixels: about 1 bpp at most
    # The edge encoder is the cheap part: far fewer parameters and MACs than the server classifier.
    assert 0 < 10 * result["encoder_params"] < result["classifier_params"]
    assert 0 < 2 * result["encoder_macs"] < result["classifier_macs"]
    assert "top-1" in evaluated.stdout and f"wrote {report}" in evaluated.stdout


BAD_INPUTS = {  # case: (arguments, what the one line must say)
    "unknown-flag": (["train", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    "unknown-preset": (["train", "--preset", "no-such-preset"], "unknown preset 'no-such-preset'"),
    "levels-1": (["train", "--levels", "1"], "--levels must be >= 2"),
    "devices-0": (["train", "--devices", "0"], "--devices must be >= 1"),
    "evaluate-negative-limit": (["evaluate", "--limit", "-5"], "argument --limit: must be >= 0"),
    "negative-beta": (["train", "--beta", "-1"], "--beta must be >= 0"),
    "unknown-precision": (["train", "--precision", "7"], "argument --precision: invalid choice: '7'"),
    "unknown-device": (["train", "--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
    "negative-weight-decay": (["train", "--weight-decay", "-1"], "--weight-decay must be >= 0"),
    "serve-port-out-of-range": (["serve", "--port", "70000"], "--port must be in [0, 65535]"),
    "low-res-all-epochs": (["train", "--epochs", "5", "--low-res-epochs", "5"],
                           "--low-res-epochs must be in [0, --epochs)"),
    "missing-data": (["train", "--epochs", "1", "--device", "cpu", "--no-progress"], "cifar10 not found under"),
    "missing-checkpoint": (["evaluate", "--checkpoint", "{tmp}/no-such-run"], "no checkpoint at"),
    "missing-init-from": (["train", "--init-from", "{tmp}/no-such-run"], "no checkpoint at"),
    "distill-unknown-preset": (["distill-encoder", "--preset", "no-such-preset"], "unknown preset 'no-such-preset'"),
    "distill-missing-teacher": (["distill-encoder", "--teacher", "{tmp}/no-such-run"], "no checkpoint at"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_error_line(case: str, cli_env: dict[str, str], tmp_path: Path) -> None:
    empty = tmp_path / "empty-data"
    empty.mkdir()
    env = {**cli_env, "JOINTCODEC_DATA": str(empty)}
    args, message = BAD_INPUTS[case]
    args = [a.format(tmp=tmp_path) for a in args]
    if args[0] in ("train", "distill-encoder"):
        args += ["--out", str(tmp_path / "run")]  # never the default run directory
    proc = run_cli(args, env, tmp_path, timeout=60)

    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].strip(), f"stderr was:\n{proc.stderr}"
    assert "error" in lines[0] and message in lines[0]
    assert not (tmp_path / "run").exists()


def test_a_diverging_run_stops_with_one_error_line_and_saves_nothing(cli_env: dict[str, str], tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = run_cli(["train", "--preset", "cifar-v1", "--epochs", "2", "--train-subset", "600", "--val-size", "100",
                    "--batch-size", "50", "--lr", "1e12", "--device", "cpu", "--out", str(run), "--no-progress"],
                   cli_env, tmp_path, timeout=300)

    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "error" in lines[0] and "in epoch 1" in lines[0] and "lower --lr" in lines[0], \
        proc.stderr
    assert not (run / WEIGHTS).exists() and not (run / TRAINER_STATE).exists()
