"""Training the strong pixel-domain receiver (:mod:`jointcodec.baselines.airnet`): one recipe, read top to bottom.

The recipe is airbench94's in spirit, re-derived for a CPU: Nesterov SGD with a high learning rate on a
cool softmax, label smoothing, a triangular schedule, flip + translate augmentation, flip test-time
augmentation. What the images are is the caller's business: a :class:`ImageSource` hands out one epoch of
uint8 images at a time (clean images, one codec setting, or a fresh codec-robust draw each epoch).

Every epoch ends with an atomic checkpoint (``state.pt``); ``train_receiver`` on the same folder resumes.
The weights of the chosen epoch (the last one, or the best on validation with ``keep_best``) are written to
``receiver.safetensors`` with the recipe in its metadata.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from jointcodec.baselines.airnet import AirNet, create_airnet
from jointcodec.checkpoint import load_tagged_model
from jointcodec.data import normalize
from jointcodec.data.augment import flip_and_translate
from jointcodec.errors import ConfigError
from jointcodec.evaluation import accuracy_metrics
from jointcodec.utils import atomic_write

STATE = "state.pt"
WEIGHTS = "receiver.safetensors"
FORMAT = "jointcodec-airnet-receiver"
EVAL_BATCH = 1000

# An epoch's images and labels: uint8 (N, 3, H, W) and int64 (N,), drawn with the given generator.
ImageSource = Callable[[int, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class ReceiverRecipe:
    preset: str = "airnet-s"
    epochs: int = 15  # 10 (airbench94's) reached 91.5 % on clean CIFAR-10 test with this narrower net
    batch_size: int = 1024  # airbench's batch: its learning rate and momentum were tuned for it
    lr: float = 1.5  # per-mean-loss; high because the logits are scaled by 1/9 and every conv is BN-normalised
    bias_lr_scale: float = 64.0  # BN biases learn faster: they are the only affine parameters (airbench)
    momentum: float = 0.85
    decay_per_step: float = 2e-3  # weight decay as a fraction per step at peak lr, the same for every group
    label_smoothing: float = 0.2
    warmup: float = 0.2  # fraction of steps rising linearly from 0.2 x lr to lr; then linear down to 0
    translate: int = 2  # pixels of random translation (reflect padding), plus random flips
    seed: int = 0

    def check(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError(f"receiver recipe needs epochs >= 1, batch size >= 1, lr > 0: {self}")


def lr_factor(step: int, total: int, warmup: float) -> float:
    """Triangular schedule: 0.2 -> 1 over the warm-up, then linearly to 0 at the last step."""
    rise = int(warmup * total)
    if step < rise:
        return 0.2 + 0.8 * step / rise
    return max(0.0, (total - step) / max(1, total - rise))


def _optimizer(model: AirNet, recipe: ReceiverRecipe) -> torch.optim.SGD:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.requires_grad_(False)  # scale-free: a BN gain only fights the weight decay
    trainable = [p for p in model.parameters() if p.requires_grad]
    biases = [p for p in trainable if p.ndim < 2]
    weights = [p for p in trainable if p.ndim >= 2]
    bias_lr = recipe.lr * recipe.bias_lr_scale
    # SGD multiplies weight_decay by lr: dividing by each group's lr makes the decay per step the same.
    groups = [{"params": weights, "lr": recipe.lr, "weight_decay": recipe.decay_per_step / recipe.lr},
              {"params": biases, "lr": bias_lr, "weight_decay": recipe.decay_per_step / bias_lr}]
    for g in groups:
        g["initial_lr"] = g["lr"]
    return torch.optim.SGD(groups, momentum=recipe.momentum, nesterov=True)


def _prepare(images: torch.Tensor) -> torch.Tensor:
    return normalize(images).contiguous(memory_format=torch.channels_last)


def _shifted(images: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Images moved by (dx, dy) pixels, the uncovered border filled by reflection."""
    pad = max(abs(dx), abs(dy))
    padded = F.pad(images.float(), (pad,) * 4, mode="reflect").to(images.dtype)
    h, w = images.shape[-2:]
    return padded[..., pad - dy:pad - dy + h, pad - dx:pad - dx + w]


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, tta: bool = True, batch_size: int = EVAL_BATCH,
            progress: bool = False, desc: str = "test") -> torch.Tensor:
    """Logits for uint8 images. With ``tta`` (airbench's level 2): half the mean over the image and its mirror,
    a quarter each over the pair moved by one pixel up-left and down-right (+0.3 points on validation)."""
    model.eval()

    def mirrored(x: torch.Tensor) -> torch.Tensor:
        x = _prepare(x)
        return 0.5 * (model(x) + model(x.flip(-1)))

    out = []
    for start in tqdm(range(0, len(images), batch_size), desc=desc, disable=not progress, unit="batch",
                      leave=False):
        batch = images[start:start + batch_size]
        if not tta:
            out.append(model(_prepare(batch)).float())
            continue
        logits = 0.5 * mirrored(batch) + 0.25 * (mirrored(_shifted(batch, -1, -1)) + mirrored(_shifted(batch, 1, 1)))
        out.append(logits.float())
    return torch.cat(out)


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, tta: bool = True,
             progress: bool = False, desc: str = "test") -> dict:
    return {**accuracy_metrics(predict(model, images, tta, progress=progress, desc=desc), labels),
            "n_images": len(labels)}


def _save_weights(path: Path, model: AirNet, meta: dict) -> None:
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(state, tmp, metadata={"config": json.dumps(meta)}))


