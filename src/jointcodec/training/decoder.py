"""Training a reconstruction decoder p(x | z_hat) for a codec model (``jointcodec train-decoder``).

Two ways, both writing ``decoder.safetensors`` (with the model's fingerprint) into the output folder:

* **frozen** (the default): the codec model is not touched, so its bitstream and its labels cannot
  change. The quantized latents of the training images are computed once (model in eval mode, no
  gradients), then the decoder alone is trained on them with Adam on the MSE (optionally plus
  ``ms_ssim_weight * (1 - MS-SSIM)``), cosine learning-rate decay. Per epoch: validation PSNR, atomic
  checkpoints (``decoder.safetensors``, ``decoder_state.pt``), ``decoder_metrics.csv``; ``--resume``
  continues from the last epoch. At the end: test PSNR / MS-SSIM in ``decoder_eval_test.json``.
* **joint** (``--joint --mse-weight W``): the main recipe (``jointcodec.training.recipe.train``) trains
  the codec model and the decoder together, with ``W * MSE`` added to its loss; the model starts from the
  checkpoint's weights (a warm start) and keeps its recipe settings. The result is a *new* codec model
  (``model.safetensors`` in the output folder, a new fingerprint) with its decoder beside it.

The training images are the ones the model was trained on: the same seeded validation split is carved
out (``val_size`` and ``seed`` of the model's own training record).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from jointcodec.checkpoint import load_trainer_state, save_trainer_state
from jointcodec.data import LazyImages, load_split, normalize
from jointcodec.errors import CheckpointError, ConfigError
from jointcodec.models import JointModel
from jointcodec.reconstruction import (
    DECODER_WEIGHTS,
    create_decoder,
    decoder_record,
    default_decoder_args,
    load_decoder,
    save_decoder,
)
from jointcodec.training.history import History
from jointcodec.training.hyperparameters import DecoderTrainConfig, Recipe
from jointcodec.training.recipe import JointTask, training_split
from jointcodec.utils import atomic_write_json

DECODER_STATE = "decoder_state.pt"
DECODER_METRICS = "decoder_metrics.csv"
DECODER_KIND = "upsampling"
EVAL_BATCH = 500


def new_decoder(model: JointModel, config: dict) -> tuple[torch.nn.Module, dict]:
    """A fresh decoder sized for the model's latent; returns (decoder, its args)."""
    preset = config["preset"]
    image_size = preset["image_size"]
    with torch.no_grad():
        was_training = model.encoder.training
        latent = model.encoder.eval()(torch.zeros(1, 3, image_size, image_size))
        model.encoder.train(was_training)
    args = default_decoder_args(latent.shape[1], image_size, latent.shape[-1])
    return create_decoder(DECODER_KIND, args), args


@torch.no_grad()
def latent_symbols(model: JointModel, images: torch.Tensor, batch_size: int = EVAL_BATCH,
                   progress: bool = False, desc: str = "latents") -> torch.Tensor:
    """uint8 images -> quantized symbols (N, C, h, w), the model in eval mode (its BatchNorm statistics are
    used, never updated). Stored as uint8 (L <= 256): 45,000 CIFAR latents take 46 MB."""
    model.eval()
    out = []
    for start in tqdm(range(0, len(images), batch_size), desc=desc, disable=not progress, unit="batch"):
        out.append(model.quantizer.symbols(model.encoder(normalize(images[start:start + batch_size]))))
    symbols = torch.cat(out)
    return symbols.to(torch.uint8) if model.levels <= 256 else symbols


def _loss(decoder: torch.nn.Module, values: torch.Tensor, target: torch.Tensor, ms_ssim_weight: float):
    out = decoder(values)
    loss = F.mse_loss(out, target)
    if ms_ssim_weight:
        from jointcodec.reconstruction import ms_ssim

        loss = loss + ms_ssim_weight * (1 - ms_ssim(target, out, differentiable=True).mean())
    return loss


@torch.no_grad()
def _val_psnr(decoder: torch.nn.Module, model: JointModel, symbols: torch.Tensor,
              images: torch.Tensor | LazyImages) -> float:
    from jointcodec.reconstruction import psnr, reconstruct, to_uint8

    out = to_uint8(reconstruct(decoder, model.quantizer.dequantize(symbols.long()), EVAL_BATCH))
    # Batch by batch: a streamed data set is never one tensor.
    return torch.cat([psnr(images[i:i + EVAL_BATCH], out[i:i + EVAL_BATCH])
                      for i in range(0, len(out), EVAL_BATCH)]).mean().item()


def train_decoder(config: DecoderTrainConfig) -> dict:
    """Train a decoder (frozen or joint, see the module docstring); returns the final record."""
    config.validate()
    return _train_joint(config) if config.joint else _train_frozen(config)


