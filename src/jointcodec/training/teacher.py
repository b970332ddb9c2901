"""Distillation from a clean-image teacher (``train --teacher RUN``).

The teacher is a receiver trained on uncompressed images (``jointcodec sweep clean``: an airbench94-style network,
92.83 % on the CIFAR-10 test split). It sees the same augmented batch as the student, without gradient, and the
classifier also fits its softened probabilities (Hinton, Vinyals and Dean 2015): they rank the wrong classes, which
one-hot labels cannot. The teacher runs on the server side of training only: the encoder and the bitstream are
unchanged, and the teacher is not saved with the model.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from jointcodec.errors import ConfigError

TEMPERATURE = 4.0  # Hinton et al.'s range: soft enough that the wrong classes' ranking carries weight


def load_teacher(path: str, num_classes: int, device: torch.device | str) -> nn.Module:
    """The receiver at ``path`` (run directory or weights file) in eval mode, frozen, on ``device``; a ConfigError
    if it predicts another number of classes than the data set has."""
    from jointcodec.baselines.receiver_training import load_receiver  # baselines build on training, not the reverse

    teacher, meta = load_receiver(path)
    if meta["num_classes"] != num_classes:
        raise ConfigError(f"--teacher {path} predicts {meta['num_classes']} classes; the data set has {num_classes}")
    teacher.requires_grad_(False)
    return teacher.eval().to(device)


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      temperature: float = TEMPERATURE) -> torch.Tensor:
    """KL(teacher || student) of the probabilities softened by ``temperature``, times temperature squared (so its
    gradient keeps the scale of a cross-entropy's as the temperature changes), averaged over the batch."""
    student = F.log_softmax(student_logits / temperature, dim=1)
    teacher = F.log_softmax(teacher_logits / temperature, dim=1)
    return F.kl_div(student, teacher, reduction="batchmean", log_target=True) * temperature**2


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float,
                        teacher: nn.Module | None, images: torch.Tensor, teacher_weight: float) -> torch.Tensor:
    """The classifier's loss: cross-entropy on the labels, blended with the teacher's soft labels if there is one."""
    hard = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    if teacher is None:
        return hard
    with torch.no_grad():
        teacher_logits = teacher(images).float()
    return (1 - teacher_weight) * hard + teacher_weight * distillation_loss(logits, teacher_logits)
