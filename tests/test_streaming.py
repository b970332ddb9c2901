"""Large ImageFolder splits streamed from disk (LazyImages): the same uint8 images and labels as in memory."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from jointcodec import DataError
from jointcodec.data import ImageSet, LazyImages, datasets, load_split, prefetched, train_val_split

CLASSES = ("ant", "bee", "cow")
SIZE = 32
COUNT = 12
GRAY, RGBA = 4, 7  # which files are grayscale and RGBA


def write_mixed_tree(root: Path) -> Path:
    """root/train/<class>/: PNG and JPEG files of differing sizes (smaller and larger than SIZE), one grayscale
    and one RGBA."""
    rng = np.random.default_rng(0)
    sizes = [(40, 30), (33, 57), (64, 64), (24, 24), (90, 31), (25, 26)]
    for i in range(COUNT):
        folder = root / "train" / CLASSES[i % len(CLASSES)]
        folder.mkdir(parents=True, exist_ok=True)
        width, height = sizes[i % len(sizes)]
        pixels = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
        if i == GRAY:
            Image.fromarray(pixels[..., 0], "L").save(folder / f"{i:02d}.png")
        elif i == RGBA:
            Image.fromarray(pixels, "RGBA").save(folder / f"{i:02d}.png")
        elif i % 2:
            Image.fromarray(pixels[..., :3]).save(folder / f"{i:02d}.jpg", quality=90)
        else:
            Image.fromarray(pixels[..., :3]).save(folder / f"{i:02d}.png")
    return root


def load(root: Path, **kwargs) -> ImageSet:
    return load_split(f"imagefolder:{root}", "train", image_size=SIZE, **kwargs)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mixed_tree(tmp_path_factory.mktemp("mixed"))


@pytest.fixture(scope="module")
def memory(tree: Path) -> ImageSet:
    return load(tree, stream=False)


@pytest.fixture(scope="module")
def lazy(tree: Path) -> ImageSet:
    return load(tree, stream=True, workers=3)


def test_streamed_split_matches_in_memory(memory: ImageSet, lazy: ImageSet) -> None:
    assert not memory.streamed and isinstance(memory.images, torch.Tensor)
    assert lazy.streamed and isinstance(lazy.images, LazyImages) and lazy.images.workers == 3
    assert len(lazy) == len(lazy.images) == COUNT
    assert lazy.images.shape == memory.images.shape == (COUNT, 3, SIZE, SIZE)
    assert lazy.image_size == memory.image_size == (SIZE, SIZE)
    assert torch.equal(lazy.labels, memory.labels) and lazy.classes == memory.classes == list(CLASSES)
    assert (lazy.name, lazy.split) == (memory.name, memory.split)
    for index in (slice(None), slice(2, 7), slice(None, None, 3), slice(-4, None), torch.tensor([11, 0, 5, 5, -1]),
                  [3, 1], torch.arange(COUNT) % 2 == 0, np.array([2, 9])):
        batch = lazy.images[index]
        assert batch.dtype == torch.uint8 and torch.equal(batch, memory.images[index]), index
    for index in (3, -1, torch.tensor(6)):
        assert torch.equal(lazy.images[index], memory.images[index])
    assert lazy.images[5:5].shape == (0, 3, SIZE, SIZE)
    # Grayscale is spread over three channels, RGBA loses its alpha, like the in-memory path.
    gray = lazy.images.paths.index(next(p for p in lazy.images.paths if Path(p).name == f"{GRAY:02d}.png"))
    image = lazy.images[gray]
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])


def test_subsets_and_validation_splits_stay_lazy(memory: ImageSet, lazy: ImageSet) -> None:
    order = torch.randperm(COUNT, generator=torch.Generator().manual_seed(1))[:7]
    sub = lazy.subset(order)
    assert sub.streamed and sub.images.paths == [lazy.images.paths[i] for i in order.tolist()]
    assert sub.images.workers == 3
    twice = sub.subset(slice(1, 5))
    assert twice.streamed and len(twice) == 4
    assert torch.equal(twice.images[:], memory.subset(order).subset(slice(1, 5)).images)
    assert torch.equal(twice.labels, memory.labels[order][1:5])

    lazy_train, lazy_val = train_val_split(lazy, 4, seed=3)
    mem_train, mem_val = train_val_split(memory, 4, seed=3)
    assert lazy_train.streamed and lazy_val.streamed and lazy_val.split == "val"
    for streamed, held in ((lazy_train, mem_train), (lazy_val, mem_val)):
        assert torch.equal(streamed.images[:], held.images) and torch.equal(streamed.labels, held.labels)


def test_the_pixel_limit_chooses_streaming(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not load(tree).streamed
    monkeypatch.setattr(datasets, "IN_MEMORY_PIXEL_LIMIT", COUNT * SIZE * SIZE)
    assert not load(tree).streamed
    monkeypatch.setattr(datasets, "IN_MEMORY_PIXEL_LIMIT", COUNT * SIZE * SIZE - 1)
    streamed = load(tree)
    assert streamed.streamed and streamed.images.workers == os.cpu_count()
    assert not load(tree, stream=False).streamed


def test_streaming_needs_an_image_size_and_an_imagefolder(tree: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="needs an image size"):
        load_split(f"imagefolder:{tree}", "train", stream=True)
    (tmp_path / "cifar10").mkdir()
    np.savez(tmp_path / "cifar10" / "train.npz", images=np.zeros((2, 8, 8, 3), np.uint8), labels=np.array([0, 1]))
    with pytest.raises(DataError, match="only those can be streamed"):
        load_split("cifar10", "train", tmp_path, stream=True)
    assert not load_split("cifar10", "train", tmp_path).streamed


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_corrupt_file_is_a_data_error_naming_it(tmp_path: Path, damage: str) -> None:
    root = write_mixed_tree(tmp_path)
    bad = root / "train" / "cow" / "02.png"
    data = bad.read_bytes()
    bad.write_bytes(b"not an image at all" if damage == "garbage" else data[:len(data) // 2])
    streamed = load(root, stream=True, workers=2)  # lazily: nothing is decoded yet
    position = streamed.images.paths.index(str(bad))
    with pytest.raises(DataError, match=re.escape(str(bad))):
        streamed.images[:]
    with pytest.raises(DataError, match=re.escape(str(bad))):
        streamed.images[position]
    assert streamed.images[[p for p in range(COUNT) if p != position]].shape == (COUNT - 1, 3, SIZE, SIZE)
    with pytest.raises(DataError, match=re.escape(str(bad))):
        load(root, stream=False)


def test_whole_set_paths_refuse_a_streamed_set_too_large_for_memory(memory: ImageSet, lazy: ImageSet,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from jointcodec.baselines.protocol import _hwc

    with pytest.raises(DataError, match="never decoded into one array"):
        np.asarray(lazy.images)
    # A streamed set that fits is decoded; one that does not is refused, never loaded.
    assert torch.equal(lazy.all_images("the test"), memory.images)
    assert _hwc(lazy).shape == (COUNT, SIZE, SIZE, 3)
    monkeypatch.setattr(datasets, "IN_MEMORY_PIXEL_LIMIT", COUNT * SIZE * SIZE - 1)
    with pytest.raises(DataError, match="the test needs all images in memory"):
        lazy.all_images("the test")
    with pytest.raises(DataError, match="classic-codec baselines"):
        _hwc(lazy)
    assert lazy.subset(slice(0, 6)).all_images("a subset").shape == (6, 3, SIZE, SIZE)


def test_prefetched_batches_are_the_indexed_ones_in_order(memory: ImageSet, lazy: ImageSet) -> None:
    batches = [torch.tensor([3, 1]), slice(0, 5), torch.tensor([11]), torch.tensor([0, 0, 7])]
    for images in (lazy.images, memory.images):
        got = list(prefetched(images, iter(batches)))
        assert len(got) == len(batches)
        for (index, batch), expected in zip(got, batches, strict=True):
            assert index is expected and torch.equal(batch, memory.images[expected])
    assert list(prefetched(lazy.images, [])) == []


def test_evaluation_of_a_streamed_set_matches_in_memory(memory: ImageSet, lazy: ImageSet) -> None:
    from jointcodec.evaluation import evaluate_model
    from jointcodec.evaluation.coded import evaluate_coded
    from jointcodec.models import create_model

    torch.manual_seed(0)
    model = create_model("cifar-v1", levels=2, num_classes=len(CLASSES)).eval()
    assert evaluate_model(model, lazy, batch_size=5) == evaluate_model(model, memory, batch_size=5)
    coded = evaluate_coded(model, lazy, batch_size=5)
    assert coded["symbols_exact"] and coded["labels_match_in_memory"] == 1.0
