"""Reconstruction decoder: shapes and range, decoder files and their fingerprint check, frozen and joint
training (the frozen one must leave the bitstream and the labels exactly as they were), the CLI."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from jointcodec import zoo
from jointcodec.api import Codec
from jointcodec.checkpoint import load_model
from jointcodec.data import load_split
from jointcodec.errors import CheckpointError, ConfigError
from jointcodec.reconstruction import (
    DECODER_WEIGHTS,
    DecoderMismatchError,
    UpsamplingDecoder,
    create_decoder,
    decoder_record,
    default_decoder_args,
    load_decoder,
    load_decoder_for,
    ms_ssim,
    psnr,
    save_decoder,
)
from jointcodec.training.decoder import DECODER_STATE, DecoderTrainConfig, train_decoder

CLI = [sys.executable, "-m", "jointcodec.cli.main"]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def run_copy(tmp_path: Path) -> Path:
    """A run directory holding a copy of the shipped model (and no decoder)."""
    run = tmp_path / "run"
    run.mkdir()
    source = zoo.weights_path("default").parent
    for name in ("model.safetensors", "config.json"):
        shutil.copy(source / name, run / name)
    return run


@pytest.mark.parametrize("channels, latent, image", [(16, 8, 32), (32, 28, 224)])
def test_decoder_output_shape_and_range(channels: int, latent: int, image: int) -> None:
    args = default_decoder_args(channels, image, latent)
    decoder = create_decoder("upsampling", args).eval()
    assert decoder.upsample == image // latent
    values = torch.randn(2, channels, latent, latent) * 50  # far outside the centers: still a valid image
    with torch.no_grad():
        out = decoder(values)
    assert out.shape == (2, 3, image, image)
    assert out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1


def test_decoder_refuses_a_wrong_latent_and_bad_sizes() -> None:
    decoder = UpsamplingDecoder(16)
    with pytest.raises(ConfigError, match="16"):
        decoder(torch.zeros(1, 8, 8, 8))
    with pytest.raises(ConfigError, match="power of 2"):
        default_decoder_args(16, 48, 8)
    with pytest.raises(ConfigError, match="unknown decoder"):
        create_decoder("nope", {})


def test_psnr_and_ms_ssim_on_known_images() -> None:
    a = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    b = a.clone()
    b[:, :, 0, 0] = a[:, :, 0, 0] ^ 1  # one pixel off by one in each channel: MSE = 1/1024
    assert torch.allclose(psnr(a, b), torch.full((3,), 10 * torch.log10(torch.tensor(255.0**2 * 1024)).item(),
                                                 dtype=torch.float64), atol=1e-3)
    assert torch.isinf(psnr(a, a)).all()
    assert torch.allclose(ms_ssim(a, a), torch.ones(3))
    noisy = (a.int() + torch.randint(-40, 41, a.shape)).clamp(0, 255).to(torch.uint8)
    worse = (a.int() + torch.randint(-120, 121, a.shape)).clamp(0, 255).to(torch.uint8)
    assert (ms_ssim(a, noisy) > ms_ssim(a, worse)).all() and (ms_ssim(a, worse) >= 0).all()


def test_decoder_file_round_trip_and_fingerprint_check(tmp_path: Path) -> None:
    args = default_decoder_args(16, 32, 8)
    decoder = create_decoder("upsampling", args)
    path = tmp_path / DECODER_WEIGHTS
    save_decoder(path, decoder, decoder_record("upsampling", args, "00112233aabbccdd", "cifar-v1", epoch=3))
    loaded, record = load_decoder(path, "00112233aabbccdd")
    assert record["epoch"] == 3 and record["preset"] == "cifar-v1"
    values = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(values), decoder.eval()(values))
    with pytest.raises(DecoderMismatchError, match="00112233aabbccdd.*ffffffffffffffff"):
        load_decoder(path, "ffffffffffffffff")
    # The shipped model's fingerprint differs too: refused with the same error type.
    model, _ = load_model("default")
    with pytest.raises(DecoderMismatchError, match="trained for model"):
        load_decoder_for(model, "default", path)
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(CheckpointError):
        load_decoder(tmp_path / "junk.safetensors")
    with pytest.raises(CheckpointError, match="no decoder"):
        load_decoder(tmp_path / "missing.safetensors")


def test_decoder_saved_half_is_half_the_bytes_and_loads_in_fp32(tmp_path: Path) -> None:
    # The zoo ships decoders with fp16 weight matrices: half the bytes, vectors exact, back to fp32 on load.
    args = default_decoder_args(16, 32, 8)
    decoder = create_decoder("upsampling", args).eval()
    record = decoder_record("upsampling", args, "00112233aabbccdd", "cifar-v1")
    full, half = tmp_path / "full.safetensors", tmp_path / "half.safetensors"
    save_decoder(full, decoder, record)
    save_decoder(half, decoder, record, half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded, _ = load_decoder(half, "00112233aabbccdd")
    for (name, want), got in zip(decoder.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert got.dtype == want.dtype, name
        if want.dim() >= 2:
            assert torch.equal(got, want.half().float()), name
        else:
            assert torch.equal(got, want), name
    values = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        assert torch.allclose(loaded(values), decoder(values), atol=1e-2)


@pytest.mark.slow
def test_frozen_training_leaves_bitstream_and_labels_unchanged(data_dir: Path, run_copy: Path, cli_env) -> None:
    test = load_split("cifar10", "test", data_dir).subset(slice(0, 64))
    weights = run_copy / "model.safetensors"
    before_sha = sha(weights)
    model, config = load_model(run_copy)
    state_before = {k: v.clone() for k, v in model.state_dict().items()}
    codec = Codec(model, config)
    blob_before = codec.compress(test.images)
    labels_before = codec.classify(blob_before)

    result = train_decoder(DecoderTrainConfig(checkpoint=str(run_copy), out=str(run_copy), epochs=1, batch_size=64,
                                              train_subset=640, test_limit=64, data_dir=str(data_dir),
                                              progress=False))
    assert (run_copy / DECODER_WEIGHTS).is_file() and (run_copy / DECODER_STATE).is_file()
    assert result["test"]["psnr"] > 10 and 0 < result["test"]["ms_ssim"] <= 1
    # The codec model is untouched: same file, same weights and statistics, same bytes, same labels.
    assert sha(weights) == before_sha
    model_after, config_after = load_model(run_copy)
    assert all(torch.equal(v, state_before[k]) for k, v in model_after.state_dict().items())
    codec_after = Codec(model_after, config_after)
    decoder, record = load_decoder_for(codec_after, run_copy)  # found beside the checkpoint
    assert record["fingerprint"] == codec_after.fingerprint.hex()
    blob_after = codec_after.compress(test.images)
    assert blob_after == blob_before
    assert torch.equal(codec_after.classify(blob_after), labels_before)

    # evaluate --reconstruct: same accuracy keys and values as without, plus psnr / ms_ssim.
    out = run_copy / "eval.json"
    proc = subprocess.run(CLI + ["evaluate", "--checkpoint", str(run_copy), "--limit", "64", "--reconstruct",
                                 "--json", str(out), "--no-progress"], env=cli_env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    with_decoder = json.loads(out.read_text())
    plain = run_copy / "plain.json"
    proc = subprocess.run(CLI + ["evaluate", "--checkpoint", str(run_copy), "--limit", "64", "--json", str(plain),
                                 "--no-progress"], env=cli_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    without = json.loads(plain.read_text())
    assert with_decoder["top1"] == without["top1"] and with_decoder["bpp_estimated"] == without["bpp_estimated"]
    assert with_decoder["psnr"] == pytest.approx(result["test"]["psnr"], abs=1e-6)
    assert 0 < with_decoder["ms_ssim"] <= 1 and "ms_ssim_settings" in with_decoder


@pytest.mark.slow
def test_frozen_training_resumes(data_dir: Path, tmp_path: Path) -> None:
    settings = dict(checkpoint="default", out=str(tmp_path / "dec"), batch_size=64, train_subset=320,
                    test_at_end=False, data_dir=str(data_dir), progress=False)
    first = train_decoder(DecoderTrainConfig(epochs=1, **settings))
    resumed = train_decoder(DecoderTrainConfig(epochs=2, resume=True, **settings))
    assert [r["epoch"] for r in resumed["history"]] == [1, 2]
    assert resumed["history"][0] == first["history"][0]
    state = torch.load(tmp_path / "dec" / DECODER_STATE, weights_only=True)
    assert state["epoch"] == 2 and state["scheduler"]["last_epoch"] == 2 * 5
    with pytest.raises(CheckpointError, match="resume"):
        train_decoder(DecoderTrainConfig(epochs=2, resume=True, **{**settings, "out": str(tmp_path / "none")}))


@pytest.mark.slow
def test_joint_training_writes_a_new_model_with_its_decoder(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "joint"
    train_decoder(DecoderTrainConfig(checkpoint="default", out=str(out), joint=True, mse_weight=2.0, epochs=1,
                                     batch_size=128, train_subset=384, test_at_end=False, data_dir=str(data_dir),
                                     progress=False))
    model, config = load_model(out)
    assert config["joint_decoder"]["mse_weight"] == 2.0
    assert config["train"]["init_from"] == "default"  # the warm start is part of the recipe it records
    assert "train_aux_loss" in config["history"][-1]
    decoder, record = load_decoder_for(model, out)  # the decoder belongs to the jointly trained model
    assert record["training"]["kind"] == "joint"
    latent = model.quantizer.dequantize(torch.zeros(1, 16, 8, 8, dtype=torch.long))
    with torch.no_grad():
        assert decoder(latent).shape == (1, 3, 32, 32)
    shipped, _ = load_model("default")
    with pytest.raises(DecoderMismatchError):
        load_decoder_for(shipped, "default", out / DECODER_WEIGHTS)


def test_reconstruct_cli(data_dir: Path, run_copy: Path, tmp_path: Path, cli_env) -> None:
    # A decoder for the copied model (untrained weights are enough to check the plumbing).
    model, config = load_model(run_copy)
    codec = Codec(model, config)
    args = default_decoder_args(16, 32, 8)
    save_decoder(run_copy / DECODER_WEIGHTS, create_decoder("upsampling", args),
                 decoder_record("upsampling", args, codec.fingerprint.hex(), "cifar-v1"))
    jcc = tmp_path / "three.jcc"
    proc = subprocess.run(CLI + ["encode", "--checkpoint", str(run_copy), "cifar10:test[:3]", "-o", str(jcc)],
                          env=cli_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    one = tmp_path / "one.jcc"
    proc = subprocess.run(CLI + ["encode", "--checkpoint", str(run_copy), "cifar10:test[:1]", "-o", str(one)],
                          env=cli_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr

    folder = tmp_path / "images"
    proc = subprocess.run(CLI + ["reconstruct", "--checkpoint", str(run_copy), str(jcc), str(one), "-o",
                                 str(folder)], env=cli_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    written = sorted(p.name for p in folder.iterdir())
    assert written == [f"{i:06d}.png" for i in range(4)]
    with Image.open(folder / "000003.png") as first_again, Image.open(folder / "000000.png") as first:
        assert first.size == (32, 32) and first.mode == "RGB"
        assert (np.asarray(first) == np.asarray(first_again)).all()  # image 0 of both files: same latent

    single = tmp_path / "single.png"
    proc = subprocess.run(CLI + ["reconstruct", "--checkpoint", str(run_copy), str(one), "-o", str(single)],
                          env=cli_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and single.is_file(), proc.stderr

    proc = subprocess.run(CLI + ["reconstruct", "--checkpoint", str(run_copy), str(jcc), "-o", str(single)],
                          env=cli_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "give a folder" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1

    # A decoder of another model is refused with one line.
    other = tmp_path / "other.safetensors"
    save_decoder(other, create_decoder("upsampling", args), decoder_record("upsampling", args, "0" * 16, "cifar-v1"))
    proc = subprocess.run(CLI + ["reconstruct", "--checkpoint", str(run_copy), "--decoder", str(other), str(one),
                                 "-o", str(single)], env=cli_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "trained for model 0000000000000000" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_the_shipped_model_ships_its_decoder() -> None:
    """`reconstruct --checkpoint default` works after install: the decoder beside the shipped weights is
    the one trained for that model (same fingerprint) and rebuilds 32x32 uint8-range images."""
    model, _ = load_model("default")
    decoder, record = load_decoder_for(model, "default")
    assert record["fingerprint"] == Codec(model).fingerprint.hex()
    symbols = torch.randint(0, model.levels, (2, 16, 8, 8))
    with torch.no_grad():
        images = decoder.eval()(model.quantizer.dequantize(symbols))
    assert images.shape == (2, 3, 32, 32)
