"""Data sets: CIFAR-10/100 and ImageFolder trees, as uint8 images in memory, or streamed from disk when large.

Where a data set is looked for, in order, under the data directory DIR (``--data-dir``, else the
environment variable ``JOINTCODEC_DATA``, else ``~/.cache/jointcodec/data``):

1. ``DIR/<name>/<split>.npz`` with ``images`` (N, H, W, 3) uint8 and ``labels`` (the ``--format npz``
   output of the project's ``prepare.py``), class names from ``DIR/<name>/labels.json``;
2. ``DIR/<name>/<split>/<class>/<image>`` ImageFolder trees (PNG, JPEG, ...);
3. torchvision's own CIFAR layout (``DIR/cifar-10-batches-py``, ``DIR/cifar-100-python``), which
   ``download=True`` fetches when the machine is online.

``imagefolder:PATH`` names any ImageFolder tree with ``train/`` and ``test/`` folders.

Small sets (CIFAR, npz, ImageFolder splits up to ``IN_MEMORY_PIXEL_LIMIT`` pixels) are held in memory as one
uint8 tensor. A larger ImageFolder split (ImageNet) is streamed from disk: ``ImageSet.images`` is then a
:class:`~jointcodec.data.streaming.LazyImages` store that decodes each indexed batch on ``workers`` threads
(default: one per CPU), with the same resize and centre crop; ``load_split(..., stream=True)`` forces it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from jointcodec.data.streaming import LazyImages, decode_images, imagefolder_transform
from jointcodec.errors import DataError

ENV_DATA_DIR = "JOINTCODEC_DATA"
CIFAR = {"cifar10": "CIFAR10", "cifar100": "CIFAR100"}
SPLITS = ("train", "test")
# Above this many pixels (6 GB as uint8 RGB) an ImageFolder split is streamed from disk instead of held in memory.
IN_MEMORY_PIXEL_LIMIT = 2_000_000_000


@dataclass
class ImageSet:
    """A labelled split: ``images`` (N, 3, H, W) uint8, ``labels`` (N,) int64.

    ``images`` is a tensor in memory, or for a streamed split a :class:`LazyImages` store that decodes the
    files a slice or index tensor selects; both index alike.
    """

    images: torch.Tensor | LazyImages
    labels: torch.Tensor
    classes: list[str]
    name: str
    split: str

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: torch.Tensor | slice) -> ImageSet:
        images = self.images.subset(indices) if self.streamed else self.images[indices]
        return ImageSet(images, self.labels[indices], self.classes, self.name, self.split)

    @property
    def streamed(self) -> bool:
        """Whether the images are decoded from disk when indexed (a :class:`LazyImages` store)."""
        return isinstance(self.images, LazyImages)

    def all_images(self, purpose: str) -> torch.Tensor:
        """Every image as one tensor, for code that needs them at once (``purpose`` names it in the error).

        A streamed split is decoded when it fits under ``IN_MEMORY_PIXEL_LIMIT`` (a subset, say); a larger
        one raises DataError rather than filling the memory.
        """
        if not self.streamed:
            return self.images
        count, _, height, width = self.images.shape
        if count * height * width > IN_MEMORY_PIXEL_LIMIT:
            raise DataError(f"{purpose} needs all images in memory, but {self.name}:{self.split} ({count} images "
                            f"at {height}x{width}) is too large and streamed from disk; take a smaller subset")
        return self.images[:]

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.images.shape[-2:])


def default_data_dir() -> Path:
    return Path(os.environ.get(ENV_DATA_DIR) or Path.home() / ".cache" / "jointcodec" / "data")


def load_split(name: str, split: str, data_dir: str | Path | None = None, download: bool = False,
               image_size: int | None = None, stream: bool | None = None, workers: int | None = None) -> ImageSet:
    """Load one split of a data set (see the module docstring for where it is looked for).

    ``stream``: ``None`` streams an ImageFolder split from disk when it exceeds ``IN_MEMORY_PIXEL_LIMIT`` at
    ``image_size``, ``True`` always (ImageFolder only; needs ``image_size``), ``False`` never.
    ``workers``: threads decoding ImageFolder images (default: one per CPU).
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    root = Path(data_dir) if data_dir else default_data_dir()
    if name.startswith("imagefolder:"):
        return _load_imagefolder(Path(name.split(":", 1)[1]) / split, name, split, image_size, stream, workers)
    if name not in CIFAR and not (root / name / split).is_dir():
        raise DataError(f"unknown data set {name!r}: expected one of {', '.join(CIFAR)}, "
                        f"imagefolder:PATH, or a folder {root / name / split}")
    npz = root / name / f"{split}.npz"
    if not npz.is_file() and (root / name / split).is_dir():
        return _load_imagefolder(root / name / split, name, split, image_size, stream, workers)
    if stream:
        raise DataError(f"{name}:{split} is not an ImageFolder tree; only those can be streamed from disk")
    if npz.is_file():
        return _load_npz(npz, name, split)
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
    created = [folder for folder in (root, *root.parents) if not folder.exists()]  # deepest first
    try:
        ds = cls(root=str(root), train=split == "train", download=download)
    except (RuntimeError, OSError) as err:  # torchvision: "Dataset not found or corrupted"; offline; unreadable
        if download and created:
            _remove_partial_download(root / cls.filename, created)
        what = f"cannot download {name} into {root}" if download else f"{name} not found under {root}"
        raise DataError(f"{what} ({err}); {_ways_on(name, cls.base_folder, download)}") from err
    images = torch.from_numpy(np.asarray(ds.data)).permute(0, 3, 1, 2).contiguous()
    return ImageSet(images, torch.as_tensor(ds.targets, dtype=torch.int64), list(ds.classes), name, split)


