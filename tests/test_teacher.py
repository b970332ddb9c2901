"""Distillation from a clean-image teacher: the loss, the teacher's checks, and a short run with one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch.nn import functional as F

from jointcodec.baselines.airnet import create_airnet
from jointcodec.baselines.receiver_training import FORMAT, _save_weights
from jointcodec.baselines.receiver_training import WEIGHTS as RECEIVER_WEIGHTS
from jointcodec.checkpoint import WEIGHTS, read_config
from jointcodec.cli.main import main
from jointcodec.errors import ConfigError
from jointcodec.training import RunSettings, train
from jointcodec.training.hyperparameters import named_recipe
from jointcodec.training.teacher import TEMPERATURE, classification_loss, distillation_loss, load_teacher


def saved_teacher(folder: Path, num_classes: int = 10) -> Path:
    """An (untrained) airnet-s receiver in the format `jointcodec sweep clean` writes."""
    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "recipe": {"preset": "airnet-s"}, "num_classes": num_classes, "epoch": 0}
    _save_weights(folder / RECEIVER_WEIGHTS, create_airnet("airnet-s", num_classes), meta)
    return folder


def test_the_distillation_loss_is_the_softened_kl_scaled_by_t_squared() -> None:
    student, teacher = torch.randn(8, 10), torch.randn(8, 10)
    soft_teacher = F.softmax(teacher / TEMPERATURE, dim=1)
    expected = (soft_teacher * (soft_teacher.log() - F.log_softmax(student / TEMPERATURE, dim=1))).sum(1).mean()
    assert torch.allclose(distillation_loss(student, teacher), expected * TEMPERATURE**2, atol=1e-5)
    assert distillation_loss(teacher, teacher).abs() < 1e-6 < distillation_loss(student, teacher)


def test_the_teacher_weight_blends_the_two_losses(tmp_path: Path) -> None:
    teacher = load_teacher(str(saved_teacher(tmp_path / "teacher")), 10, "cpu")
    images, labels, logits = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3]), torch.randn(4, 10)
    hard = F.cross_entropy(logits, labels, label_smoothing=0.2)
    with torch.no_grad():
        soft = distillation_loss(logits, teacher(images).float())
    assert torch.equal(classification_loss(logits, labels, 0.2, None, images, 0.5), hard)
    assert torch.allclose(classification_loss(logits, labels, 0.2, teacher, images, 0.0), hard)
    assert torch.allclose(classification_loss(logits, labels, 0.2, teacher, images, 1.0), soft)
    assert torch.allclose(classification_loss(logits, labels, 0.2, teacher, images, 0.25), 0.75 * hard + 0.25 * soft)
    assert not any(p.requires_grad for p in teacher.parameters()) and not teacher.training


def test_a_teacher_of_another_class_count_or_a_missing_one_is_refused(tmp_path: Path, capsys) -> None:
    with pytest.raises(ConfigError, match="predicts 100 classes; the data set has 10"):
        load_teacher(str(saved_teacher(tmp_path / "c100", num_classes=100)), 10, "cpu")
    assert main(["train", "--teacher", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run")]) == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "no such receiver" in error
    assert main(["train", "--teacher-weight", "1.5", "--out", str(tmp_path / "run")]) == 1
    assert "--teacher-weight must be in [0, 1]" in capsys.readouterr().err


@pytest.mark.slow
def test_a_run_with_a_teacher_trains_and_records_it_but_does_not_ship_it(data_dir: Path, tmp_path: Path) -> None:
    teacher = str(saved_teacher(tmp_path / "teacher"))
    recipe = named_recipe("default", preset="cifar-v1", epochs=1, train_subset=256, val_size=0, batch_size=64,
                          teacher=teacher, teacher_weight=0.5)
    run = RunSettings(device="cpu", precision="32-true", data_dir=str(data_dir), out=str(tmp_path / "run"),
                      test_at_end=False, progress=False)
    history = train(recipe, run)["history"]
    assert len(history) == 1 and history[0]["train_loss"] > 0
    assert read_config(tmp_path / "run" / WEIGHTS)["train"]["teacher"] == teacher
    assert not any(key.startswith("teacher") for key in load_file(str(tmp_path / "run" / WEIGHTS)))
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["teacher_weight"] == 0.5
