"""Training the receiver of a classic codec: the same network and the same recipe as jointcodec.

:class:`ReceiverTask` plugs into ``jointcodec.training.recipe.train``: the loop, optimizer, schedule,
label smoothing, augmentation, epochs and validation split are the joint model's; only the model
(:class:`~jointcodec.models.receiver.ImageClassifier`, zero rate), the data (decoded images) and the
checkpoint (format ``jointcodec-receiver``) differ.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from jointcodec.checkpoint import WEIGHTS, load_tagged_model, save_model
from jointcodec.data import ImageSet, normalize
from jointcodec.errors import ConfigError
from jointcodec.evaluation import accuracy_metrics, count_macs, count_params
from jointcodec.models import Preset, preset_from_dict
from jointcodec.models.receiver import ImageClassifier, create_image_classifier
from jointcodec.training.recipe import EVAL_BATCH, JointTask, TrainConfig, split_for_training

FORMAT = "jointcodec-receiver"
FORMAT_VERSION = 1


@torch.no_grad()
def evaluate_receiver(model: nn.Module, data: ImageSet, batch_size: int = EVAL_BATCH, progress: bool = False,
                      device: str = "cpu") -> dict:
    """Top-1/top-5 on ``data``; ``bpp_estimated`` is 0 (the receiver adds no rate: the codec's is fixed)."""
    model.eval()
    logits = []
    for start in tqdm(range(0, len(data), batch_size), desc=f"evaluate {data.name}:{data.split}",
                      disable=not progress, unit="batch"):
        logits.append(model(normalize(data.images[start:start + batch_size]).to(device)).logits.float().cpu())
    example = normalize(data.images[:1]).to(device)
    return {**accuracy_metrics(torch.cat(logits), data.labels), "bpp_estimated": 0.0, "n_images": len(data),
            "params": count_params(model), "macs": count_macs(model, example), "dataset": data.name,
            "split": data.split}


class ReceiverTask(JointTask):
    """Train an ImageClassifier on ``train`` (decoded images), test it on ``test`` (decoded images).

    ``record`` (codec, setting, protocol) is saved into every checkpoint; resuming checks it matches.
    """

    def __init__(self, train: ImageSet, test: ImageSet, record: dict) -> None:
        self.train, self.test, self.record = train, test, record

    def datasets(self, config: TrainConfig, preset: Preset) -> tuple[ImageSet, ImageSet | None]:
        return split_for_training(self.train, config)

    def test_set(self, config: TrainConfig, preset: Preset) -> ImageSet:
        return self.test

    def build(self, config: TrainConfig, preset: Preset, num_classes: int) -> nn.Module:
        return create_image_classifier(preset, num_classes)

    def resume(self, config: TrainConfig, out: Path) -> nn.Module:
        model, saved = load_receiver(out)
        if saved.get("receiver") != json.loads(json.dumps(self.record)):
            raise ConfigError(f"cannot resume {out}: it was trained for {saved.get('receiver')}, not {self.record}")
        return model

    def save(self, out: Path, model: nn.Module, config: TrainConfig, preset: Preset, classes: list[str],
             epoch: int, history: list[dict]) -> None:
        save_model(out, model, {"format": FORMAT, "version": FORMAT_VERSION, "preset": preset.to_dict(),
                                "num_classes": len(classes), "classes": list(classes), "dataset": config.dataset,
                                "receiver": self.record, "train": asdict(config), "epoch": epoch,
                                "history": history})

    def evaluate(self, model: nn.Module, data: ImageSet, progress: bool, device: str) -> dict:
        return evaluate_receiver(model, data, EVAL_BATCH, progress, device)

    def describe(self, config: TrainConfig) -> str:
        return (f"the receiver ({config.preset} encoder + classifier, no quantizer) on images decoded by "
                f"{self.record['codec']} at {self.record['setting']}")

    def test_line(self, test: dict) -> str:
        return f"test: top1 {test['top1']:.2f}% on decoded test images"


def load_receiver(path: str | Path) -> tuple[ImageClassifier, dict]:
    """Rebuild a receiver from its run directory (or weights file); returns (model in eval mode, config)."""
    return load_tagged_model(path, WEIGHTS, FORMAT, lambda config: create_image_classifier(
        preset_from_dict(config["preset"]), config["num_classes"]))
