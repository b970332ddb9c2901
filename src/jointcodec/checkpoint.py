"""Checkpoints: weights in safetensors with the model's config embedded, plus a readable config.json.

A run directory holds ``model.safetensors`` (weights; its metadata carries the config, so the file
alone rebuilds the model), ``config.json`` (the same config: the training recipe under ``train``, read back
by ``training.Recipe.from_record``, where it ran under ``run``, and the metric history), and
``trainer_state.pt`` (optimizer and progress, for ``--resume``). Every file is written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from jointcodec.errors import CheckpointError
from jointcodec.models import JointModel, create_model, preset_from_dict
from jointcodec.utils import atomic_write, atomic_write_json

FORMAT = "jointcodec-checkpoint"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
TRAINER_STATE = "trainer_state.pt"
CONFIG_METADATA_KEY = "jointcodec_config"


def model_config(model: JointModel, preset: dict, classes: list[str], dataset: str, **extra) -> dict:
    return {"format": FORMAT, "version": FORMAT_VERSION, "preset": preset, "levels": model.levels,
            "num_classes": len(classes), "classes": list(classes), "dataset": dataset,
            "centers": model.quantizer.centers.detach().tolist(), **extra}


def save_model(run_dir: str | Path, model: JointModel, config: dict) -> None:
    run_dir = Path(run_dir)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {CONFIG_METADATA_KEY: json.dumps(config)}
    atomic_write(run_dir / WEIGHTS, lambda tmp: save_file(state, tmp, metadata=metadata))
    atomic_write_json(run_dir / CONFIG, config)


def resolve_weights(path: str | Path) -> Path:
    """A run directory, a weights file, or the name of a shipped model -> the weights file."""
    from jointcodec import zoo

    if isinstance(path, str) and path in zoo.MODELS:
        return zoo.weights_path(path)
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS
    if not path.is_file():
        shipped = ", ".join(sorted(zoo.MODELS))
        raise CheckpointError(f"no checkpoint at {path} (give a run directory, a .safetensors file, "
                              f"or a shipped model: {shipped})")
    return path


def read_config(weights: Path) -> dict:
    try:
        with safe_open(str(weights), framework="pt") as f:
            raw = (f.metadata() or {}).get(CONFIG_METADATA_KEY)
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{weights} is not a readable safetensors file: {err}") from err
    if raw is None:
        raise CheckpointError(f"{weights} carries no jointcodec config; was it written by jointcodec?")
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{weights} carries a damaged jointcodec config: {err}") from err
    if not isinstance(config, dict):
        raise CheckpointError(f"{weights} carries a damaged jointcodec config (not a JSON object)")
    if config.get("format") != FORMAT or config.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"{weights}: unsupported checkpoint format {config.get('format')} "
                              f"v{config.get('version')} (this jointcodec reads {FORMAT} v{FORMAT_VERSION})")
    return config


def load_tagged_model(path: str | Path, weights_name: str, fmt: str, build, metadata_key: str = CONFIG_METADATA_KEY):
    """A model saved as safetensors with its config (``"format": fmt``) in the metadata: ``build(config)`` makes
    the module, the weights load into it; returns (model in eval mode, config). CheckpointError on any mismatch."""
    weights = Path(path)
    if weights.is_dir():
        weights = weights / weights_name
    try:
        with safe_open(str(weights), framework="pt") as f:
            config = json.loads((f.metadata() or {}).get(metadata_key) or "null")
        state = load_file(str(weights))
    except (SafetensorError, OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"cannot read a {fmt} model from {weights}: {err}") from err
    if not isinstance(config, dict) or config.get("format") != fmt:
        raise CheckpointError(f"{weights} is not a {fmt} checkpoint")
    model = build(config)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{weights} does not fit its preset: {err}") from err
    return model.eval(), config


def load_model(path: str | Path, map_location: str = "cpu") -> tuple[JointModel, dict]:
    """Rebuild a JointModel from a checkpoint; returns the model (eval mode) and its config."""
    weights = resolve_weights(path)
    config = read_config(weights)
    model = create_model(preset_from_dict(config["preset"]), config["levels"], config["num_classes"])
    try:
        state = load_file(str(weights), device=map_location)
        model.load_state_dict(state)
    except (SafetensorError, RuntimeError) as err:
        raise CheckpointError(f"{weights} does not fit its preset {config['preset']['name']}: {err}") from err
    return model.eval(), config


def warm_start(model: JointModel, path: str | Path) -> tuple[list[str], list[str]]:
    """Copy into ``model`` every tensor of checkpoint ``path`` whose name and shape match (a warm start,
    e.g. an L = 3 model from an L = 2 one: encoder and classifier carry over, the quantizer centers and
    the context model's L-way output stay freshly initialised). Fresh centers, not ones spread over the old
    range: an L = 2 encoder learns a latent far inside its two centers (a sign), and an added center at 0
    would swallow every element (measured: training collapses to one symbol). Returns (loaded, kept fresh) names."""
    weights = resolve_weights(path)
    read_config(weights)  # a clear error for a file jointcodec did not write
    try:
        source = load_file(str(weights), device="cpu")
    except SafetensorError as err:
        raise CheckpointError(f"{weights} is not a readable safetensors file: {err}") from err
    own = model.state_dict()
    matching = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
    misfits = [k for k in own if k.startswith("encoder.") and k not in matching]
    if misfits:  # a warm start keeps the encoder; another architecture is a different model
        raise CheckpointError(f"--init-from {path}: its encoder weights do not fit this preset ({misfits[0]}, ...)")
    model.load_state_dict(matching, strict=False)
    return sorted(matching), sorted(k for k in own if k not in matching)


def save_trainer_state(run_dir: str | Path, state: dict, name: str = TRAINER_STATE) -> None:
    atomic_write(Path(run_dir) / name, lambda tmp: torch.save(state, tmp))


def load_trainer_state(run_dir: str | Path, name: str = TRAINER_STATE) -> dict:
    path = Path(run_dir) / name
    if not path.is_file():
        raise CheckpointError(f"cannot resume: {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a damaged pickle
        raise CheckpointError(f"cannot resume from {path}: {err}") from err
