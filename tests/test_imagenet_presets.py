"""The ImageNet presets (AE-V3, AE-V4) on an ImageFolder tree: load, one training step, latent 32 x H/8 x W/8."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.nn import functional as F

from jointcodec import DataError
from jointcodec.data import LazyImages, datasets, load_split, normalize
from jointcodec.models import create_model, get_preset
from jointcodec.training.parts import parameter_groups

CLASSES = ("cat", "dog")
PER_CLASS = 8
SIZE = 160


def write_tree(root: Path, size: tuple[int, int] | list[tuple[int, int]], per_class: int = PER_CLASS) -> Path:
    """root/{train,test}/<class>/<i>.png of random RGB images (a list of sizes: one per image, cycled)."""
    rng = np.random.default_rng(0)
    sizes = size if isinstance(size, list) else [size]
    for split in ("train", "test"):
        for name in CLASSES:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                width, height = sizes[i % len(sizes)]
                pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tree(tmp_path_factory.mktemp("imagefolder"), (SIZE, SIZE))


@pytest.fixture
def stream(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Parametrized (indirectly) by whether ImageFolder splits are streamed from disk, as ImageNet's are: a pixel
    limit of 0 streams every split."""
    if request.param:
        monkeypatch.setattr(datasets, "IN_MEMORY_PIXEL_LIMIT", 0)
    return request.param


def test_load_imagefolder_split(tree: Path) -> None:
    for split in ("train", "test"):
        data = load_split(f"imagefolder:{tree}", split, image_size=SIZE)
        assert data.images.shape == (2 * PER_CLASS, 3, SIZE, SIZE) and data.images.dtype == torch.uint8
        assert data.labels.tolist() == [0] * PER_CLASS + [1] * PER_CLASS
        assert data.classes == list(CLASSES) and data.split == split
    # The pixels are the PNG's own (no resampling at the native size).
    first = np.array(Image.open(tree / "train" / "cat" / "000.png"))
    assert torch.equal(load_split(f"imagefolder:{tree}", "train", image_size=SIZE).images[0],
                       torch.from_numpy(first).permute(2, 0, 1))


def test_mixed_sizes_are_cropped_to_the_image_size(tmp_path: Path) -> None:
    root = write_tree(tmp_path, [(200, 170), (160, 240), (181, 181)], per_class=3)
    with pytest.raises(DataError, match="differ in size"):
        load_split(f"imagefolder:{root}", "train")
    data = load_split(f"imagefolder:{root}", "train", image_size=SIZE)
    assert data.images.shape == (6, 3, SIZE, SIZE)


def test_missing_imagefolder_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a folder"):
        load_split(f"imagefolder:{tmp_path / 'nothing'}", "train", image_size=SIZE)


@pytest.mark.parametrize(("preset", "stream"), [("imagenet-v3", False), ("imagenet-v4", False), ("imagenet-v3", True)],
                         indirect=["stream"], ids=["imagenet-v3", "imagenet-v4", "imagenet-v3-streamed"])
def test_one_training_step(tree: Path, preset: str, stream: bool) -> None:
    data = load_split(f"imagefolder:{tree}", "train", image_size=SIZE)
    assert data.streamed == stream
    torch.manual_seed(0)
    model = create_model(preset, levels=3, num_classes=len(data.classes)).train()
    assert get_preset(preset).encoder == "imagenet"
    optimizer = torch.optim.SGD(parameter_groups(model, 5e-4), lr=0.05, momentum=0.9, nesterov=True)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}

    batch = torch.arange(0, len(data), 2)  # 8 images, both classes
    images, labels = normalize(data.images[batch]), data.labels[batch]
    output = model(images, rate_images=4)
    loss = F.cross_entropy(output.logits, labels) + output.bpp.mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

    assert output.symbols.shape == (8, 32, SIZE // 8, SIZE // 8) == (8, 32, 20, 20)
    assert model.encoder(images[:1]).shape == (1, 32, 20, 20)
    assert output.logits.shape == (8, 2) and output.bits.shape == (4,)
    assert torch.isfinite(loss)
    # 32x20x20 symbols with L=3 over 160x160 pixels: at most a few times log2(3) * 12800 / 25600 bpp.
    assert 0 < output.bpp.mean().item() < 3.0
    for name in ("encoder.stem.0.0.weight", "quantizer.centers", "context.first.weight", "classifier.fc.weight"):
        assert not torch.equal(dict(model.named_parameters())[name], before[name]), f"{name} did not move"


@pytest.mark.parametrize("stream", [False, True], indirect=True, ids=["in-memory", "streamed"])
def test_training_on_mixed_size_imagefolder_uses_the_preset_size(tmp_path: Path, stream: bool,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Real ImageFolder data sets mix image sizes: training crops them to the preset's size, as evaluation does
    (streamed: the training loop, validation split and evaluation all read a lazy store)."""
    from jointcodec.cli.main import main
    from jointcodec.training import TrainConfig, train

    decoded = []
    read = LazyImages.__getitem__
    monkeypatch.setattr(LazyImages, "__getitem__", lambda self, index: decoded.append(index) or read(self, index))
    root = write_tree(tmp_path / "data", [(40, 48), (64, 36), (33, 33)], per_class=6)
    run = tmp_path / "run"
    result = train(TrainConfig(preset="cifar-v1", dataset=f"imagefolder:{root}", levels=2, epochs=1, batch_size=4,
                               val_size=4, device="cpu", precision="32-true", out=str(run), progress=False))
    size = get_preset("cifar-v1").image_size
    assert [row["epoch"] for row in result["history"]] == [1]
    assert result["test"]["image_size"] == [size, size] and result["test"]["n_images"] == 12
    assert main(["evaluate", "--checkpoint", str(run), "--json", str(tmp_path / "eval.json"), "--no-progress"]) == 0
    evaluated = json.loads((tmp_path / "eval.json").read_text())
    assert evaluated["image_size"] == [size, size] and evaluated["n_images"] == 12
    assert bool(decoded) == stream
