"""The training recipe, top to bottom: data -> model -> optimizer -> epochs -> checkpoints.

Loss = cross-entropy (label smoothing) + weight decay (in the optimizer)
       + beta * max(0, bpp - target_bpp)          (rate penalty, pushes the encoder)
       + bpp, for the context model only          (the PE always minimises the bit cost)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from jointcodec.checkpoint import (
    load_model,
    load_trainer_state,
    model_config,
    resolve_weights,
    save_model,
    save_trainer_state,
    warm_start,
)
from jointcodec.data import ImageSet, flip_and_translate, load_split, normalize, prefetched, train_val_split
from jointcodec.errors import ConfigError
from jointcodec.evaluation import evaluate_model
from jointcodec.models import JointModel, JointOutput, Preset, create_model, get_preset
from jointcodec.training.history import History
from jointcodec.utils import atomic_write_json, resolve_device, resolve_precision

# --- recipe constants (each with the reason it is what it is) ---------------------------------
LABEL_SMOOTHING = 0.2  # airbench: regularises short runs at no cost
MOMENTUM = 0.9  # Nesterov SGD: the fast, robust choice for ResNets on CIFAR
WARMUP_FRACTION = 0.15  # linear warm-up, then linear decay to zero (a triangle, as in airbench)
TRANSLATE = 2  # pixels of random translation; more hurts at this few epochs (airbench)
RATE_BATCH_FRACTION = 0.25  # the PE runs on a quarter of each batch: the mean rate needs no more
RATE_RAMP_EPOCHS = 2  # beta grows linearly over the first epochs: an untrained classifier cannot
#                       resist the rate penalty, and the encoder would collapse to one symbol
RATE_EMA = 0.9  # smoothing of the batch rate that switches the hinge penalty on and off
EVAL_BATCH = 500
CALIBRATION_IMAGES = 1024  # enough to place the latent's quantiles for a warm start at another L


@dataclass
class TrainConfig:
    """Plain data; saved into every checkpoint so a run can be read and repeated."""

    preset: str = "cifar-v1-deep"
    dataset: str = "cifar10"
    levels: int = 2
    target_bpp: float = 0.79
    beta: float = 2.0
    epochs: int = 26
    batch_size: int = 256
    lr: float = 0.1
    weight_decay: float = 5e-4
    val_size: int = 5000
    train_subset: int = 0  # use only the first N training images (tests, quick looks); 0 = all
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    devices: int = 1
    data_dir: str | None = None
    download: bool = False
    out: str = "runs/cifar10-v1deep-L2"
    resume: bool = False
    init_from: str | None = None  # warm start: a checkpoint whose matching weights seed the model
    test_at_end: bool = True
    progress: bool = True
    extra: dict = field(default_factory=dict)

    def validate(self) -> None:
        get_preset(self.preset)
        checks = [(self.levels >= 2, f"--levels must be >= 2, got {self.levels}"),
                  (self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}"),
                  (self.batch_size >= 2, f"--batch-size must be >= 2, got {self.batch_size}"),
                  (self.target_bpp > 0, f"--target-bpp must be > 0, got {self.target_bpp}"),
                  (self.lr > 0, f"--lr must be > 0, got {self.lr}"),
                  (self.devices >= 1, f"--devices must be >= 1, got {self.devices}"),
                  (self.batch_size % self.devices == 0, "--batch-size must divide evenly over --devices")]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        if self.init_from and not self.resume:
            resolve_weights(self.init_from)  # a missing checkpoint fails before any data is read


@dataclass
class Auxiliary:
    """An add-on trained along with the recipe (``train-decoder --joint``: a reconstruction decoder).

    ``module`` joins the optimizer (no weight decay); ``loss(module, images, output)`` (images as the
    model sees them, normalised) is added to the recipe's loss; ``save(run_dir, model, epoch)`` runs after
    each epoch's checkpoint; ``init_model(model)`` may change a freshly built model (a warm start). Without
    an Auxiliary, training and its checkpoints are exactly as before.
    """

    module: nn.Module
    loss: Callable[[nn.Module, torch.Tensor, JointOutput], torch.Tensor]
    save: Callable[[Path, JointModel, int], None]
    init_model: Callable[[JointModel], None] | None = None


class RateHinge:
    """The encoder's share of ``beta * max(0, bpp - target)``. The hinge is switched by a running estimate of
    the rate, so the share is known before the forward pass; beta ramps in over RATE_RAMP_EPOCHS."""

    def __init__(self, beta: float, target_bpp: float, last_bpp: float = math.inf) -> None:
        self.beta, self.target_bpp, self.bpp_ema = beta, target_bpp, last_bpp

    def encoder_weight(self, epochs_done: float) -> float:
        """``epochs_done``: epochs completed so far, fractional within the current one."""
        beta = self.beta * min(1.0, epochs_done / RATE_RAMP_EPOCHS)
        return beta if self.bpp_ema > self.target_bpp else 0.0

    def update(self, batch_bpp: float) -> None:
        finite = math.isfinite(self.bpp_ema)
        self.bpp_ema = RATE_EMA * self.bpp_ema + (1 - RATE_EMA) * batch_bpp if finite else batch_bpp


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on conv/linear weights and on the quantizer centers (an L2 pull that keeps them
    from drifting apart, as in Mentzer et al.); none on BatchNorm parameters and biases."""
    quantizer = getattr(model, "quantizer", None)  # a receiver trained on decoded images has none
    centers = quantizer.centers if quantizer is not None else None
    decay = [p for p in model.parameters() if p.ndim > 1 or p is centers]
    no_decay = [p for p in model.parameters() if p.ndim <= 1 and p is not centers]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def triangle_schedule(total_steps: int):
    warmup = max(1, int(WARMUP_FRACTION * total_steps))
    decay = max(1, total_steps - warmup)  # a run of a step or two has no decay phase to divide by
    return lambda step: min((step + 1) / warmup, max(0.0, (total_steps - step) / decay))


