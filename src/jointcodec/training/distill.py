"""Distilling a cheaper edge encoder for an existing receiver (``jointcodec distill-encoder``).

The teacher's quantizer centers, context model and classifier are copied and frozen, so the bitstream
(its fingerprint), the receiver service and any decoder stay exactly the teacher's; only a new encoder
of another preset (same latent shape) is trained, on the teacher's training split:

  loss = CE(student's soft assignment, teacher's symbols)          imitation: send what the teacher sends
       + CE(frozen classifier on the student's latent, label)      the task, through the real receiver
       + beta * max(0, bpp - target)                                the rate under the frozen context model

The receiver runs in eval mode (its BatchNorm statistics are the deployed ones); the student's own
BatchNorms train. Checkpoints are ordinary model checkpoints: ``evaluate``, ``encode``, ``export-edge``
and ``train --init-from`` take them as they are.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from jointcodec.checkpoint import load_model, model_config, save_model, save_trainer_state
from jointcodec.data import flip_and_translate, load_split, normalize, prefetched
from jointcodec.entropy import model_fingerprint as fingerprint
from jointcodec.errors import ConfigError
from jointcodec.evaluation import evaluate_model
from jointcodec.models import JointModel, create_model, get_preset
from jointcodec.training.history import History
from jointcodec.training.recipe import (
    EVAL_BATCH,
    LABEL_SMOOTHING,
    RATE_BATCH_FRACTION,
    TRANSLATE,
    RateHinge,
    own_training_split,
    parameter_groups,
    restore_trainer_state,
    sgd_with_triangle,
    sharded_batches,
)
from jointcodec.utils import atomic_write_json


@dataclass
class DistillConfig:
    teacher: str = "default"
    preset: str = "cifar-v3-deep"
    out: str = "runs/distill-cifar-v3-deep"
    epochs: int = 8
    batch_size: int = 256
    lr: float = 0.05
    weight_decay: float = 5e-4
    beta: float = 2.0
    target_bpp: float | None = None  # None: the teacher's own training target
    imitation_weight: float = 1.0
    train_subset: int = 0
    data_dir: str | None = None
    download: bool = False
    resume: bool = False
    test_at_end: bool = True
    progress: bool = True
    seed: int = 0

    def validate(self) -> None:
        get_preset(self.preset)
        checks = [(self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}"),
                  (self.batch_size >= 2, f"--batch-size must be >= 2, got {self.batch_size}"),
                  (self.lr > 0, f"--lr must be > 0, got {self.lr}"),
                  (self.imitation_weight >= 0, f"--imitation-weight must be >= 0, got {self.imitation_weight}")]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


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


def distill_encoder(config: DistillConfig) -> dict:
    """Train a new encoder for the teacher's receiver; returns the history and test metrics."""
    config.validate()
    torch.manual_seed(config.seed)
    out = Path(config.out)
    teacher, teacher_config = load_model(config.teacher)
    recipe = teacher_config.get("train") or {}
    target = config.target_bpp if config.target_bpp is not None else float(recipe.get("target_bpp", math.inf))
    preset = get_preset(config.preset)
    train_set, val_set = own_training_split(teacher_config, config.data_dir, config.download, config.train_subset)

    student = (freeze_receiver(load_model(out)[0]) if config.resume
               else student_of(teacher, config.preset, teacher_config["num_classes"]))
    bitstream = fingerprint(teacher)
    if fingerprint(student) != bitstream:
        raise ConfigError(f"{out} does not share the teacher's bitstream (fingerprints differ)")
    student.encoder.to(memory_format=torch.channels_last)
    teacher.encoder.to(memory_format=torch.channels_last)
    optimizer, scheduler, steps_per_epoch = sgd_with_triangle(
        parameter_groups(student.encoder, config.weight_decay), config.lr, config.epochs, len(train_set),
        config.batch_size)
    history = History(out / "metrics.csv")
    start_epoch = restore_trainer_state(out, optimizer, scheduler, history) if config.resume else 0
    print(f"distilling a {config.preset} encoder for the receiver of {config.teacher} (fingerprint "
          f"{bitstream[:16]}) on {len(train_set)} images for {config.epochs} epochs; target "
          f"{target:.3f} bpp; run directory {out}", flush=True)
    record = {**recipe, "preset": config.preset, "distill": asdict(config), "epochs": config.epochs}
    rate_images = max(1, int(RATE_BATCH_FRACTION * config.batch_size))
    generator = torch.Generator().manual_seed(config.seed * 7919 + start_epoch)
    hinge = RateHinge(config.beta, target, history.rows[-1]["train_bpp"] if history.rows else math.inf)
    started = time.time() - (history.rows[-1]["elapsed_s"] if history.rows else 0.0)
    teacher.eval()
    for epoch in range(start_epoch, config.epochs):
        student.eval()
        student.encoder.train()  # the receiver keeps its deployed BatchNorm statistics
        totals = {"loss": 0.0, "correct": 0, "agree": 0, "seen": 0, "bpp": 0.0, "steps": 0}
        batches = sharded_batches(len(train_set), config.batch_size, epoch, config.seed, 0, 1)
        bar = tqdm(prefetched(train_set.images, batches), total=steps_per_epoch, leave=False, unit="step",
                   desc=f"epoch {epoch + 1}/{config.epochs}", disable=not config.progress)
        for indices, batch_images in bar:
            images = normalize(flip_and_translate(batch_images, TRANSLATE, generator))
            images = images.contiguous(memory_format=torch.channels_last)
            labels = train_set.labels[indices]
            with torch.no_grad():
                wanted = teacher.quantizer.symbols(teacher.encoder(images))
            rate_weight = hinge.encoder_weight(epoch + totals["steps"] / steps_per_epoch)
            output = student(images, rate_grad_to_encoder=rate_weight, rate_images=rate_images)
            task = F.cross_entropy(output.logits.float(), labels, label_smoothing=LABEL_SMOOTHING)
            loss = task + config.imitation_weight * imitation_loss(student, output.latent, wanted) + output.bpp.mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch + 1}; try a lower --lr")
            batch_bpp = output.bpp.mean().item()
            hinge.update(batch_bpp)
            totals["loss"] += task.item()
            totals["correct"] += (output.logits.argmax(1) == labels).sum().item()
            totals["agree"] += (output.symbols == wanted).float().mean().item()
            totals["seen"] += len(labels)
            totals["bpp"] += batch_bpp
            totals["steps"] += 1
            bar.set_postfix(acc=f"{100 * totals['correct'] / totals['seen']:.1f}",
                            agree=f"{100 * totals['agree'] / totals['steps']:.1f}",
                            bpp=f"{totals['bpp'] / totals['steps']:.3f}")
        row = {"epoch": epoch + 1, "train_loss": totals["loss"] / totals["steps"],
               "train_top1": 100 * totals["correct"] / totals["seen"],
               "train_symbol_agreement": 100 * totals["agree"] / totals["steps"],
               "train_bpp": totals["bpp"] / totals["steps"], "lr": scheduler.get_last_lr()[0]}
        if val_set is not None:
            val = evaluate_model(student, val_set, EVAL_BATCH)
            row.update(val_top1=val["top1"], val_bpp=val["bpp_estimated"])
        row["elapsed_s"] = time.time() - started
        history.append(row)
        save_model(out, student, model_config(student, preset.to_dict(), teacher_config["classes"],
                                              teacher_config["dataset"], train=record, epoch=epoch + 1,
                                              history=history.rows))
        save_trainer_state(out, {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                                 "epoch": epoch + 1, "history": history.rows})
        print(f"{history.format_line(row)} | symbols as the teacher's {row['train_symbol_agreement']:.2f}%",
              flush=True)
    result = {"history": history.rows, "run_dir": str(out)}
    if config.test_at_end:
        test_set = load_split(teacher_config["dataset"], "test", config.data_dir, config.download, preset.image_size)
        test = evaluate_model(student, test_set, EVAL_BATCH, progress=config.progress)
        test.update(train_wall_clock_s=history.rows[-1]["elapsed_s"], epochs=config.epochs,
                    teacher=str(config.teacher), fingerprint=bitstream)
        atomic_write_json(out / "eval_test.json", test)
        result["test"] = test
        print(f"test: top1 {test['top1']:.2f}%  bpp (estimated) {test['bpp_estimated']:.4f}", flush=True)
    return result
