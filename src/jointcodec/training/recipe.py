"""The training loop, top to bottom: data -> model -> optimizer -> epochs -> checkpoints.

Loss = cross-entropy (label smoothing)             (blended with a teacher's soft labels: teacher.py)
       + weight decay (in the optimizer)
       + beta * max(0, bpp - target_bpp)          (rate penalty, pushes the encoder)
       + bpp, for the context model only          (the PE always minimises the bit cost)
       + the task's own term, if it has one       (distillation: imitation; a joint decoder: MSE)

With ``ema_decay`` > 0, a moving average of the weights (parts.weight_average) is what is validated, saved
and tested; the optimizer keeps moving the live weights.

The hyperparameters are plain data (``hyperparameters.Recipe``), where the run happens is ``RunSettings``.
What is trained, on which images, and how it is saved is a task: ``JointTask`` (below) trains the joint
codec on a data set's own images (``jointcodec train``); ``distill.DistillTask`` a new encoder for a trained
receiver; ``decoder.JointDecoderTask`` a codec model with a reconstruction decoder;
``jointcodec.baselines.receiver.ReceiverTask`` a classifier on a classic codec's decoded images.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from jointcodec.checkpoint import load_model, model_config, save_model, save_trainer_state
from jointcodec.data import (
    ImageSet,
    cutout,
    downscale,
    flip_and_translate,
    load_split,
    normalize,
    prefetched,
    train_val_split,
)
from jointcodec.errors import ConfigError, TrainingDiverged
from jointcodec.evaluation import evaluate_model
from jointcodec.models import JointOutput, Preset, create_model, get_preset
from jointcodec.models.whitening import whiten_first_conv
from jointcodec.training.history import History
from jointcodec.training.hyperparameters import (  # noqa: F401 - EVAL_BATCH and TrainConfig are imported from here
    CALIBRATION_IMAGES,
    EVAL_BATCH,
    LABEL_SMOOTHING,
    RATE_BATCH_FRACTION,
    Recipe,
    RunSettings,
    TrainConfig,
)
from jointcodec.training.parts import (
    RateHinge,
    augmentation_generator,
    parameter_groups,
    restore_trainer_state,
    sgd_with_triangle,
    sharded_batches,
    to_channels_last,
    trainer_state,
    warm_start_from,
    weight_average,
)
from jointcodec.training.teacher import classification_loss, load_teacher
from jointcodec.utils import atomic_write_json, resolve_device, resolve_precision

READBACK_STEPS = 25  # steps between reads of the running sums from the device (each read waits for a GPU)


def train(recipe: Recipe | TrainConfig, run: RunSettings | None = None, task: JointTask | None = None) -> dict:
    """Train what ``task`` names (default: a JointModel) by ``recipe``, where ``run`` says; returns the final
    record (validation history and test metrics). A flat ``TrainConfig`` stands for a recipe and its run."""
    if isinstance(recipe, TrainConfig):
        recipe, run = recipe.split()
    run = run or RunSettings()
    task = task or JointTask(run)
    recipe.validate(resuming=run.resume)
    run.validate(recipe.batch_size)
    from lightning.fabric import Fabric  # after the checks: importing it takes about 10 s on a 2-core CPU

    out = Path(run.out)
    device = resolve_device(run.device)
    precision = resolve_precision(run.precision, device)
    strategy = "ddp" if run.devices > 1 else "auto"
    # Lightning's info lines ("Using bfloat16 AMP") go to stderr; our own banner names the precision, and an
    # error stays the only line a failing run writes there.
    for package in ("lightning.fabric", "lightning.pytorch"):  # whichever Lightning import came last logs it
        logging.getLogger(f"{package}.utilities.rank_zero").setLevel(logging.WARNING)
    fabric = Fabric(accelerator=device, devices=run.devices, strategy=strategy, precision=precision)
    fabric.launch()
    fabric.seed_everything(recipe.seed, verbose=False)
    is_main = fabric.global_rank == 0

    # --- data ---
    preset = get_preset(recipe.preset)
    train_set, val_set = task.datasets(recipe, preset)

    # --- model, optimizer, schedule ---
    if run.resume:
        model = task.resume(recipe, out)
        model.train()
    else:
        model = task.build(recipe, preset, len(train_set.classes))
        if recipe.whiten_stem:  # from training images only: the validation split is already out
            whiten_first_conv(model.encoder, normalize(train_set.images[:CALIBRATION_IMAGES]))
        if recipe.init_from:
            warm_start_from(model, recipe.init_from, train_set, verbose=is_main)
    task.channels_last(model)
    average = weight_average(model, recipe.ema_decay)  # what is validated and saved, if the recipe averages
    groups = parameter_groups(task.trainable(model), recipe.weight_decay)
    extra = task.extra_module()
    if extra is not None:
        groups.append({"params": list(extra.parameters()), "weight_decay": 0.0})
    optimizer, scheduler, steps_per_epoch = sgd_with_triangle(groups, recipe.lr, recipe.epochs, len(train_set),
                                                              recipe.batch_size)
    history = History(out / "metrics.csv")
    hinge = RateHinge(recipe.beta, recipe.target_bpp, fabric.device)
    start_epoch = (restore_trainer_state(out, recipe, model, extra, optimizer, scheduler, history, hinge,
                                         fabric.device, average) if run.resume else 0)
    model, optimizer = fabric.setup(model, optimizer)
    raw_model: nn.Module = model.module
    if average is not None:
        average.to(fabric.device)  # Fabric moved the model; its average follows
    kept: nn.Module = average.module if average is not None else raw_model  # validated, saved and tested
    raw_extra = extra
    extra = fabric.setup_module(extra) if extra is not None else None

    if is_main:
        print(f"training {task.describe(recipe)} on {recipe.dataset} ({len(train_set)} train, "
              f"{len(val_set) if val_set else 0} val) for {recipe.epochs} epochs on {device} x{run.devices} "
              f"({precision}); run directory {out}", flush=True)
    rate_images = max(1, int(RATE_BATCH_FRACTION * recipe.batch_size // run.devices))
    teacher = (load_teacher(recipe.teacher, len(train_set.classes), fabric.device) if recipe.teacher else None)
    started = time.time() - (history.rows[-1]["elapsed_s"] if history.rows else 0.0)

    for epoch in range(start_epoch, recipe.epochs):
        task.train_mode(model)
        if extra is not None:
            extra.train()
        # The running sums (classification loss, correct labels, rate, whole loss) stay on the device, read
        # back every READBACK_STEPS steps: a read makes the host wait for a GPU, which would idle between steps.
        sums = torch.zeros(4, dtype=torch.float64, device=fabric.device)
        steps = 0
        extra_sums: dict[str, float] = {}
        batches = sharded_batches(len(train_set), recipe.batch_size, epoch, recipe.seed,
                                  fabric.global_rank, fabric.world_size)
        generator = augmentation_generator(recipe.seed, epoch, fabric.global_rank)
        side = recipe.low_res_size if recipe.low_res(epoch) else None  # None: the images' own size
        # A streamed data set decodes the next batch in the background while this step runs.
        bar = tqdm(prefetched(train_set.images, batches), total=steps_per_epoch,
                   desc=f"epoch {epoch + 1}/{recipe.epochs}", disable=not (is_main and run.progress), leave=False,
                   unit="step")
        for indices, batch_images in bar:
            # Augmented where the model runs: uint8 images are a quarter of the floats' bytes to move.
            images = flip_and_translate(batch_images.to(fabric.device), recipe.translate, generator)
            images = cutout(normalize(images), recipe.cutout, generator)
            if side is not None:
                images = downscale(images, side)
            images = images.contiguous(memory_format=torch.channels_last)
            labels = train_set.labels[indices].to(fabric.device)
            encoder_weight = hinge.encoder_weight(epoch + steps / steps_per_epoch)
            # One rate term: the PE sees its bit cost with weight 1; the encoder sees it with weight
            # beta while the hinge is on and 0 while it is off (its gradient is scaled on the way in).
            output = model(images, rate_grad_to_encoder=encoder_weight, rate_images=rate_images)
            classification = classification_loss(output.logits.float(), labels, LABEL_SMOOTHING, teacher, images,
                                                 recipe.teacher_weight)
            loss = classification + output.bpp.mean()
            own = task.extra_loss(raw_model, extra, images, output)
            if own is not None:
                term, values = own
                loss = loss + term
                for key, value in values.items():
                    extra_sums[key] = extra_sums.get(key, 0.0) + value
            optimizer.zero_grad(set_to_none=True)
            fabric.backward(loss)
            optimizer.step()
            scheduler.step()
            if average is not None:
                average.update_parameters(raw_model)
            # Every process must switch the hinge alike: average the batch rate over processes.
            batch_bpp = fabric.all_reduce(output.bpp.mean().detach(), reduce_op="mean")
            hinge.update(batch_bpp)
            correct = (output.logits.argmax(1) == labels).sum()
            sums += torch.stack([classification.detach(), correct, batch_bpp, loss.detach()]).double()
            steps += 1
            if steps % READBACK_STEPS == 0 or steps == steps_per_epoch:
                loss_sum, correct_sum, bpp_sum, whole_loss = sums.tolist()
                if not math.isfinite(whole_loss):
                    raise TrainingDiverged(f"the loss became {whole_loss} in epoch {epoch + 1} (by step {steps}); "
                                           "try a lower --lr")
                bar.set_postfix(loss=f"{loss_sum / steps:.3f}", bpp=f"{bpp_sum / steps:.3f}",
                                acc=f"{100 * correct_sum / (steps * len(labels)):.1f}")
        loss_sum, correct_sum, bpp_sum, _ = sums.tolist()
        summed = fabric.all_reduce(torch.tensor([loss_sum, correct_sum, steps * len(labels)],
                                                dtype=torch.float64), reduce_op="sum")
        loss_sum, correct, seen = summed.tolist()
        row = {"epoch": epoch + 1, "train_loss": loss_sum / (steps * fabric.world_size),
               "train_top1": 100 * correct / seen,
               "train_bpp": bpp_sum / steps, "lr": scheduler.get_last_lr()[0],
               **task.epoch_metrics(extra_sums, steps)}
        if val_set is not None and is_main and recipe.validates_after(epoch + 1):
            val = task.evaluate(kept, val_set, False, str(fabric.device))
            row.update(val_top1=val["top1"], val_bpp=val["bpp_estimated"])
        row["elapsed_s"] = time.time() - started
        if is_main:
            history.append(row)
            task.save(out, kept, recipe, preset, train_set.classes, epoch + 1, history.rows)
            save_trainer_state(out, trainer_state(recipe, epoch + 1, raw_model, raw_extra, optimizer, scheduler,
                                                  history, hinge, fabric.device, average))
            print(task.epoch_line(row), flush=True)
            if (warning := history.collapse_warning()) is not None:
                print(warning, file=sys.stderr, flush=True)
        fabric.barrier()
        task.channels_last(raw_model)  # evaluation ran in eval mode; keep the fast layout for training

    result = {"history": history.rows, "run_dir": str(out)}
    if is_main and run.test_at_end:
        test_set = task.test_set(recipe, preset)
        test = task.evaluate(kept, test_set, run.progress, str(fabric.device))
        test["train_wall_clock_s"] = history.rows[-1]["elapsed_s"] if history.rows else None
        test["epochs"] = recipe.epochs
        test.update(task.test_extras())
        atomic_write_json(out / "eval_test.json", test)
        result["test"] = test
        print(task.test_line(test), flush=True)
    return result


def training_split(recipe: Recipe, data_dir: str | None, download: bool, image_size: int,
                   ) -> tuple[ImageSet, ImageSet | None]:
    """The one rule that splits a data set's training images into fit and validation: the first
    ``train_subset`` images (0: all), of which ``val_size`` are held out by a seeded permutation. ImageFolder
    images are resized and cropped to ``image_size``, as ``evaluate`` does."""
    return split_for_training(load_split(recipe.dataset, "train", data_dir, download, image_size), recipe)


def split_for_training(data: ImageSet, recipe: Recipe) -> tuple[ImageSet, ImageSet | None]:
    """The rule itself, on images already loaded (tasks that bring their own images use it too)."""
    if recipe.train_subset:
        data = data.subset(slice(0, recipe.train_subset))
    return train_val_split(data, recipe.val_size, recipe.split_seed())


class JointTask:
    """What the loop trains, on which data, and how it checkpoints: here the joint codec on a data set's own
    images (``jointcodec train``). A task may also narrow what trains (``trainable``, ``train_mode``), add a
    module and a loss term (``extra_module``, ``extra_loss``, ``epoch_metrics``) and add to what is printed
    and saved; a task that overrides none of these trains exactly as ``jointcodec train`` does."""

    def __init__(self, run: RunSettings | None = None) -> None:
        self.run = run or RunSettings()

    def datasets(self, recipe: Recipe, preset: Preset) -> tuple[ImageSet, ImageSet | None]:
        return training_split(recipe, self.run.data_dir, self.run.download, preset.image_size)

    def test_set(self, recipe: Recipe, preset: Preset) -> ImageSet:
        return load_split(recipe.dataset, "test", self.run.data_dir, self.run.download, preset.image_size)

    def build(self, recipe: Recipe, preset: Preset, num_classes: int) -> nn.Module:
        return create_model(preset, recipe.levels, num_classes)

    def resume(self, recipe: Recipe, out: Path) -> nn.Module:
        model, saved = load_model(out)
        before = Recipe.from_record(saved.get("train"))
        if before.preset != recipe.preset or saved["levels"] != recipe.levels:
            raise ConfigError(f"--resume: {out} holds preset {before.preset} L={saved['levels']}, "
                              f"not {recipe.preset} L={recipe.levels}")
        return model

    def save(self, out: Path, model: nn.Module, recipe: Recipe, preset: Preset, classes: list[str],
             epoch: int, history: list[dict]) -> None:
        record = model_config(model, preset.to_dict(), classes, recipe.dataset, train=asdict(recipe),
                              run=asdict(self.run), **self.sections(), epoch=epoch, history=history)
        save_model(out, model, record)

    def sections(self) -> dict:
        """Records of the task's own, saved beside the recipe in every checkpoint."""
        return {}

    def evaluate(self, model: nn.Module, data: ImageSet, progress: bool, device: str) -> dict:
        return evaluate_model(model, data, EVAL_BATCH, progress=progress, device=device)

    def trainable(self, model: nn.Module) -> nn.Module:
        """The part of the model the optimizer updates."""
        return model

    def train_mode(self, model: nn.Module) -> None:
        model.train()

    def channels_last(self, model: nn.Module) -> None:
        to_channels_last(model)

    def extra_module(self) -> nn.Module | None:
        """A module trained along (its parameters join the optimizer, without weight decay)."""
        return None

    def extra_loss(self, model: nn.Module, extra: nn.Module | None, images: torch.Tensor, output: JointOutput,
                   ) -> tuple[torch.Tensor, dict[str, float]] | None:
        """A term added to the loss, and per-step values to average into the epoch's row (or None)."""
        return None

    def epoch_metrics(self, sums: dict[str, float], steps: int) -> dict:
        return {f"train_{key}": value / steps for key, value in sums.items()}

    def epoch_line(self, row: dict) -> str:
        return History.format_line(row)

    def test_extras(self) -> dict:
        return {}

    def describe(self, recipe: Recipe) -> str:
        return f"{recipe.preset} L={recipe.levels}"

    def test_line(self, test: dict) -> str:
        return f"test: top1 {test['top1']:.2f}%  bpp (estimated) {test['bpp_estimated']:.4f}"