@torch.no_grad()
def fit_latent_to_centers(model: JointModel, images: torch.Tensor) -> float:
    """Warm start at another L: scale the encoder's last BatchNorm so that each new center gets a fair share
    of the latent. An L = 2 encoder learns a latent far inside its two centers (only the sign counts);
    fed to L >= 3 fresh centers it lands on the middle ones, and training collapses or crawls (measured:
    42.6 % validation top-1 after an epoch at L = 3 unscaled, 90 % training top-1 within 60 steps scaled).
    The (1 - 2/L) quantile of |z| is put on the outermost decision boundary. Returns the factor."""
    centers = model.quantizer.centers.detach().sort().values
    if len(centers) < 3:
        return 1.0  # two centers: only the sign of z matters
    boundary = ((centers[-1] + centers[-2]) / 2 - centers.mean()).item()
    was_training = model.encoder.training
    latent = model.encoder.eval()(images)
    model.encoder.train(was_training)
    spread = torch.quantile(latent.abs().flatten().float()[:1_000_000], 1 - 2 / len(centers)).item()
    last_norm = [m for m in model.encoder.modules() if isinstance(m, nn.BatchNorm2d)][-1]
    factor = boundary / max(spread, 1e-8)
    last_norm.weight.mul_(factor)
    last_norm.bias.mul_(factor)
    return factor


def sgd_with_triangle(groups: list[dict], lr: float, epochs: int, n_train: int, batch_size: int):
    """Nesterov SGD and its per-step triangle schedule; returns (optimizer, scheduler, steps per epoch)."""
    steps_per_epoch = n_train // batch_size
    if steps_per_epoch == 0:
        raise ConfigError(f"--batch-size {batch_size} exceeds the {n_train} training images")
    optimizer = torch.optim.SGD(groups, lr=lr, momentum=MOMENTUM, nesterov=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, triangle_schedule(epochs * steps_per_epoch))
    return optimizer, scheduler, steps_per_epoch


def restore_trainer_state(out: Path, optimizer, scheduler, history: History) -> int:
    """Load the optimizer, schedule and metric history of run ``out``; returns the epoch to start from."""
    state = load_trainer_state(out)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    history.rows = state["history"]
    return state["epoch"]


