"""Decoder weights files and their link to a codec model.

A decoder ships as ``decoder.safetensors`` beside a codec checkpoint (a run directory, or a shipped
model's folder), never inside ``model.safetensors``: the bitstream model and its files stay unchanged.
Its metadata carries the decoder's kind and arguments and the **fingerprint of the model it belongs to**
(the bitstream fingerprint, ``jointcodec.entropy.model_fingerprint``; the server part carries it too). A decoder
whose fingerprint differs from the loaded model's is refused: it was trained on another model's latents
and would rebuild nonsense without any error.

    model, config = jointcodec.load_model("default")
    decoder, record = load_decoder_for(model, "default")     # default/decoder.safetensors
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from jointcodec.checkpoint import read_metadata, resolve_weights
from jointcodec.entropy.fixedpoint import model_fingerprint
from jointcodec.errors import CheckpointError
from jointcodec.reconstruction.decoders import create_decoder
from jointcodec.utils import atomic_write
from jointcodec.zoo import half_matrices

DECODER_WEIGHTS = "decoder.safetensors"
DECODER_FORMAT = "jointcodec-decoder"
DECODER_VERSION = 1
DECODER_METADATA_KEY = "jointcodec_decoder"


class DecoderMismatchError(CheckpointError):
    """A decoder was trained for another model (its fingerprint differs from the loaded model's)."""


def decoder_record(kind: str, args: dict, fingerprint: str, preset: str, **extra) -> dict:
    """The metadata saved with a decoder: enough to rebuild it and to check which model it belongs to."""
    return {"format": DECODER_FORMAT, "version": DECODER_VERSION, "kind": kind, "args": args,
            "fingerprint": fingerprint, "preset": preset, **extra}


def save_decoder(path: str | Path, decoder: nn.Module, record: dict, half: bool = False) -> None:
    """Write the decoder's weights (fp32; with ``half``, its weight matrices in fp16, cast back on load) with
    ``record`` in the metadata, atomically."""
    state = {k: v.detach().float().cpu().contiguous() for k, v in decoder.state_dict().items()}
    if half:
        state = half_matrices(state)
    metadata = {DECODER_METADATA_KEY: json.dumps(record)}
    atomic_write(path, lambda tmp: save_file(state, tmp, metadata=metadata))


def read_decoder_record(path: str | Path) -> dict:
    path = Path(path)
    record = read_metadata(path, DECODER_METADATA_KEY, "decoder record")
    if record is None:
        raise CheckpointError(f"{path} is not a jointcodec decoder (no decoder metadata); "
                              "decoders are written by `jointcodec train-decoder`")
    if record.get("format") != DECODER_FORMAT:
        raise CheckpointError(f"{path} is not a jointcodec decoder")
    if record.get("version") != DECODER_VERSION:
        raise CheckpointError(f"{path}: unsupported decoder version {record.get('version')} "
                              f"(this jointcodec reads version {DECODER_VERSION})")
    return record


def load_decoder(path: str | Path, fingerprint: str | None = None) -> tuple[nn.Module, dict]:
    """Rebuild a decoder (eval mode); with ``fingerprint``, refuse one that belongs to another model."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no decoder at {path} (train one with `jointcodec train-decoder`)")
    record = read_decoder_record(path)
    if fingerprint is not None and record.get("fingerprint") != fingerprint:
        raise DecoderMismatchError(
            f"{path} was trained for model {record.get('fingerprint')}, but the loaded model is {fingerprint}; "
            "use the decoder trained for this model (or train one with `jointcodec train-decoder`)")
    decoder = create_decoder(record["kind"], record["args"])
    try:
        decoder.load_state_dict(load_file(str(path)))
    except (SafetensorError, RuntimeError) as err:
        raise CheckpointError(f"{path} does not fit its own {record['kind']} decoder config: {err}") from err
    return decoder.eval(), record


def default_decoder_path(checkpoint: str | Path) -> Path:
    """Where a checkpoint's decoder lives: ``decoder.safetensors`` in the folder of its weights."""
    return resolve_weights(checkpoint).parent / DECODER_WEIGHTS


def load_decoder_for(model_or_fingerprint, checkpoint: str | Path,
                     decoder: str | Path | None = None) -> tuple[nn.Module, dict]:
    """The decoder for a loaded model: ``decoder`` (a file or a folder holding decoder.safetensors), else
    the one beside ``checkpoint``. ``model_or_fingerprint``: a JointModel, a Codec, or a hex fingerprint."""
    if decoder is None:
        path = default_decoder_path(checkpoint)
        if not path.is_file():
            raise CheckpointError(f"{checkpoint} has no decoder ({path} does not exist); pass --decoder FILE "
                                  "or train one with `jointcodec train-decoder`")
    else:
        path = Path(decoder)
        if path.is_dir():
            path = path / DECODER_WEIGHTS
    return load_decoder(path, _fingerprint_of(model_or_fingerprint))


def _fingerprint_of(obj) -> str:
    if isinstance(obj, str):
        return obj
    fingerprint = getattr(obj, "fingerprint", None)  # a Codec
    if isinstance(fingerprint, bytes):
        return fingerprint.hex()
    return model_fingerprint(obj)
