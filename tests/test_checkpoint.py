"""Checkpoints: a save/load round trip is exact; anything that is not a jointcodec checkpoint is a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from jointcodec import CheckpointError
from jointcodec.checkpoint import (
    CONFIG,
    CONFIG_METADATA_KEY,
    WEIGHTS,
    MissingPart,
    load_model,
    load_trainer_state,
    model_config,
    read_metadata,
    save_model,
    warm_start,
)
from jointcodec.entropy.fixedpoint import FixedPointContext, model_fingerprint
from jointcodec.models import create_model, get_preset
from jointcodec.training.parts import fit_latent_to_centers

CLASSES = [f"class{i}" for i in range(10)]


def trained_looking_model(levels: int = 3):
    """A model whose BatchNorm statistics and centers are no longer the defaults."""
    torch.manual_seed(0)
    model = create_model("cifar-v1", levels=levels, num_classes=len(CLASSES))
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, 3, 32, 32) * 2 + 0.5)
        model.quantizer.centers.copy_(torch.tensor([-1.7, 0.2, 1.3]))
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    return model.eval()


def save(model, run_dir: Path) -> dict:
    config = model_config(model, get_preset("cifar-v1").to_dict(), CLASSES, "cifar10", epoch=1)
    save_model(run_dir, model, config)
    return config


@pytest.mark.parametrize("target", ["run_dir", "weights_file", "weights_str"])
def test_round_trip_gives_identical_outputs(tmp_path: Path, target: str) -> None:
    model = trained_looking_model()
    config = save(model, tmp_path / "run")
    assert (tmp_path / "run" / WEIGHTS).is_file() and (tmp_path / "run" / CONFIG).is_file()
    path = {"run_dir": tmp_path / "run", "weights_file": tmp_path / "run" / WEIGHTS,
            "weights_str": str(tmp_path / "run" / WEIGHTS)}[target]

    loaded, loaded_config = load_model(path)

    assert not loaded.training
    assert loaded_config == json.loads(json.dumps(config))
    assert json.loads((tmp_path / "run" / CONFIG).read_text()) == loaded_config
    assert loaded.levels == 3
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        a, b = model(images), loaded(images)
    assert torch.equal(a.logits, b.logits)
    assert torch.equal(a.bits, b.bits)
    assert torch.equal(a.symbols, b.symbols)
    assert torch.equal(loaded.quantizer.centers, model.quantizer.centers)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"no checkpoint at .*nowhere"):
        load_model(tmp_path / "nowhere")


def test_run_directory_without_weights(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=rf"no checkpoint at .*{WEIGHTS}"):
        load_model(tmp_path)


@pytest.mark.parametrize("content", [b"", b"abc", b"this is not a safetensors file\n" * 20, "torch"],
                         ids=["empty", "tiny", "text", "torch-pickle"])
def test_not_a_safetensors_file(tmp_path: Path, content) -> None:
    path = tmp_path / "model.safetensors"
    if content == "torch":
        torch.save({"weight": torch.zeros(3)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a readable safetensors file") as info:
        load_model(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("metadata", [None, {"format": "pt"}], ids=["no-metadata", "other-metadata"])
def test_safetensors_without_jointcodec_config(tmp_path: Path, metadata) -> None:
    path = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(2, 2)}, str(path), metadata=metadata)
    with pytest.raises(CheckpointError, match="carries no jointcodec config") as info:
        load_model(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]"], ids=["bad-json", "not-an-object"])
def test_damaged_jointcodec_config(tmp_path: Path, raw: str) -> None:
    path = tmp_path / "damaged.safetensors"
    save_file({"weight": torch.zeros(2)}, str(path), metadata={CONFIG_METADATA_KEY: raw})
    with pytest.raises(CheckpointError, match="damaged jointcodec config"):
        load_model(path)


def test_other_format_version(tmp_path: Path) -> None:
    model = trained_looking_model()
    config = save(model, tmp_path)
    path = tmp_path / "future.safetensors"
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={CONFIG_METADATA_KEY: json.dumps({**config, "version": 99})})
    with pytest.raises(CheckpointError, match="unsupported checkpoint format"):
        load_model(path)


def test_one_metadata_reader(tmp_path: Path) -> None:
    path = tmp_path / "tagged.safetensors"
    save_file({"weight": torch.zeros(2)}, str(path), metadata={"other": "1", "mine": json.dumps({"format": "x"})})
    assert read_metadata(path, "mine") == {"format": "x"}
    assert read_metadata(path) is None  # no jointcodec config: the caller says what it expected


def test_one_loader_reads_full_checkpoints_and_split_parts(tmp_path: Path) -> None:
    from jointcodec.edge.split import export_split

    model = trained_looking_model()
    save(model, tmp_path / "run")
    parts = export_split(tmp_path / "run", tmp_path / "parts")
    digest = model_fingerprint(model)
    assert digest == FixedPointContext(model.context, model.quantizer.centers).fingerprint.hex()
    for role, absent in (("edge", "classifier"), ("server", "encoder")):
        part, config = load_model(parts[role])
        assert config["role"] == role and config["fingerprint"] == digest == model_fingerprint(part)
        assert isinstance(getattr(part, absent), MissingPart)
    with torch.no_grad():  # the edge part encodes exactly as the full model
        images = torch.randn(2, 3, 32, 32)
        edge, _ = load_model(parts["edge"])
        assert torch.equal(edge.encoder(images), model.encoder(images))


def test_weights_that_do_not_fit_the_preset(tmp_path: Path) -> None:
    model = trained_looking_model()
    config = model_config(model, get_preset("cifar-v2").to_dict(), CLASSES, "cifar10")
    save_model(tmp_path, model, config)  # cifar-v1 weights labelled cifar-v2
    with pytest.raises(CheckpointError, match="does not fit its preset cifar-v2"):
        load_model(tmp_path)


def test_resume_without_trainer_state(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="cannot resume"):
        load_trainer_state(tmp_path)


def test_warm_start_carries_what_fits_and_keeps_new_centers_fresh(tmp_path: Path) -> None:
    source = trained_looking_model(levels=3)
    save(source, tmp_path)
    target = create_model("cifar-v1", levels=6, num_classes=len(CLASSES))
    fresh_context_last = target.context.last.weight.clone()
    loaded, fresh = warm_start(target, tmp_path)
    assert "quantizer.centers" in fresh and "context.last.weight" in fresh
    assert any(k.startswith("encoder.") for k in loaded) and any(k.startswith("classifier.") for k in loaded)
    own = target.state_dict()
    for name, value in source.state_dict().items():
        if name in loaded:
            assert torch.equal(own[name], value), name
    assert torch.equal(target.context.last.weight, fresh_context_last)  # an L-way output cannot carry over
    assert torch.equal(target.quantizer.centers, torch.linspace(-2, 2, 6))  # the quantizer's own init


def test_warm_start_from_another_architecture_is_an_error(tmp_path: Path) -> None:
    save(trained_looking_model(), tmp_path)
    with pytest.raises(CheckpointError, match="encoder weights"):
        warm_start(create_model("imagenet-v3", levels=3, num_classes=len(CLASSES)), tmp_path)


@pytest.mark.parametrize("levels", [3, 6])
def test_warm_start_scales_the_latent_onto_the_new_centers(levels: int) -> None:
    torch.manual_seed(0)
    model = create_model("cifar-v1", levels=levels, num_classes=len(CLASSES)).eval()
    last_norm = [m for m in model.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)][-1]
    with torch.no_grad():  # an L = 2 encoder's latent: far inside the centers
        last_norm.weight.mul_(0.05)
        last_norm.bias.zero_()
    images = torch.randn(64, 3, 32, 32)
    factor = fit_latent_to_centers(model, images)
    with torch.no_grad():
        symbols = model.quantizer.symbols(model.encoder(images))
    outer = ((symbols == 0) | (symbols == levels - 1)).float().mean().item()
    assert factor > 1 and abs(outer - 2 / levels) < 0.02  # the outer centers get their share, no more


def test_shipped_default_is_small_and_its_encoder_far_cheaper_than_its_classifier() -> None:
    from jointcodec import zoo
    from jointcodec.evaluation.complexity import count_macs, count_params

    model, config = load_model("default")
    assert config["preset"]["name"] == "cifar-v1-deep" and config["levels"] == 2
    encoder_macs = count_macs(model.encoder, torch.zeros(1, 3, 32, 32))
    classifier_macs = count_macs(model.classifier, torch.zeros(1, 16, 8, 8))
    assert 0 < 3 * encoder_macs < classifier_macs  # 14.4 M against 53.6 M
    assert 0 < 20 * count_params(model.encoder) < count_params(model.classifier)
    shipped = sum(f.stat().st_size for f in zoo.weights_path("default").parent.iterdir())
    assert shipped <= 10 * 2**20, f"shipped default is {shipped} bytes"
