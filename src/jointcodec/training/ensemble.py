"""One more receiver for a trained model (``jointcodec add-receiver``): the server grows, the devices do not.

The model's encoder, quantizer, context model and receiver(s) are loaded and frozen (eval mode: their BatchNorm
statistics stay the deployed ones), so the bitstream (its fingerprint), every ``.jcc`` file already sent and every
deployed encoder stay valid. A new receiver of the same kind is trained from scratch, on the frozen latent of the
model's own training split (its validation images stay out), by the main loop (``recipe.train``) with
:class:`AddReceiverTask`: against the labels, and a clean-image teacher's soft labels if one is given. The new
member learns on its own logits (``ReceiverEnsemble.solo``); the saved model is ``PRESET-xN``, whose receivers vote.
Checkpoints are ordinary model checkpoints: ``evaluate``, ``classify``, ``serve`` and ``export`` take them as they
are, and ``add-receiver`` can grow one again.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import torch
from torch import nn

from jointcodec.checkpoint import load_model, read_config, resolve_weights
from jointcodec.data import ImageSet, normalize
from jointcodec.entropy import model_fingerprint as fingerprint
from jointcodec.errors import ConfigError
from jointcodec.evaluation import evaluate_model
from jointcodec.models import JointModel, Preset, create_model, preset_from_dict, receiver_count, with_receivers
from jointcodec.training.hyperparameters import EVAL_BATCH, AddReceiverConfig, Recipe, RunSettings
from jointcodec.training.recipe import JointTask, train
from jointcodec.zoo import RECEIVER

__all__ = ["AddReceiverConfig", "AddReceiverTask", "add_receiver", "grown_state"]


def add_receiver(config: AddReceiverConfig) -> dict:
    """Train one more receiver for ``config.checkpoint``'s frozen codec; returns the history and test metrics."""
    config.validate()
    base_config = read_config(resolve_weights(config.checkpoint))
    base_recipe = Recipe.from_record(base_config.get("train"))
    preset = preset_from_dict(base_config["preset"])
    grown = with_receivers(preset, receiver_count(preset) + 1)
    # The model's data set and validation split; the new receiver's own schedule, seed and teacher.
    recipe = replace(base_recipe.for_addon(config.train_subset), preset=grown.name, dataset=base_config["dataset"],
                     levels=base_config["levels"], epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                     weight_decay=config.weight_decay, seed=config.seed, init_from=None, teacher=config.teacher,
                     teacher_weight=config.teacher_weight)
    run = config.run_settings(config.out)
    return train(recipe, run, AddReceiverTask(config, grown, run))


def grown_state(state: dict, old_members: int) -> dict:
    """A model's state dict with its receiver(s) renamed as the first members of an ensemble."""
    if old_members > 1:
        return dict(state)
    return {RECEIVER + "members.0." + key[len(RECEIVER):] if key.startswith(RECEIVER) else key: value
            for key, value in state.items()}


@torch.no_grad()
def member_top1(model: JointModel, data: ImageSet, device: str) -> list[float]:
    """Each receiver's own top-1 on ``data``: the encoder runs once per batch and every member reads its latent."""
    model.eval()
    members = model.classifier.members
    hits = [0] * len(members)
    for start in range(0, len(data), EVAL_BATCH):
        values = model.quantizer(model.encoder(normalize(data.images[start:start + EVAL_BATCH]).to(device))).values
        labels = data.labels[start:start + EVAL_BATCH].to(device)
        for index, member in enumerate(members):
            hits[index] += (member(values).argmax(1) == labels).sum().item()
    return [100.0 * count / len(data) for count in hits]


class AddReceiverTask(JointTask):
    """The model with one more receiver; only the new one trains, on its own logits."""

    def __init__(self, config: AddReceiverConfig, grown: Preset, run: RunSettings) -> None:
        super().__init__(run)
        self.config = config
        self.grown = grown
        self.new = receiver_count(grown) - 1  # the new member's index
        self.bitstream = ""

    def datasets(self, recipe: Recipe, preset: Preset) -> tuple[ImageSet, ImageSet | None]:
        return super().datasets(recipe, self.grown)

    def build(self, recipe: Recipe, preset: Preset, num_classes: int) -> nn.Module:
        base, _ = load_model(self.config.checkpoint)
        self.bitstream = fingerprint(base)
        model = create_model(self.grown, base.levels, num_classes)
        missing, unexpected = model.load_state_dict(grown_state(base.state_dict(), self.new), strict=False)
        fresh = f"{RECEIVER}members.{self.new}."
        if unexpected or any(not key.startswith(fresh) for key in missing):
            raise ConfigError(f"{self.config.checkpoint} does not fit preset {self.grown.name}: "
                              f"{', '.join((unexpected or missing)[:3])}")
        return self.freeze(model)

    def resume(self, recipe: Recipe, out: Path) -> nn.Module:
        model = self.freeze(super().resume(recipe, out))
        self.bitstream = fingerprint(load_model(self.config.checkpoint)[0])
        if fingerprint(model) != self.bitstream:
            raise ConfigError(f"{out} does not share {self.config.checkpoint}'s bitstream (fingerprints differ)")
        return model

    def freeze(self, model: JointModel) -> JointModel:
        model.requires_grad_(False)
        self.member(model).requires_grad_(True)
        return model

    def member(self, model: nn.Module) -> nn.Module:
        return model.classifier.members[self.new]

    def save(self, out: Path, model: nn.Module, recipe: Recipe, preset: Preset, classes: list[str],
             epoch: int, history: list[dict]) -> None:
        super().save(out, model, recipe, self.grown, classes, epoch, history)

    def sections(self) -> dict:
        return {"add_receiver": asdict(self.config)}

    def trainable(self, model: nn.Module) -> nn.Module:
        return self.member(model)

    def train_mode(self, model: nn.Module) -> None:
        model.eval()  # the codec and the old receivers keep their deployed BatchNorm statistics
        raw = model.module
        self.member(raw).train()
        raw.classifier.solo = self.new  # the new member learns on its own logits

    def evaluate(self, model: nn.Module, data: ImageSet, progress: bool, device: str) -> dict:
        """The ensemble's figures; on the test split also each member's own top-1 (where the gain comes from)."""
        model.classifier.solo = None
        result = evaluate_model(model, data, EVAL_BATCH, progress=progress, device=device)
        if data.split == "test":
            result["top1_members"] = member_top1(model, data, device)
        return result

    def test_extras(self) -> dict:
        return {"checkpoint": str(self.config.checkpoint), "fingerprint": self.bitstream}

    def describe(self, recipe: Recipe) -> str:
        return (f"receiver {self.new + 1} of {self.new + 1} ({self.grown.name}) for the frozen codec of "
                f"{self.config.checkpoint} (fingerprint {self.bitstream[:16]})")

    def test_line(self, test: dict) -> str:
        members = ", ".join(f"{top1:.2f}%" for top1 in test["top1_members"])
        return f"{super().test_line(test)}  (each receiver alone: {members})"
