"""The recipe as plain data: every hyperparameter with its reason, and, apart from it, where a run happens.

``Recipe`` decides the numbers a run produces; a checkpoint records it (``config["train"]``), so a model
can be read and retrained from its own file. ``RunSettings`` decides only where and how the run happens
(device, precision, paths, resume, progress); a checkpoint records them apart (``config["run"]``).
This module imports no torch: the command line reads its defaults from here.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, TypeVar

# --- fixed parts of the recipe (the same for every run; each with the reason it is what it is) --------------
LABEL_SMOOTHING = 0.2  # airbench: regularises short runs at no cost
MOMENTUM = 0.9  # Nesterov SGD: the fast, robust choice for ResNets on CIFAR
WARMUP_FRACTION = 0.15  # linear warm-up, then linear decay to zero (a triangle, as in airbench)
RATE_BATCH_FRACTION = 0.25  # the PE runs on a quarter of each batch: the mean rate needs no more
RATE_RAMP_EPOCHS = 2  # beta grows linearly over the first epochs: an untrained classifier cannot
#                       resist the rate penalty, and the encoder would collapse to one symbol
RATE_EMA = 0.9  # smoothing of the batch rate that switches the hinge penalty on and off
EVAL_BATCH = 500  # images per evaluation batch: memory only, the numbers do not depend on it
CALIBRATION_IMAGES = 1024  # training images a data-derived start reads: the latent's quantiles for a warm start at
#                            another L, a whitened stem's patches (models/whitening.py caps those further)


@dataclass
class Recipe:
    """The hyperparameters of a run: plain data, saved into every checkpoint so a run can be read and repeated."""

    # The defaults are the recipe of the shipped `cifar10-v1deep-L2` (docs/results.md: 88.78 % test top-1); the
    # named recipes (RECIPES) change a few of them.
    preset: str = "cifar-v1-deep"  # sizes: cifar-v2's validation top-1 at half its encoder MACs (preset sweep)
    dataset: str = "cifar10"  # cifar10, cifar100 or imagefolder:PATH
    levels: int = 2  # quantizer centers L: one bit per latent element, the cheapest symbol to code and to send
    target_bpp: float = 0.79  # the rate the hinge holds the encoder at, in bits per input pixel
    beta: float = 2.0  # weight of the hinge max(0, bpp - target): only the excess over the target is penalised
    epochs: int = 26  # the default's run length: 182 s on a shared H100, about 104 min on a 2-core AVX2 CPU
    batch_size: int = 256  # global batch, split over --devices; the PE's rate estimate takes a quarter of it
    lr: float = 0.1  # peak of the triangle schedule for Nesterov SGD at this batch size
    weight_decay: float = 5e-4  # the usual CIFAR ResNet value; also an L2 pull on the quantizer centers
    val_size: int = 5000  # training images held out for validation: the test split is never used for tuning
    train_subset: int = 0  # use only the first N training images (tests, quick looks); 0 = all
    seed: int = 0  # one seed for the initialisation, the validation split and the batch order
    val_seed: int | None = None  # the validation split's seed if not ``seed``: an add-on keeps its model's split
    init_from: str | None = None  # warm start: a checkpoint whose matching weights seed the model
    teacher: str | None = None  # a clean-image receiver (`jointcodec sweep clean`) whose soft labels the classifier
    #                             also fits (training/teacher.py); None: the labels alone
    teacher_weight: float = 0.5  # with a teacher: its share of the classification loss, the labels' the rest
    ema_decay: float = 0.0  # per-step decay of an exponential moving average of the weights, which is what is
    #                         validated and saved (training/parts.py: weight_average); 0: the weights themselves
    val_every: int = 1  # validate after every N-th epoch and after the last; 0: after the last only (a pass over
    #                     5,000 validation images costs about 5 s on a 2-core CPU, a tenth of an epoch's time)
    low_res_epochs: int = 0  # the first N epochs train on images downscaled to low_res_size (progressive resizing):
    #                          a 24-pixel step costs 0.6 of a 32-pixel one, and early epochs learn coarse features
    low_res_size: int = 24  # pixels a side in those epochs; the encoder's stride (4) makes a 6 x 6 latent of it
    translate: int = 2  # pixels of random translation (reflect padding) beside the random flip; more hurts at the
    #                     default's few epochs (airbench); longer runs overfit and may want more
    cutout: int = 0  # side in pixels of a random square zeroed in each training image (after the translation); 0:
    #                  none. A regulariser for long runs, which overfit in their last epochs
    whiten_stem: bool = False  # start the encoder's first conv as +/- the principal directions of the training
    #                            images' patches (airbench's whitening; models/whitening.py), not at random

    @classmethod
    def from_record(cls, record: dict | None) -> Recipe:
        """The recipe a checkpoint recorded. Older checkpoints kept the run settings in the same record
        (device, out, ...); they are not part of the recipe and are left out here, nowhere else."""
        return pick(cls, record or {})

    def validate(self, resuming: bool = False) -> None:
        from jointcodec.checkpoint import resolve_weights
        from jointcodec.models import get_preset

        preset = get_preset(self.preset)
        require([(self.levels >= 2, f"--levels must be >= 2, got {self.levels}"),
                 (self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}"),
                 (self.batch_size >= 2, f"--batch-size must be >= 2, got {self.batch_size}"),
                 (self.target_bpp > 0, f"--target-bpp must be > 0, got {self.target_bpp}"),
                 (self.beta >= 0, f"--beta must be >= 0, got {self.beta}"),
                 (self.weight_decay >= 0, f"--weight-decay must be >= 0, got {self.weight_decay}"),
                 (self.val_size >= 0, f"--val-size must be >= 0, got {self.val_size}"),
                 (self.train_subset >= 0, f"--train-subset must be >= 0 (0 = all), got {self.train_subset}"),
                 (self.lr > 0, f"--lr must be > 0, got {self.lr}"),
                 (0 <= self.teacher_weight <= 1, f"--teacher-weight must be in [0, 1], got {self.teacher_weight}"),
                 (0 <= self.ema_decay < 1, f"--ema-decay must be in [0, 1), got {self.ema_decay}"),
                 (self.val_every >= 0, f"--val-every must be >= 0, got {self.val_every}"),
                 (0 <= self.low_res_epochs < self.epochs,
                  f"--low-res-epochs must be in [0, --epochs), got {self.low_res_epochs} of {self.epochs} (a shorter "
                  "run of a recipe with low-resolution epochs needs a smaller --low-res-epochs too)"),
                 (not self.low_res_epochs or 8 <= self.low_res_size < preset.image_size,
                  f"--low-res-size must be in [8, {preset.image_size}), the preset's image size; got "
                  f"{self.low_res_size}"),
                 (0 <= self.translate <= preset.image_size // 4,
                  f"--translate must be in [0, {preset.image_size // 4}] pixels (a quarter of the image side), got "
                  f"{self.translate}"),
                 (0 <= self.cutout <= preset.image_size // 2,
                  f"--cutout must be in [0, {preset.image_size // 2}] pixels (half the image side), got {self.cutout}"),
                 (not (self.whiten_stem and self.init_from),
                  "--whiten-stem sets a fresh encoder's first layer; a warm start (--init-from) would replace it"),
                 (not self.teacher or Path(self.teacher).exists(),
                  f"--teacher {self.teacher}: no such receiver (run directory or weights file)")])
        if self.init_from and not resuming:  # a resumed run does not read its warm start again
            resolve_weights(self.init_from)  # a missing checkpoint fails before any data is read

    def validates_after(self, epoch: int) -> bool:
        """Whether the run validates after ``epoch`` (1-based)."""
        return epoch == self.epochs or (self.val_every > 0 and epoch % self.val_every == 0)

    def low_res(self, epoch: int) -> bool:
        """Whether ``epoch`` (0-based) trains on downscaled images: the first ``low_res_epochs``."""
        return epoch < self.low_res_epochs

    def split_seed(self) -> int:
        return self.seed if self.val_seed is None else self.val_seed

    def for_addon(self, train_subset: int) -> Recipe:
        """The model's recipe, as an add-on trained for it (a decoder, a distilled encoder) uses it: the same
        validation images stay out (its split seed), on the first ``train_subset`` training images (0: all);
        on a subset, the validation split shrinks to what it can afford (a tenth of it at most)."""
        val_size = min(self.val_size, train_subset // 10) if train_subset else self.val_size
        # An add-on runs its own schedule and starts from its model: low-resolution epochs, cutout (a decoder
        # would learn to paint the zeroed squares) and the whitened stem do not carry over.
        return replace(self, train_subset=train_subset, val_size=val_size, val_seed=self.split_seed(),
                       low_res_epochs=0, cutout=0, whiten_stem=False)


# Named recipes (``jointcodec train --recipe NAME``; ``jointcodec recipes`` lists them): plain data, each the fields
# it changes from ``Recipe()`` and what it is for. Flags given beside ``--recipe`` override its fields.
RECIPES: dict[str, dict[str, Any]] = {
    "default": {"about": "the core recipe, which trained the zoo's cifar10-v1deep-L2 (26 epochs, about 104 min on a "
                         "2-core x86 CPU with AVX2 only, fp32)",
                "changes": {}},
    "fast": {"about": "the default's 26 epochs with a moving average of the weights, validated after the last "
                      "epoch only: 20.1 to 20.7 min end to end on a 2-core x86 CPU with AMX (bf16 autocast), "
                      "88.76 % or more on CIFAR-10 through real files at 0.763 bpp or less (3 seeds); 104 to 111 s "
                      "on one NVIDIA H200, 88.45 % or more (2 seeds; docs/results.md)",
             "changes": {"epochs": 26, "ema_decay": 0.998, "val_every": 0}},
    "long": {"about": "the fast recipe's settings over 64 epochs, validating every 4th: 89.79 % on CIFAR-10 through "
                      "real files at 0.761 bpp, 1.0 point above the core recipe; 89 min of training on a 2-core x86 "
                      "CPU with AVX-512 BF16 (bf16 autocast; one seed). With --translate 4 --cutout 8 --val-size 0 "
                      "it trained the shipped default, cifar10-0.8 (90.98 %; docs/results.md)",
             "changes": {"epochs": 64, "ema_decay": 0.998, "val_every": 4}},
}


def named_recipe(name: str, **overrides: Any) -> Recipe:
    """The recipe ``name`` (a key of RECIPES) with ``overrides`` (field -> value) applied; a ConfigError that
    lists the choices for an unknown name or field."""
    from jointcodec.errors import ConfigError

    if name not in RECIPES:
        raise ConfigError(f"no recipe {name!r} (recipes: {', '.join(RECIPES)})")
    names = {f.name for f in fields(Recipe)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ConfigError(f"not a recipe field: {', '.join(unknown)}")
    return replace(Recipe(), **{**RECIPES[name]["changes"], **overrides})


@dataclass
class RunSettings:
    """Where and how a run happens; none of it changes the numbers a run produces."""

    device: str = "auto"  # auto, cpu or cuda
    precision: str = "auto"  # auto (bf16 where the hardware is fast at it, else fp32), 32-true, bf16-mixed, ...
    devices: int = 1  # data-parallel processes (DDP via Fabric); the global batch is split over them
    data_dir: str | None = None  # where the data set is (default: $JOINTCODEC_DATA)
    download: bool = False  # fetch CIFAR if it is not found
    out: str = "runs/cifar10-v1deep-L2"  # run directory: checkpoints, metrics, logs
    resume: bool = False  # continue the run in ``out`` from its last finished epoch
    test_at_end: bool = True  # evaluate on the test split once training is done
    progress: bool = True  # progress bars

    def validate(self, batch_size: int) -> None:
        require([(self.devices >= 1, f"--devices must be >= 1, got {self.devices}"),
                 (batch_size % max(self.devices, 1) == 0, "--batch-size must divide evenly over --devices")])


@dataclass
class TrainConfig(RunSettings, Recipe):
    """A recipe and its run settings in one flat object (the public ``jointcodec.TrainConfig`` of earlier
    releases); ``train`` splits it into the two."""

    def split(self) -> tuple[Recipe, RunSettings]:
        values = vars(self)
        return pick(Recipe, values), pick(RunSettings, values)


@dataclass
class AddOnSettings:
    """What every add-on to a trained model (distill-encoder, add-receiver, train-decoder) shares: which training
    images, where the data is, and how the run goes (resume, final test, progress bars)."""

    train_subset: int = 0  # use only the first N training images (tests, quick looks); 0 = all
    data_dir: str | None = None
    download: bool = False
    resume: bool = False
    test_at_end: bool = True
    progress: bool = True

    def run_settings(self, out: str, **settings: Any) -> RunSettings:
        """The main loop's run settings for this add-on, written to ``out`` (``settings``: device, precision)."""
        return RunSettings(data_dir=self.data_dir, download=self.download, out=out, resume=self.resume,
                           test_at_end=self.test_at_end, progress=self.progress, **settings)


