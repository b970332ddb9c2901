"""The parallel-decodable contexts are ordinary presets: built by the registry, trained, saved and coded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from jointcodec.api import Codec
from jointcodec.checkpoint import load_model
from jointcodec.data import load_split
from jointcodec.errors import ConfigError
from jointcodec.models import CONTEXTS, CheckerboardContextModel, create_context, create_model
from jointcodec.training import TrainConfig, train


def test_context_kind_comes_from_the_preset() -> None:
    assert isinstance(create_model("cifar-v1-checkerboard", 2, 10).context, CheckerboardContextModel)
    assert type(create_model("cifar-v1", 2, 10).context) is CONTEXTS["3d"]
    with pytest.raises(ConfigError, match="unknown context kind"):
        create_context(2, {"kind": "spiral"})


@pytest.mark.parametrize("preset", ["cifar-v1-channel", "cifar-v1-checkerboard"])
def test_train_save_load_and_code_a_parallel_context(preset: str, data_dir: Path, tmp_path: Path) -> None:
    config = TrainConfig(preset=preset, levels=2, epochs=1, batch_size=64, train_subset=192, val_size=64,
                         device="cpu", precision="32-true", data_dir=str(data_dir), out=str(tmp_path / "run"),
                         test_at_end=False, progress=False)
    train(config)
    model, saved = load_model(tmp_path / "run")
    assert saved["preset"]["context_args"]["kind"] == preset.rsplit("-", 1)[1]
    codec = Codec(model, saved)
    images = load_split("cifar10", "test", data_dir).images[:16]
    data = codec.compress(images)
    assert torch.equal(codec.decode_symbols(data), codec.symbols(images))
