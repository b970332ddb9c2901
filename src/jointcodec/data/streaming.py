"""Image files decoded on demand: the ImageFolder transform, parallel decoding, and the lazy store.

A split too large to hold in memory (ImageNet's train split: 1.28 M images, about 190 GB as uint8 at
224 px) is kept as a :class:`LazyImages` store: the file paths, decoded when indexed. Indexing gives what
the in-memory path would hold, uint8 (B, 3, S, S) resized and centre-cropped by
:func:`imagefolder_transform`. A batch is decoded by a pool of threads (Pillow releases the GIL while it
decodes and resizes, so threads scale with cores); :func:`prefetched` decodes the next batch in the
background while the caller works on this one.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch

from jointcodec.errors import DataError

# PIL raises OSError for unreadable / truncated files (UnidentifiedImageError is one) and SyntaxError for
# some broken PNG chunks.
DECODE_ERRORS = (OSError, SyntaxError)


def default_workers() -> int:
    """Decode threads when none are given: one per CPU."""
    return os.cpu_count() or 1


def imagefolder_transform(image_size: int | None) -> Callable[[Any], torch.Tensor]:
    """Resize the shorter side, centre-crop to a square, keep uint8 (what the in-memory path stores)."""
    from torchvision.transforms import v2

    steps = [v2.PILToTensor()]
    if image_size:
        steps[:0] = [v2.Resize(image_size), v2.CenterCrop(image_size)]
    return v2.Compose(steps)


def default_loader() -> Callable[[str], Any]:
    """torchvision's ImageFolder loader (PIL, converted to RGB)."""
    from torchvision.datasets.folder import default_loader as loader

    return loader


def decode_image(path: str, loader: Callable[[str], Any], transform: Callable[[Any], torch.Tensor]) -> torch.Tensor:
    """One file -> uint8 (3, H, W); grayscale is spread to three channels, alpha dropped."""
    try:
        image = transform(loader(path))
    except DECODE_ERRORS as err:
        raise DataError(f"cannot decode {path}: {err}") from err
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    return image[:3]


def decode_images(paths: Sequence[str], loader: Callable[[str], Any], transform: Callable[[Any], torch.Tensor],
                  workers: int | None = None) -> list[torch.Tensor]:
    """Decode files in order, on ``workers`` threads (default: one per CPU)."""
    workers = min(workers or default_workers(), len(paths))
    if workers <= 1:
        return [decode_image(path, loader, transform) for path in paths]
    with ThreadPoolExecutor(workers, thread_name_prefix="jointcodec-decode") as pool:
        return list(pool.map(lambda path: decode_image(path, loader, transform), paths))


class LazyImages:
    """A split's images as files, decoded when indexed, standing in for an (N, 3, S, S) uint8 tensor.

    Supports ``len``, ``shape``, ``dtype``, ``store[i]`` (3, S, S), ``store[a:b]`` and ``store[indices]``
    (a LongTensor, list or bool mask; (B, 3, S, S)), and :meth:`subset`, which stays lazy. It never
    turns into one array (``numpy.asarray`` raises DataError): code that needs every image at once needs
    an in-memory data set.
    """

    dtype = torch.uint8
    ndim = 4

    def __init__(self, paths: Sequence[str], image_size: int, workers: int | None = None,
                 loader: Callable[[str], Any] | None = None) -> None:
        if not image_size or image_size <= 0:
            raise DataError("streaming images from disk needs an image size to resize and crop them to")
        self.paths = list(paths)
        self.image_size = int(image_size)
        self.workers = workers or default_workers()
        self.loader = loader or default_loader()
        self.transform = imagefolder_transform(self.image_size)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self), 3, self.image_size, self.image_size))

    def _select(self, index: Any) -> str | list[str]:
        """The path (an integer index) or paths (anything else) ``index`` picks, as tensor indexing would."""
        if isinstance(index, slice):
            return self.paths[index]
        if not isinstance(index, torch.Tensor):
            try:
                return self.paths[operator.index(index)]
            except TypeError:
                index = torch.as_tensor(index)
        if index.dtype == torch.bool:
            if index.shape != (len(self),):
                raise IndexError(f"a mask of shape {tuple(index.shape)} does not fit {len(self)} images")
            index = index.nonzero().flatten()
        if index.is_floating_point() or index.is_complex() or index.ndim > 1:
            raise IndexError(f"index images with an integer, a slice or a 1-D integer tensor, not {index.dtype} "
                             f"{tuple(index.shape)}")
        if index.ndim == 0:
            return self.paths[int(index)]
        return [self.paths[i] for i in index.tolist()]

    def __getitem__(self, index: Any) -> torch.Tensor:
        selected = self._select(index)
        if isinstance(selected, str):
            return decode_image(selected, self.loader, self.transform).contiguous()
        if not selected:
            return torch.empty((0, 3, self.image_size, self.image_size), dtype=torch.uint8)
        return torch.stack(decode_images(selected, self.loader, self.transform, self.workers))

    def subset(self, index: Any) -> LazyImages:
        """A lazy store over the files ``index`` (a slice, index tensor or mask) selects."""
        selected = self._select(index)
        if isinstance(selected, str):
            raise IndexError("a subset needs a slice or a 1-D index tensor, not one integer")
        return LazyImages(selected, self.image_size, self.workers, self.loader)

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise DataError(f"{len(self)} images streamed from disk are never decoded into one array; "
                        "index a batch at a time")

    def __repr__(self) -> str:
        return (f"LazyImages({len(self)} files, {self.image_size}x{self.image_size} uint8, "
                f"{self.workers} decode threads)")


def prefetched(images: torch.Tensor | LazyImages, batches: Iterable[Any]) -> Iterator[tuple[Any, torch.Tensor]]:
    """``(index, images[index])`` for each index in ``batches``, in order.

    A :class:`LazyImages` store decodes the next batch on a background thread while the caller works on this
    one; which images a batch holds does not depend on timing, only when they are decoded does. An
    in-memory tensor is simply indexed.
    """
    if not isinstance(images, LazyImages):
        for index in batches:
            yield index, images[index]
        return
    with ThreadPoolExecutor(1, thread_name_prefix="jointcodec-prefetch") as loader:
        pending: tuple[Any, Future] | None = None
        for index in batches:
            upcoming = (index, loader.submit(images.__getitem__, index))
            if pending is not None:
                yield pending[0], pending[1].result()
            pending = upcoming
        if pending is not None:
            yield pending[0], pending[1].result()