def _train_frozen(config: DecoderTrainConfig) -> dict:
    from jointcodec.checkpoint import load_model as load_codec_model
    from jointcodec.entropy import model_fingerprint as fingerprint

    out = Path(config.out)
    model, model_config = load_codec_model(config.checkpoint)
    if model_config.get("role") == "server":
        raise ConfigError("the frozen decoder is trained on encoder outputs: give a full checkpoint or the "
                          "edge part, not the server part")
    model.eval()
    for p in model.parameters():  # frozen: nothing may reach the codec model
        p.requires_grad_(False)
    digest = fingerprint(model)
    torch.manual_seed(config.seed)
    decoder, args = new_decoder(model, model_config)
    lr = config.lr or 2e-3
    optimizer = torch.optim.Adam(decoder.parameters(), lr=lr)

    recipe = replace(Recipe.from_record(model_config.get("train")).for_addon(config.train_subset),
                     dataset=model_config["dataset"])
    train_set, val_set = training_split(recipe, config.data_dir, config.download, model_config["preset"]["image_size"])
    batch_size = config.batch_size or 128
    steps_per_epoch = math.ceil(len(train_set) / batch_size)
    total = config.epochs * steps_per_epoch
    # Cosine decay to 2 % of the peak: Adam with a decayed rate ends lower than at a constant rate.
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(step, total) / total)))
    history = History(out / DECODER_METRICS)
    start_epoch, elapsed = 0, 0.0
    if config.resume:
        state = load_trainer_state(out, DECODER_STATE)
        if state["fingerprint"] != digest:
            raise CheckpointError(f"--resume: {out} holds a decoder for model {state['fingerprint']}, "
                                  f"not for {config.checkpoint} ({digest})")
        decoder.load_state_dict(load_decoder(out / DECODER_WEIGHTS, digest)[0].state_dict())
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, history.rows = state["epoch"], state["history"]
        elapsed = history.rows[-1]["elapsed_s"] if history.rows else 0.0

    print(f"training a frozen decoder ({sum(p.numel() for p in decoder.parameters()):,} parameters) for model "
          f"{digest} ({model_config['preset']['name']}) on {len(train_set)} images for {config.epochs} epochs; "
          f"output {out}", flush=True)
    started = time.time() - elapsed
    # The latents are computed once: the encoder is frozen, so they never change.
    train_symbols = latent_symbols(model, train_set.images, progress=config.progress, desc="train latents")
    val_symbols = latent_symbols(model, val_set.images) if val_set is not None else None
    targets = train_set.images
    record_base = {"training": {**asdict(config), "kind": "frozen", "lr": lr, "train_images": len(train_set)}}
    generator = torch.Generator().manual_seed(config.seed)
    for _ in range(start_epoch):  # the same permutations as an uninterrupted run
        torch.randperm(len(train_set), generator=generator)
    for epoch in range(start_epoch, config.epochs):
        decoder.train()
        order = torch.randperm(len(train_set), generator=generator)
        total_loss = 0.0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{config.epochs}", disable=not config.progress,
                   leave=False, unit="step")
        for step in bar:
            idx = order[step * batch_size:(step + 1) * batch_size]
            values = model.quantizer.dequantize(train_symbols[idx].long())
            loss = _loss(decoder, values, targets[idx].float() / 255.0, config.ms_ssim_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += loss.item()
            bar.set_postfix(loss=f"{total_loss / (step + 1):.5f}")
        row = {"epoch": epoch + 1, "train_loss": total_loss / steps_per_epoch, "lr": scheduler.get_last_lr()[0]}
        if val_set is not None:
            row["val_psnr"] = _val_psnr(decoder, model, val_symbols, val_set.images)
        row["elapsed_s"] = time.time() - started
        history.append(row)
        record = decoder_record(DECODER_KIND, args, digest, model_config["preset"]["name"], epoch=epoch + 1,
                                history=history.rows, **record_base)
        save_decoder(out / DECODER_WEIGHTS, decoder, record)
        state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "epoch": epoch + 1,
                 "history": history.rows, "fingerprint": digest}
        save_trainer_state(out, state, DECODER_STATE)
        val = f" | val PSNR {row['val_psnr']:.2f} dB" if "val_psnr" in row else ""
        print(f"epoch {epoch + 1:3d} | mse loss {row['train_loss']:.5f}{val} | {row['elapsed_s'] / 60:.1f} min",
              flush=True)

    result = {"history": history.rows, "out": str(out), "fingerprint": digest}
    if config.test_at_end:
        result["test"] = _test(model, model_config, decoder, config, out, digest, args, record_base, history)
    return result