@dataclass
class DistillConfig(AddOnSettings):
    """``jointcodec distill-encoder``: a cheaper encoder for a trained model's receiver (training/distill.py)."""

    teacher: str = "default"  # the trained model whose receiver (centers, context, classifier) is kept
    preset: str = "cifar-v3-deep"  # the new encoder: the lightest preset that shares the default's receiver
    out: str = "runs/distill-cifar-v3-deep"
    epochs: int = 8
    batch_size: int = 256
    lr: float = 0.05  # half the recipe's peak: the receiver is trained already, only the encoder moves
    weight_decay: float = 5e-4
    beta: float = 2.0
    target_bpp: float | None = None  # None: the teacher's own training target
    imitation_weight: float = 1.0  # weight of the cross-entropy against the teacher's symbols
    seed: int = 0

    def validate(self) -> None:
        from jointcodec.models import get_preset

        get_preset(self.preset)
        require([(self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}"),
                 (self.batch_size >= 2, f"--batch-size must be >= 2, got {self.batch_size}"),
                 (self.lr > 0, f"--lr must be > 0, got {self.lr}"),
                 (self.imitation_weight >= 0, f"--imitation-weight must be >= 0, got {self.imitation_weight}")])


@dataclass
class AddReceiverConfig(AddOnSettings):
    """``jointcodec add-receiver``: one more voting receiver for a trained model whose codec stays frozen
    (training/ensemble.py): the server grows, the devices and their bits do not change."""

    checkpoint: str = "default"  # the trained model (run directory, weights file or shipped name)
    out: str = "runs/add-receiver"
    epochs: int = 12  # a receiver from scratch on a fixed latent (the joint recipe trains for 26)
    batch_size: int = 256
    lr: float = 0.1  # the joint recipe's peak: the new receiver starts from scratch
    weight_decay: float = 5e-4
    teacher: str | None = None  # a clean-image receiver to distil from, as in ``train --teacher``
    teacher_weight: float = 0.5
    seed: int = 1  # not the model's own seed (0): the new member starts from other weights and batch orders

    def validate(self) -> None:
        require([(self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}"),
                 (self.batch_size >= 2, f"--batch-size must be >= 2, got {self.batch_size}"),
                 (self.lr > 0, f"--lr must be > 0, got {self.lr}"),
                 (0 <= self.teacher_weight <= 1, f"--teacher-weight must be in [0, 1], got {self.teacher_weight}")])