def sharded_batches(n: int, batch_size: int, epoch: int, seed: int, rank: int, world: int):
    """This rank's slices of a fresh permutation each epoch (drop_last: equal steps on every rank)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1000 + epoch))
    per_rank = batch_size // world
    steps = n // batch_size
    for step in range(steps):
        yield order[step * batch_size + rank * per_rank: step * batch_size + (rank + 1) * per_rank]


def to_channels_last(model: nn.Module) -> None:
    """channels_last for the 2D convs (faster on CPU); the 3D context model keeps its layout."""
    model.encoder.to(memory_format=torch.channels_last)
    model.classifier.to(memory_format=torch.channels_last)


def own_training_split(model_config: dict, data_dir: str | None, download: bool, train_subset: int = 0,
                       ) -> tuple[ImageSet, ImageSet | None]:
    """A trained model's own training images and validation split (its recorded val_size and seed), for
    training an add-on to it (a decoder, a distilled encoder) without touching its validation images."""
    recipe = model_config.get("train") or {}
    data = load_split(model_config["dataset"], "train", data_dir, download, model_config["preset"]["image_size"])
    if train_subset:
        data = data.subset(slice(0, train_subset))
    val_size = min(int(recipe.get("val_size", 5000)), len(data) // 10)
    return train_val_split(data, val_size, int(recipe.get("seed", 0)))


class JointTask:
    """What the loop trains, on which data, and how it checkpoints. This one, the default, is the joint
    codec on a data set's own images (``jointcodec train``); the classic-codec baselines pass a task
    that trains the receiver on decoded images through the same loop, with zero rate
    (``jointcodec.baselines.receiver``)."""

    def datasets(self, config: TrainConfig, preset: Preset) -> tuple[ImageSet, ImageSet | None]:
        """Train and validation splits (ImageFolder images are resized and cropped to the preset's size,
        as ``evaluate`` does)."""
        train_set = load_split(config.dataset, "train", config.data_dir, config.download, preset.image_size)
        if config.train_subset:
            train_set = train_set.subset(slice(0, config.train_subset))
        return train_val_split(train_set, config.val_size, config.seed)

    def test_set(self, config: TrainConfig, preset: Preset) -> ImageSet:
        return load_split(config.dataset, "test", config.data_dir, config.download, preset.image_size)

    def build(self, config: TrainConfig, preset: Preset, num_classes: int) -> nn.Module:
        return create_model(preset, config.levels, num_classes)

    def resume(self, config: TrainConfig, out: Path) -> nn.Module:
        model, saved = load_model(out)
        if saved["train"]["preset"] != config.preset or saved["levels"] != config.levels:
            raise ConfigError(f"--resume: {out} holds preset {saved['train']['preset']} L={saved['levels']}, "
                              f"not {config.preset} L={config.levels}")
        return model

    def save(self, out: Path, model: nn.Module, config: TrainConfig, preset: Preset, classes: list[str],
             epoch: int, history: list[dict]) -> None:
        config_record = model_config(model, preset.to_dict(), classes, config.dataset,
                                     train=asdict(config), epoch=epoch, history=history)
        save_model(out, model, config_record)

    def evaluate(self, model: nn.Module, data: ImageSet, progress: bool, device: str) -> dict:
        return evaluate_model(model, data, EVAL_BATCH, progress=progress, device=device)

    def describe(self, config: TrainConfig) -> str:
        return f"{config.preset} L={config.levels}"

    def test_line(self, test: dict) -> str:
        return f"test: top1 {test['top1']:.2f}%  bpp (estimated) {test['bpp_estimated']:.4f}"


def train(config: TrainConfig, auxiliary: Auxiliary | None = None, task: JointTask | None = None) -> dict:
    """Train a JointModel (or the model ``task`` names); returns the final record (validation history and
    test metrics)."""
    from lightning.fabric import Fabric

    task = task or JointTask()
    config.validate()
    out = Path(config.out)
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    strategy = "ddp" if config.devices > 1 else "auto"
    fabric = Fabric(accelerator=device, devices=config.devices, strategy=strategy, precision=precision)
    fabric.launch()
    fabric.seed_everything(config.seed, verbose=False)
    is_main = fabric.global_rank == 0

    # --- data ---
    preset = get_preset(config.preset)
    train_set, val_set = task.datasets(config, preset)

    # --- model, optimizer, schedule ---
    if config.resume:
        model = task.resume(config, out)
        model.train()
    else:
        model = task.build(config, preset, len(train_set.classes))
        if auxiliary and auxiliary.init_model:
            auxiliary.init_model(model)
        if config.init_from:
            loaded, fresh = warm_start(model, config.init_from)
            scale = (fit_latent_to_centers(model, normalize(train_set.images[:CALIBRATION_IMAGES]))
                     if "quantizer.centers" in fresh else 1.0)
            if is_main:
                print(f"warm start from {config.init_from}: {len(loaded)} tensors loaded, "
                      f"{len(fresh)} kept fresh ({', '.join(sorted({k.rsplit('.', 2)[0] for k in fresh})) or '-'})"
                      + (f"; latent scaled x{scale:.3g} onto the new centers" if scale != 1.0 else ""), flush=True)
    to_channels_last(model)
    groups = parameter_groups(model, config.weight_decay)
    if auxiliary:
        groups.append({"params": list(auxiliary.module.parameters()), "weight_decay": 0.0})
    optimizer, scheduler, steps_per_epoch = sgd_with_triangle(groups, config.lr, config.epochs, len(train_set),
                                                              config.batch_size)
    history = History(out / "metrics.csv")
    start_epoch = restore_trainer_state(out, optimizer, scheduler, history) if config.resume else 0
    model, optimizer = fabric.setup(model, optimizer)
    raw_model: JointModel = model.module
    aux_module = fabric.setup_module(auxiliary.module) if auxiliary else None

    if is_main:
        print(f"training {task.describe(config)} on {config.dataset} ({len(train_set)} train, "
              f"{len(val_set) if val_set else 0} val) for {config.epochs} epochs on {device} x{config.devices} "
              f"({precision}); run directory {out}", flush=True)
    rate_images = max(1, int(RATE_BATCH_FRACTION * config.batch_size // config.devices))
    generator = torch.Generator().manual_seed(config.seed * 7919 + fabric.global_rank + start_epoch)
    hinge = RateHinge(config.beta, config.target_bpp, history.rows[-1]["train_bpp"] if history.rows else math.inf)
    started = time.time() - (history.rows[-1]["elapsed_s"] if history.rows else 0.0)

    for epoch in range(start_epoch, config.epochs):
        model.train()
        if aux_module is not None:
            aux_module.train()
        totals = {"loss": 0.0, "correct": 0.0, "seen": 0, "bpp": 0.0, "steps": 0, "aux": 0.0}
        batches = sharded_batches(len(train_set), config.batch_size, epoch, config.seed,
                                  fabric.global_rank, fabric.world_size)
        # A streamed data set decodes the next batch in the background while this step runs.
        bar = tqdm(prefetched(train_set.images, batches), total=steps_per_epoch,
                   desc=f"epoch {epoch + 1}/{config.epochs}", disable=not (is_main and config.progress), leave=False,
                   unit="step")
        for indices, batch_images in bar:
            images = flip_and_translate(batch_images, TRANSLATE, generator)
            images = normalize(images).to(fabric.device).contiguous(memory_format=torch.channels_last)
            labels = train_set.labels[indices].to(fabric.device)
            encoder_weight = hinge.encoder_weight(epoch + totals["steps"] / steps_per_epoch)
            # One rate term: the PE sees its bit cost with weight 1; the encoder sees it with weight
            # beta while the hinge is on and 0 while it is off (its gradient is scaled on the way in).
            output = model(images, rate_grad_to_encoder=encoder_weight, rate_images=rate_images)
            classification = F.cross_entropy(output.logits.float(), labels, label_smoothing=LABEL_SMOOTHING)
            loss = classification + output.bpp.mean()
            if auxiliary:
                aux_loss = auxiliary.loss(aux_module, images, output)
                loss = loss + aux_loss
                totals["aux"] += aux_loss.item()
            optimizer.zero_grad(set_to_none=True)
            fabric.backward(loss)
            optimizer.step()
            scheduler.step()
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch + 1}; try a lower --lr")
            totals["loss"] += classification.item()
            totals["correct"] += (output.logits.argmax(1) == labels).sum().item()
            totals["seen"] += len(labels)
            # Every process must switch the hinge alike: average the batch rate over processes.
            batch_bpp = fabric.all_reduce(output.bpp.mean().detach(), reduce_op="mean").item()
            totals["bpp"] += batch_bpp
            totals["steps"] += 1
            hinge.update(batch_bpp)
            bar.set_postfix(loss=f"{totals['loss'] / totals['steps']:.3f}",
                            acc=f"{100 * totals['correct'] / totals['seen']:.1f}",
                            bpp=f"{totals['bpp'] / totals['steps']:.3f}")
        summed = fabric.all_reduce(torch.tensor([totals["loss"], totals["correct"], totals["seen"]],
                                                dtype=torch.float64), reduce_op="sum")
        loss_sum, correct, seen = summed.tolist()
        row = {"epoch": epoch + 1, "train_loss": loss_sum / (totals["steps"] * fabric.world_size),
               "train_top1": 100 * correct / seen,
               "train_bpp": totals["bpp"] / totals["steps"], "lr": scheduler.get_last_lr()[0]}
        if auxiliary:
            row["train_aux_loss"] = totals["aux"] / totals["steps"]
        if val_set is not None and is_main:
            val = task.evaluate(raw_model, val_set, False, str(fabric.device))
            row.update(val_top1=val["top1"], val_bpp=val["bpp_estimated"])
        row["elapsed_s"] = time.time() - started
        if is_main:
            history.append(row)
            task.save(out, raw_model, config, preset, train_set.classes, epoch + 1, history.rows)
            save_trainer_state(out, {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                                     "epoch": epoch + 1, "history": history.rows})
            if auxiliary:
                auxiliary.save(out, raw_model, epoch + 1)
            print(history.format_line(row), flush=True)
        fabric.barrier()
        to_channels_last(raw_model)  # evaluation ran in eval mode; keep the fast layout for training

    result = {"history": history.rows, "run_dir": str(out)}
    if is_main and config.test_at_end:
        test_set = task.test_set(config, preset)
        test = task.evaluate(raw_model, test_set, config.progress, str(fabric.device))
        test["train_wall_clock_s"] = history.rows[-1]["elapsed_s"] if history.rows else None
        test["epochs"] = config.epochs
        atomic_write_json(out / "eval_test.json", test)
        result["test"] = test
        print(task.test_line(test), flush=True)
    return result