def _test(model, model_config, decoder, config, out: Path, digest: str, args: dict, record_base: dict,
          history: History) -> dict:
    """Test PSNR / MS-SSIM; written to ``decoder_eval_test.json`` and into the decoder's metadata."""
    from jointcodec.reconstruction import evaluate_reconstruction

    test = load_split(model_config["dataset"], "test", config.data_dir, config.download,
                      model_config["preset"]["image_size"])
    if config.test_limit:
        test = test.subset(slice(0, config.test_limit))
    metrics = evaluate_reconstruction(model, decoder, test)
    metrics.update(n_images=len(test), dataset=test.name, split="test", fingerprint=digest)
    atomic_write_json(out / "decoder_eval_test.json", metrics)
    record = decoder_record(DECODER_KIND, args, digest, model_config["preset"]["name"], epoch=config.epochs,
                            history=history.rows, test=metrics, **record_base)
    save_decoder(out / DECODER_WEIGHTS, decoder, record)
    print(f"test ({len(test)} images): PSNR {metrics['psnr']:.2f} dB, MS-SSIM {metrics['ms_ssim']:.4f}", flush=True)
    return metrics


def _train_joint(config: DecoderTrainConfig) -> dict:
    """Codec model and decoder together: the main loop with :class:`JointDecoderTask`."""
    from jointcodec.checkpoint import load_model
    from jointcodec.entropy import model_fingerprint as fingerprint
    from jointcodec.training.recipe import train

    source, source_config = load_model(config.checkpoint)
    if not source_config.get("train"):
        raise CheckpointError(f"{config.checkpoint} carries no training record; --joint reuses its recipe settings")
    out = Path(config.out)
    # The model's recipe carries over, warm-started from the model itself; where it ran does not (the shipped
    # default was trained on a GPU): the run settings are this command's.
    recipe = Recipe.from_record(source_config["train"])
    if config.train_subset:  # with a validation split that the subset can afford
        recipe = recipe.for_addon(config.train_subset)
    # Full-size images throughout: the model's low-resolution epochs do not carry over.
    recipe = replace(recipe, epochs=config.epochs, init_from=str(config.checkpoint), lr=config.lr or recipe.lr,
                     batch_size=config.batch_size or recipe.batch_size, low_res_epochs=0)
    run = config.run_settings(str(out))
    torch.manual_seed(config.seed)
    decoder, args = new_decoder(source, source_config)
    if config.resume:
        decoder, _ = load_decoder(out / DECODER_WEIGHTS)  # the fingerprint changes every epoch of joint training
    task = JointDecoderTask(run, decoder, args, source_config["preset"]["name"], config)
    result = train(recipe, run, task)
    if config.test_at_end:
        from jointcodec.reconstruction import evaluate_reconstruction

        model, model_config = load_model(out)
        test = load_split(model_config["dataset"], "test", config.data_dir, config.download,
                          model_config["preset"]["image_size"])
        if config.test_limit:
            test = test.subset(slice(0, config.test_limit))
        trained, _ = load_decoder(out / DECODER_WEIGHTS, fingerprint(model))
        metrics = evaluate_reconstruction(model, trained, test)
        atomic_write_json(out / "decoder_eval_test.json", {**metrics, "n_images": len(test)})
        result["decoder_test"] = metrics
        print(f"decoder test ({len(test)} images): PSNR {metrics['psnr']:.2f} dB, MS-SSIM {metrics['ms_ssim']:.4f}",
              flush=True)
    return result


class JointDecoderTask(JointTask):
    """The joint codec (``jointcodec train``) with a decoder trained along: ``mse_weight * MSE`` of its
    reconstruction joins the loss, and the decoder is saved beside every checkpoint of the model."""

    def __init__(self, run, decoder: torch.nn.Module, args: dict, preset_name: str,
                 config: DecoderTrainConfig) -> None:
        super().__init__(run)
        self.decoder, self.args, self.preset_name, self.config = decoder, args, preset_name, config

    def extra_module(self) -> torch.nn.Module:
        return self.decoder

    def extra_loss(self, model, extra, images: torch.Tensor, output) -> tuple[torch.Tensor, dict[str, float]]:
        from jointcodec.data.augment import MEAN, STD

        target = images.float() * STD.to(images.device) + MEAN.to(images.device)  # back to [0, 1]
        loss = self.config.mse_weight * F.mse_loss(extra(output.values), target)
        return loss, {"aux_loss": loss.item()}

    def sections(self) -> dict:
        return {"joint_decoder": {"mse_weight": self.config.mse_weight}}

    def save(self, out: Path, model, recipe, preset, classes: list[str], epoch: int, history: list[dict]) -> None:
        from jointcodec.entropy import model_fingerprint as fingerprint

        super().save(out, model, recipe, preset, classes, epoch, history)
        record = decoder_record(DECODER_KIND, self.args, fingerprint(model), self.preset_name, epoch=epoch,
                                training={**asdict(self.config), "kind": "joint"})
        save_decoder(Path(out) / DECODER_WEIGHTS, self.decoder, record)