@dataclass
class DecoderTrainConfig(AddOnSettings):
    """``jointcodec train-decoder``: a reconstruction decoder for a codec model (training/decoder.py)."""

    checkpoint: str = "default"
    out: str = "runs/decoder"
    epochs: int = 4
    batch_size: int | None = None  # None: 128 (frozen) or the model's own recipe batch size (joint)
    lr: float | None = None  # None: 2e-3 (Adam, frozen) or the model's own recipe lr (joint)
    ms_ssim_weight: float = 0.0
    joint: bool = False
    mse_weight: float = 1.0
    test_limit: int = 0  # evaluate only the first N test images (0: all)
    seed: int = 0

    def validate(self) -> None:
        require([(self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}"),
                 ((self.batch_size or 1) >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
                 (self.lr is None or self.lr > 0, f"--lr must be > 0, got {self.lr}"),
                 (self.ms_ssim_weight >= 0, f"--ms-ssim-weight must be >= 0, got {self.ms_ssim_weight}"),
                 (self.mse_weight > 0, f"--mse-weight must be > 0, got {self.mse_weight}"),
                 (not (self.joint and self.ms_ssim_weight), "--ms-ssim-weight is for the frozen decoder only")])


T = TypeVar("T")


def pick(cls: type[T], values: dict[str, Any]) -> T:
    """An instance of dataclass ``cls`` from the entries of ``values`` that are its fields (e.g. parsed flags)."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


def require(checks: list[tuple[bool, str]]) -> None:
    """Raise ConfigError with the message of the first failed check."""
    from jointcodec.errors import ConfigError

    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
