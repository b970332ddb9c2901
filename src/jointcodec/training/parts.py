"""The pieces the training loop (``recipe.train``) is built from: rate hinge, optimizer and schedule, batches,
and the trainer state that lets ``--resume`` continue a run exactly."""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from jointcodec.checkpoint import load_trainer_state, warm_start
from jointcodec.data import ImageSet, normalize
from jointcodec.errors import ConfigError
from jointcodec.models import JointModel
from jointcodec.training.history import History
from jointcodec.training.hyperparameters import (
    CALIBRATION_IMAGES,
    MOMENTUM,
    RATE_EMA,
    RATE_RAMP_EPOCHS,
    WARMUP_FRACTION,
    Recipe,
)


class RateHinge:
    """The encoder's share of ``beta * max(0, bpp - target)``. The hinge is switched by a running estimate of
    the rate, so the share is known before the forward pass; beta ramps in over RATE_RAMP_EPOCHS.

    The running rate stays on the training device, a float64 scalar: reading it back every step would make a
    GPU wait for the host, and float64 is the arithmetic of Python floats, so a CPU run switches exactly as it
    would with them."""

    def __init__(self, beta: float, target_bpp: float, device: torch.device | str = "cpu") -> None:
        self.beta, self.target_bpp = beta, target_bpp
        self.bpp_ema = torch.tensor(math.inf, dtype=torch.float64, device=device)  # inf: no batch seen yet

    def encoder_weight(self, epochs_done: float) -> torch.Tensor:
        """``epochs_done``: epochs completed so far, fractional within the current one. A float32 scalar on the
        device: beta while the running rate is over the target, else 0."""
        beta = self.beta * min(1.0, epochs_done / RATE_RAMP_EPOCHS)
        return torch.where(self.bpp_ema > self.target_bpp, beta, 0.0).float()

    def update(self, batch_bpp: torch.Tensor) -> None:
        batch_bpp = batch_bpp.detach().double()
        smoothed = RATE_EMA * self.bpp_ema + (1 - RATE_EMA) * batch_bpp
        self.bpp_ema = torch.where(self.bpp_ema.isfinite(), smoothed, batch_bpp)

    def running_rate(self) -> float:
        return self.bpp_ema.item()

    def set_running_rate(self, value: float) -> None:
        self.bpp_ema = torch.tensor(value, dtype=torch.float64, device=self.bpp_ema.device)


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


def warm_start_from(model: JointModel, checkpoint: str, train_set: ImageSet, verbose: bool) -> None:
    """Seed ``model`` with the matching weights of ``checkpoint``; fresh quantizer centers (another L) get
    the latent scaled onto them (``fit_latent_to_centers``, on the first training images)."""
    loaded, fresh = warm_start(model, checkpoint)
    scale = (fit_latent_to_centers(model, normalize(train_set.images[:CALIBRATION_IMAGES]))
             if "quantizer.centers" in fresh else 1.0)
    if verbose:
        print(f"warm start from {checkpoint}: {len(loaded)} tensors loaded, "
              f"{len(fresh)} kept fresh ({', '.join(sorted({k.rsplit('.', 2)[0] for k in fresh})) or '-'})"
              + (f"; latent scaled x{scale:.3g} onto the new centers" if scale != 1.0 else ""), flush=True)


def sgd_with_triangle(groups: list[dict], lr: float, epochs: int, n_train: int, batch_size: int):
    """Nesterov SGD and its per-step triangle schedule; returns (optimizer, scheduler, steps per epoch)."""
    steps_per_epoch = n_train // batch_size
    if steps_per_epoch == 0:
        raise ConfigError(f"--batch-size {batch_size} exceeds the {n_train} training images")
    optimizer = torch.optim.SGD(groups, lr=lr, momentum=MOMENTUM, nesterov=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, triangle_schedule(epochs * steps_per_epoch))
    return optimizer, scheduler, steps_per_epoch


def weight_average(model: nn.Module, decay: float) -> AveragedModel | None:
    """An exponential moving average of ``model``'s weights and buffers (batch-norm statistics too), updated
    after every step; None for decay 0. It smooths the noise of SGD's last steps out of what is saved."""
    if not decay:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def trainer_state(recipe: Recipe, epoch: int, model: nn.Module, extra: nn.Module | None, optimizer, scheduler,
                  history: History, hinge: RateHinge, device: torch.device,
                  average: AveragedModel | None = None) -> dict:
    """Everything ``restore_trainer_state`` needs to continue after ``epoch`` exactly as an uninterrupted run would.
    The weights travel in it too: the model file is written separately, and a kill between the two writes
    must not pair one epoch's weights with another's optimizer."""
    state = {"recipe": asdict(recipe), "epoch": epoch, "model": cpu_copy(model), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "history": history.rows, "rate_ema": hinge.running_rate(),
             "torch_rng": torch.get_rng_state()}
    if extra is not None:
        state["extra"] = cpu_copy(extra)
    if average is not None:
        state["average"] = cpu_copy(average)
    if device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(device)
    return state


def restore_trainer_state(out: Path, recipe: Recipe, model: nn.Module, extra: nn.Module | None, optimizer,
                          scheduler, history: History, hinge: RateHinge, device: torch.device,
                          average: AveragedModel | None = None) -> int:
    """Load what ``trainer_state`` saved for run ``out`` into the given parts; returns the epoch to start from.
    A recipe other than the run's is a ConfigError: the schedule and the data order depend on all of it."""
    state = load_trainer_state(out)
    saved = state.get("recipe")  # absent from the states of older releases
    if saved is not None and saved != asdict(recipe):
        changed = ", ".join(f"{k}={saved.get(k)!r} (now {v!r})" for k, v in asdict(recipe).items() if saved.get(k) != v)
        raise ConfigError(f"--resume: {out} was trained with another recipe: {changed}; resume it with its own "
                          f"recipe, or start a new run in another --out")
    if "model" in state:
        model.load_state_dict(state["model"])
    if extra is not None and "extra" in state:
        extra.load_state_dict(state["extra"])
    if average is not None:
        average.load_state_dict(state["average"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    history.rows = state["history"]
    # Older states lack the rate estimate: the last epoch's mean rate stands in for it.
    hinge.set_running_rate(state.get("rate_ema", history.rows[-1]["train_bpp"] if history.rows else math.inf))
    if "torch_rng" in state:
        torch.set_rng_state(state["torch_rng"])
    if "cuda_rng" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"], device)
    return state["epoch"]


def cpu_copy(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def augmentation_generator(seed: int, epoch: int, rank: int) -> torch.Generator:
    """The random flips and translations of one rank in one epoch: a function of (seed, epoch, rank) alone, as the
    batch order is, so a resumed run draws what an uninterrupted one drew on every rank with no state to save
    (one generator for the whole run would need every rank's state saved). Hashed: no two triples share a seed."""
    key = hashlib.sha256(f"augment:{seed}:{epoch}:{rank}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(key[:8], "little"))


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
