"""Data sets: CIFAR-10/100 and ImageFolder trees, held in memory as uint8 tensors when they are small.

Where a data set is looked for, in order, under the data directory DIR (``--data-dir``, else the
environment variable ``JOINTCODEC_DATA``, else ``~/.cache/jointcodec/data``):

1. ``DIR/<name>/<split>.npz`` with ``images`` (N, H, W, 3) uint8 and ``labels`` (the ``--format npz``
   output of the project's ``prepare.py``), class names from ``DIR/<name>/labels.json``;
2. ``DIR/<name>/<split>/<class>/<image>`` ImageFolder trees (PNG, JPEG, ...);
3. torchvision's own CIFAR layout (``DIR/cifar-10-batches-py``, ``DIR/cifar-100-python``), which
   ``download=True`` fetches when the machine is online.

``imagefolder:PATH`` names any ImageFolder tree with ``train/`` and ``test/`` folders.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from jointcodec.errors import DataError

ENV_DATA_DIR = "JOINTCODEC_DATA"
CIFAR = {"cifar10": "CIFAR10", "cifar100": "CIFAR100"}
SPLITS = ("train", "test")
# Above this many pixels an ImageFolder split is streamed from disk instead of held in memory.
IN_MEMORY_PIXEL_LIMIT = 2_000_000_000


@dataclass
class ImageSet:
    """A labelled split in memory: ``images`` (N, 3, H, W) uint8, ``labels`` (N,) int64."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    name: str
    split: str

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: torch.Tensor | slice) -> ImageSet:
        return ImageSet(self.images[indices], self.labels[indices], self.classes, self.name, self.split)

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.images.shape[-2:])


def default_data_dir() -> Path:
    return Path(os.environ.get(ENV_DATA_DIR) or Path.home() / ".cache" / "jointcodec" / "data")


def load_split(name: str, split: str, data_dir: str | Path | None = None, download: bool = False,
               image_size: int | None = None) -> ImageSet:
    """Load one split of a data set into memory (see the module docstring for where it is looked for)."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    root = Path(data_dir) if data_dir else default_data_dir()
    if name.startswith("imagefolder:"):
        return _load_imagefolder(Path(name.split(":", 1)[1]) / split, name, split, image_size)
    if name not in CIFAR and not (root / name / split).is_dir():
        raise DataError(f"unknown data set {name!r}: expected one of {', '.join(CIFAR)}, "
                        f"imagefolder:PATH, or a folder {root / name / split}")
    npz = root / name / f"{split}.npz"
    if npz.is_file():
        return _load_npz(npz, name, split)
    if (root / name / split).is_dir():
        return _load_imagefolder(root / name / split, name, split, image_size)
    return _load_torchvision_cifar(name, split, root, download)


def _load_npz(path: Path, name: str, split: str) -> ImageSet:
    try:
        with np.load(path) as data:
            images, labels = data["images"], data["labels"]
    except (OSError, KeyError, ValueError) as err:
        raise DataError(f"cannot read {path}: {err}") from err
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8 or len(images) != len(labels):
        raise DataError(f"{path} must hold images (N, H, W, 3) uint8 and N labels; got {images.shape}")
    classes = _class_names(path.parent, int(labels.max()) + 1)
    return ImageSet(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
                    torch.from_numpy(labels.astype(np.int64)), classes, name, split)


def _class_names(folder: Path, count: int) -> list[str]:
    labels_json = folder / "labels.json"
    if labels_json.is_file():
        classes = json.loads(labels_json.read_text()).get("classes")
        if classes:
            return list(classes)
    return [str(i) for i in range(count)]


def _load_torchvision_cifar(name: str, split: str, root: Path, download: bool) -> ImageSet:
    import torchvision

    cls = getattr(torchvision.datasets, CIFAR[name])
    try:
        ds = cls(root=str(root), train=split == "train", download=download)
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted"
        hint = "" if download else " (pass --download to fetch it, or point --data-dir / $JOINTCODEC_DATA at a copy)"
        raise DataError(f"{name} not found under {root}{hint}: {err}") from err
    except OSError as err:  # offline download, unreadable files
        raise DataError(f"cannot get {name} into {root}: {err}") from err
    images = torch.from_numpy(np.asarray(ds.data)).permute(0, 3, 1, 2).contiguous()
    return ImageSet(images, torch.as_tensor(ds.targets, dtype=torch.int64), list(ds.classes), name, split)


def imagefolder_transform(image_size: int | None):
    """Resize the shorter side, centre-crop to a square, keep uint8 (what the in-memory path stores)."""
    from torchvision.transforms import v2

    steps = [v2.PILToTensor()]
    if image_size:
        steps[:0] = [v2.Resize(image_size), v2.CenterCrop(image_size)]
    return v2.Compose(steps)


def _load_imagefolder(folder: Path, name: str, split: str, image_size: int | None) -> ImageSet:
    from torchvision.datasets import ImageFolder

    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder; an ImageFolder data set needs {folder}/<class>/<image>")
    try:
        ds = ImageFolder(str(folder), transform=imagefolder_transform(image_size))
    except (FileNotFoundError, RuntimeError) as err:
        raise DataError(f"cannot read ImageFolder {folder}: {err}") from err
    if image_size and len(ds) * image_size * image_size > IN_MEMORY_PIXEL_LIMIT:
        raise DataError(f"{folder} holds {len(ds)} images, too many to hold in memory at {image_size}px "
                        "(streaming large data sets from disk is not supported yet)")
    images, labels = [], []
    for i in range(len(ds)):
        try:
            image, label = ds[i]
        except OSError as err:
            raise DataError(f"cannot decode {ds.samples[i][0]}: {err}") from err
        if image.shape[0] == 1:
            image = image.expand(3, -1, -1)
        images.append(image[:3])
        labels.append(label)
    shapes = {tuple(im.shape) for im in images}
    if len(shapes) != 1:
        raise DataError(f"images in {folder} differ in size ({len(shapes)} sizes); pass an image size to crop them")
    return ImageSet(torch.stack(images), torch.tensor(labels, dtype=torch.int64), list(ds.classes), name, split)


def train_val_split(train: ImageSet, val_size: int, seed: int) -> tuple[ImageSet, ImageSet | None]:
    """Carve a validation split out of train (fixed by ``seed``); the test split is never used for tuning."""
    if val_size <= 0:
        return train, None
    if val_size >= len(train):
        raise DataError(f"--val-size {val_size} leaves no training images (train has {len(train)})")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    val = train.subset(order[:val_size])
    val.split = "val"
    return train.subset(order[val_size:]), val