def load_receiver(path: str | Path) -> tuple[AirNet, dict]:
    """A trained receiver (its folder or weights file) in eval mode, and its metadata."""
    return load_tagged_model(path, WEIGHTS, FORMAT, lambda meta: create_airnet(meta["recipe"]["preset"],
                                                                              meta["num_classes"]), "config")


def train_receiver(source: ImageSource, num_classes: int, recipe: ReceiverRecipe, out: str | Path,
                   val: tuple[torch.Tensor, torch.Tensor] | None = None, init_from: str | Path | None = None,
                   keep_best: bool = False, describe: dict | None = None, progress: bool = True,
                   log: Callable[[str], None] = print) -> dict:
    """Train (or resume) a receiver in ``out``; returns its summary (history, chosen epoch, CPU seconds).

    ``init_from``: start from a trained receiver's weights (fine-tuning) instead of fresh ones; the stem stays
    as it was. ``keep_best``: the weights kept are those of the epoch with the best validation top-1, the
    starting weights (epoch 0) included, so a fine-tune can never end worse on validation than it began.
    """
    recipe.check()
    if keep_best and val is None:
        raise ConfigError("keep_best chooses the epoch on validation: give a validation split")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(recipe.seed)
    generator = torch.Generator().manual_seed(recipe.seed)
    state_path = out / STATE
    meta = {"format": FORMAT, "recipe": asdict(recipe), "num_classes": num_classes, "describe": describe or {},
            "init_from": str(init_from) if init_from else None}

    if init_from is not None:
        model, _ = load_receiver(init_from)
        model.train()
    else:
        model = create_airnet(recipe.preset, num_classes)
    model = model.to(memory_format=torch.channels_last)
    optimizer = _optimizer(model, recipe)
    history: list[dict] = []
    best = {"epoch": -1, "val_top1": -1.0}
    cpu_before = 0.0
    if state_path.is_file():
        saved = torch.load(state_path, weights_only=False)
        if saved["meta"] != json.loads(json.dumps(meta)):
            raise ConfigError(f"cannot resume {out}: it was started with another recipe or source "
                              f"({saved['meta']}); use another folder")
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        generator.set_state(saved["generator"])
        history, best, cpu_before = saved["history"], saved["best"], saved["cpu_s"]
        log(f"resuming {out} after epoch {len(history)}")

    cpu_start = time.process_time()
    wall_start = time.time()
    first_epoch = len(history) + 1
    if first_epoch == 1:
        images, _ = source(0, generator)
        if init_from is None:
            model.init_whitening(normalize(images[:5000]))  # the stem's basis from training images only
        if keep_best:
            row = {"epoch": 0, **{f"val_{k}": v for k, v in evaluate(model, *val, desc="val").items()}}
            best = {"epoch": 0, "val_top1": row["val_top1"]}
            _save_weights(out / WEIGHTS, model, {**meta, "epoch": 0})
            log(f"epoch 0 (starting weights): val top1 {row['val_top1']:.2f}%")
    steps_per_epoch = None
    for epoch in range(first_epoch, recipe.epochs + 1):
        images, labels = source(epoch, generator)
        steps_per_epoch = -(-len(images) // recipe.batch_size)
        total = steps_per_epoch * recipe.epochs
        order = torch.randperm(len(images), generator=generator)
        model.train()
        started, loss_sum = time.time(), 0.0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{recipe.epochs}", disable=not progress,
                   unit="step", leave=False)
        for i in bar:
            step = (epoch - 1) * steps_per_epoch + i
            for g in optimizer.param_groups:
                g["lr"] = g["initial_lr"] * lr_factor(step, total, recipe.warmup)
            idx = order[i * recipe.batch_size:(i + 1) * recipe.batch_size]
            x = _prepare(flip_and_translate(images[idx], recipe.translate, generator))
            loss = F.cross_entropy(model(x), labels[idx], label_smoothing=recipe.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        row = {"epoch": epoch, "train_loss": loss_sum / steps_per_epoch, "epoch_s": time.time() - started}
        if val is not None:
            row.update({f"val_{k}": v for k, v in evaluate(model, *val, desc="val").items()})
        history.append(row)
        chosen = not keep_best or row["val_top1"] > best["val_top1"]
        if chosen:
            best = {"epoch": epoch, "val_top1": row.get("val_top1", float("nan"))}
            _save_weights(out / WEIGHTS, model, {**meta, "epoch": epoch, "history": history})
        cpu_now = cpu_before + time.process_time() - cpu_start
        saved = {"meta": meta, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "generator": generator.get_state(), "history": history, "best": best, "cpu_s": cpu_now}
        atomic_write(state_path, lambda tmp, s=saved: torch.save(s, tmp))
        val_text = f", val top1 {row['val_top1']:.2f}%" if val is not None else ""
        log(f"epoch {epoch}/{recipe.epochs}: loss {row['train_loss']:.4f}{val_text} ({row['epoch_s']:.0f} s)"
            + (" *" if keep_best and chosen else ""))
    return {"history": history, "chosen_epoch": best["epoch"], "best_val_top1": best.get("val_top1"),
            "cpu_s": cpu_before + time.process_time() - cpu_start, "wall_s": time.time() - wall_start,
            "weights": str(out / WEIGHTS)}


def with_epochs(recipe: ReceiverRecipe, epochs: int, **changes) -> ReceiverRecipe:
    return replace(recipe, epochs=epochs, **changes)


__all__ = ["FORMAT", "ImageSource", "ReceiverRecipe", "evaluate", "load_receiver", "predict", "train_receiver"]
