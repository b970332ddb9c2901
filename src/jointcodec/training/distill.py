"""Distilling a cheaper edge encoder for an existing receiver (``jointcodec distill-encoder``).

The teacher's quantizer centers, context model and classifier are copied and frozen, so the bitstream
(its fingerprint), the receiver service and any decoder stay exactly the teacher's; only a new encoder
of another preset (same latent shape) is trained, on the teacher's training split, by the main training
loop (``recipe.train``) with :class:`DistillTask`:

  loss = CE(frozen classifier on the student's latent, label)      the task, through the real receiver
       + beta * max(0, bpp - target)                                the rate under the frozen context model
       + CE(student's soft assignment, teacher's symbols)          imitation: send what the teacher sends

The receiver runs in eval mode (its BatchNorm statistics are the deployed ones); the student's own
BatchNorms train. Checkpoints are ordinary model checkpoints: ``evaluate``, ``encode``, ``export``
and ``train --init-from`` take them as they are.
"""

from __future__ import annotations

import math
from dataclasses import asdict, replace
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from jointcodec.checkpoint import load_model, read_config, resolve_weights
from jointcodec.data import ImageSet
from jointcodec.entropy import model_fingerprint as fingerprint
from jointcodec.errors import ConfigError
from jointcodec.models import JointModel, JointOutput, Preset, create_model
from jointcodec.training.history import History
from jointcodec.training.hyperparameters import DistillConfig, Recipe, RunSettings
from jointcodec.training.recipe import JointTask, train

__all__ = ["DistillConfig", "DistillTask", "distill_encoder", "freeze_receiver", "imitation_loss", "student_of"]


def distill_encoder(config: DistillConfig) -> dict:
    """Train a new encoder for the teacher's receiver; returns the history and test metrics."""
    config.validate()
    teacher_config = read_config(resolve_weights(config.teacher))
    teacher_recipe = Recipe.from_record(teacher_config.get("train"))
    recorded = teacher_config.get("train") or {}  # a teacher without a training record: no rate penalty
    target = config.target_bpp if config.target_bpp is not None else float(recorded.get("target_bpp", math.inf))
    # The teacher's recipe and validation split; the student's preset, schedule and rate.
    recipe = replace(teacher_recipe.for_addon(config.train_subset), preset=config.preset,
                     dataset=teacher_config["dataset"], epochs=config.epochs, batch_size=config.batch_size,
                     lr=config.lr, weight_decay=config.weight_decay, beta=config.beta, target_bpp=target,
                     seed=config.seed, init_from=None)
    # On the CPU in fp32, as distillation has always run (it has no --device flag).
    run = config.run_settings(config.out, device="cpu", precision="32-true")
    return train(recipe, run, DistillTask(config, run))


class DistillTask(JointTask):
    """The student (the teacher's frozen receiver + a new encoder) on the teacher's training split; only the
    encoder trains, against the labels, the rate and the teacher's symbols."""

    def __init__(self, config: DistillConfig, run: RunSettings) -> None:
        super().__init__(run)
        self.config = config
        self.teacher: JointModel | None = None
        self.bitstream = ""

    def datasets(self, recipe: Recipe, preset: Preset) -> tuple[ImageSet, ImageSet | None]:
        # The teacher is built here, after the loop has seeded torch: building it draws from the generator
        # before the student's encoder is initialised.
        self.teacher, _ = load_model(self.config.teacher)
        self.teacher.encoder.to(memory_format=torch.channels_last)
        self.bitstream = fingerprint(self.teacher)
        return super().datasets(recipe, preset)

    def build(self, recipe: Recipe, preset: Preset, num_classes: int) -> nn.Module:
        return student_of(self.teacher, recipe.preset, num_classes)

    def resume(self, recipe: Recipe, out: Path) -> nn.Module:
        student = freeze_receiver(super().resume(recipe, out))
        if fingerprint(student) != self.bitstream:
            raise ConfigError(f"{out} does not share the teacher's bitstream (fingerprints differ)")
        return student

    def sections(self) -> dict:
        return {"distill": asdict(self.config)}

    def trainable(self, model: nn.Module) -> nn.Module:
        return model.encoder

    def train_mode(self, model: nn.Module) -> None:
        model.eval()
        model.module.encoder.train()  # the receiver keeps its deployed BatchNorm statistics

    def channels_last(self, model: nn.Module) -> None:
        model.encoder.to(memory_format=torch.channels_last)

    def extra_loss(self, model: nn.Module, extra: nn.Module | None, images: torch.Tensor, output: JointOutput,
                   ) -> tuple[torch.Tensor, dict[str, float]]:
        with torch.no_grad():
            wanted = self.teacher.quantizer.symbols(self.teacher.encoder(images))
        term = self.config.imitation_weight * imitation_loss(model, output.latent, wanted)
        return term, {"symbol_agreement": (output.symbols == wanted).float().mean().item()}

    def epoch_metrics(self, sums: dict[str, float], steps: int) -> dict:
        return {"train_symbol_agreement": 100 * sums["symbol_agreement"] / steps}

    def epoch_line(self, row: dict) -> str:
        return f"{History.format_line(row)} | symbols as the teacher's {row['train_symbol_agreement']:.2f}%"

    def test_extras(self) -> dict:
        return {"teacher": str(self.config.teacher), "fingerprint": self.bitstream}

    def describe(self, recipe: Recipe) -> str:
        return (f"a {recipe.preset} encoder for the receiver of {self.config.teacher} (fingerprint "
                f"{self.bitstream[:16]}; target {recipe.target_bpp:.3f} bpp)")


def student_of(teacher: JointModel, preset_name: str, num_classes: int) -> JointModel:
    """A model of ``preset_name`` that shares the teacher's receiver (centers, context, classifier), frozen."""
    student = create_model(preset_name, teacher.levels, num_classes)
    receiver = {k: v for k, v in teacher.state_dict().items() if not k.startswith("encoder.")}
    try:
        student.load_state_dict(receiver, strict=False)
    except RuntimeError as err:
        raise ConfigError(f"preset {preset_name} cannot share this teacher's receiver (latent shape or "
                          f"classifier differ): {err}") from err
    return freeze_receiver(student)


def freeze_receiver(model: JointModel) -> JointModel:
    for part in (model.quantizer, model.context, model.classifier):
        part.requires_grad_(False)
    return model


def imitation_loss(model: JointModel, latent: torch.Tensor, teacher_symbols: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the soft assignment softmax(-sigma (z - c)^2) against the teacher's symbols."""
    centers = model.quantizer.centers.view(1, -1, 1, 1, 1)
    logits = -model.quantizer.sigma * (latent.float().unsqueeze(1) - centers) ** 2  # (N, L, C, h, w)
    return F.cross_entropy(logits, teacher_symbols)