def _ways_on(name: str, torchvision_folder: str, download: bool) -> str:
    """Where a local copy of a CIFAR set may go, and how to point jointcodec at it: one line for an error."""
    fetch = "" if download else "pass --download to fetch it, or "
    return (f"{fetch}point --data-dir DIR (or {ENV_DATA_DIR}=DIR) at a copy laid out as DIR/{torchvision_folder}/ "
            f"(torchvision's, the unpacked {name} archive) or DIR/{name}/{{train,test}}.npz (arrays images "
            f"(N, 32, 32, 3) uint8 and labels)")


def _remove_partial_download(archive: Path, created: list[Path]) -> None:
    """After a failed download: drop the partial archive and the folders this call created, so that no empty
    cache folder is left behind (a folder that holds anything else stays)."""
    archive.unlink(missing_ok=True)
    for folder in created:
        try:
            folder.rmdir()
        except OSError:
            return


def _load_imagefolder(folder: Path, name: str, split: str, image_size: int | None, stream: bool | None,
                      workers: int | None) -> ImageSet:
    from torchvision.datasets import ImageFolder

    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder; an ImageFolder data set needs {folder}/<class>/<image>")
    try:
        ds = ImageFolder(str(folder))  # file discovery and class mapping; decoding is ours (in threads)
    except (FileNotFoundError, RuntimeError) as err:
        raise DataError(f"cannot read ImageFolder {folder}: {err}") from err
    labels = torch.tensor(ds.targets, dtype=torch.int64)
    paths = [path for path, _ in ds.samples]
    if stream is None:
        stream = bool(image_size) and len(ds) * image_size * image_size > IN_MEMORY_PIXEL_LIMIT
    if stream:
        if not image_size:
            raise DataError(f"streaming {folder} from disk needs an image size to resize and crop its images to")
        return ImageSet(LazyImages(paths, image_size, workers, ds.loader), labels, list(ds.classes), name, split)
    images = decode_images(paths, ds.loader, imagefolder_transform(image_size), workers)
    shapes = {tuple(im.shape) for im in images}
    if len(shapes) != 1:
        raise DataError(f"images in {folder} differ in size ({len(shapes)} sizes); pass an image size to crop them")
    return ImageSet(torch.stack(images), labels, list(ds.classes), name, split)


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
