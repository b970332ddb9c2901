"""Distilling a light encoder for a trained receiver: the receiver and the bitstream stay the teacher's."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from jointcodec import ConfigError
from jointcodec.checkpoint import load_model
from jointcodec.entropy.fixedpoint import model_fingerprint
from jointcodec.models import create_model
from jointcodec.training.distill import DistillConfig, distill_encoder, imitation_loss, student_of


def test_student_shares_the_frozen_receiver() -> None:
    teacher, config = load_model("default")
    student = student_of(teacher, "cifar-v3-deep", config["num_classes"])
    assert model_fingerprint(student) == model_fingerprint(teacher)
    trainable = {name for name, p in student.named_parameters() if p.requires_grad}
    assert trainable and all(name.startswith("encoder.") for name in trainable)
    own = student.state_dict()
    for name, value in teacher.state_dict().items():
        if not name.startswith("encoder."):
            assert torch.equal(own[name], value), name


def test_a_preset_with_another_receiver_is_refused() -> None:
    teacher, config = load_model("default")
    with pytest.raises(ConfigError, match="cannot share"):
        student_of(teacher, "imagenet-v3", config["num_classes"])


def test_imitation_loss_prefers_the_teachers_symbols() -> None:
    model = create_model("cifar-v3", levels=3, num_classes=10)
    symbols = torch.randint(0, 3, (4, 16, 8, 8))
    centers = model.quantizer.centers.detach()
    at_teacher = imitation_loss(model, centers[symbols], symbols)
    elsewhere = imitation_loss(model, centers[(symbols + 1) % 3], symbols)
    assert at_teacher < elsewhere


def test_distillation_trains_only_the_encoder(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "distill"
    # A shipped teacher that held out validation images (the default trained on all of train), so the add-on does too.
    teacher, _ = load_model("cifar10-v1deep-L2")
    config = DistillConfig(teacher="cifar10-v1deep-L2", preset="cifar-v3-deep", out=str(out), epochs=1, batch_size=100,
                           train_subset=600, data_dir=str(data_dir), test_at_end=False, progress=False)
    result = distill_encoder(config)
    student, saved = load_model(out)
    assert saved["preset"]["name"] == "cifar-v3-deep" and saved["distill"]["teacher"] == "cifar10-v1deep-L2"
    assert model_fingerprint(student) == model_fingerprint(teacher)
    assert torch.equal(student.classifier.fc.weight, teacher.classifier.fc.weight)
    row = result["history"][-1]
    assert 0 <= row["train_symbol_agreement"] <= 100 and "val_top1" in row
