"""Checkpoints: weights in safetensors with the model's config embedded, plus a readable config.json.

A run directory holds ``model.safetensors`` (weights; its metadata carries the config, so the file
alone rebuilds the model), ``config.json`` (the same config: the training recipe under ``train``, read back
by ``training.Recipe.from_record``, where it ran under ``run``, and the metric history), and
``trainer_state.pt`` (weights, optimizer, progress and random state, for an exact ``--resume``). Every file is
written atomically.

``load_model`` is the one loader of codec models: a full checkpoint, a shipped model, or the edge or server part
of a split deployment (``jointcodec.edge.split``; the config's ``role`` says which). ``read_metadata`` is the one
reader of the JSON records jointcodec stores in safetensors metadata (configs here, decoder records in
``jointcodec.reconstruction``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from jointcodec.entropy.fixedpoint import model_fingerprint
from jointcodec.errors import CheckpointError, ConfigError
from jointcodec.models import JointModel, create_model, preset_from_dict
from jointcodec.utils import atomic_write, atomic_write_json

FORMAT = "jointcodec-checkpoint"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
TRAINER_STATE = "trainer_state.pt"
CONFIG_METADATA_KEY = "jointcodec_config"
# A split deployment's parts: the modules each side needs (the quantizer and context model on both, for coding).
PARTS = {"edge": ("encoder", "quantizer", "context"), "server": ("quantizer", "context", "classifier")}
ALL_PARTS = ("encoder", "quantizer", "context", "classifier")


def model_config(model: JointModel, preset: dict, classes: list[str], dataset: str, **extra) -> dict:
    return {"format": FORMAT, "version": FORMAT_VERSION, "preset": preset, "levels": model.levels,
            "num_classes": len(classes), "classes": list(classes), "dataset": dataset,
            "centers": model.quantizer.centers.detach().tolist(), **extra}


def save_model(run_dir: str | Path, model: JointModel, config: dict) -> None:
    save_weights(run_dir, {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, config)


def save_weights(run_dir: str | Path, state: dict[str, torch.Tensor], config: dict) -> None:
    """A model's weights file (its config in the metadata) and ``config.json`` beside it, each written atomically."""
    run_dir = Path(run_dir)
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


def read_metadata(path: str | Path, key: str = CONFIG_METADATA_KEY, what: str = "jointcodec config") -> dict | None:
    """The one reader of the JSON record a jointcodec safetensors file carries under ``key`` in its metadata (a
    checkpoint's config, a decoder's record, a tagged model's config): the object, or None if the file has no
    such entry. A file that cannot be read or a record that is not a JSON object is a CheckpointError."""
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(key)
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file: {err}") from err
    if raw is None:
        return None
    try:
        record = json.loads(raw)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path} carries a damaged {what}: {err}") from err
    if not isinstance(record, dict):
        raise CheckpointError(f"{path} carries a damaged {what} (not a JSON object)")
    return record


def read_config(weights: Path) -> dict:
    """The config a checkpoint (full, or an edge or server part) carries, checked against this format."""
    config = read_metadata(weights)
    if config is None:
        raise CheckpointError(f"{weights} carries no jointcodec config; was it written by jointcodec?")
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
    config = read_metadata(weights, metadata_key, f"{fmt} config")
    if config is None or config.get("format") != fmt:
        raise CheckpointError(f"{weights} is not a {fmt} checkpoint")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"cannot read a {fmt} model from {weights}: {err}") from err
    model = build(config)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{weights} does not fit its preset: {err}") from err
    return model.eval(), config


class MissingPart(nn.Module):
    """Stands in for a module that a deployment part (``jointcodec export --split``) does not ship."""

    def __init__(self, role: str, part: str) -> None:
        super().__init__()
        self.role, self.part = role, part

    def forward(self, *args, **kwargs):
        other = "server" if self.role == "edge" else "edge"
        raise ConfigError(f"this is the {self.role} part of a model: it has no {self.part} "
                          f"(use the {other} part or the full checkpoint)")


def load_model(path: str | Path, map_location: str = "cpu") -> tuple[JointModel, dict]:
    """Rebuild a JointModel (eval mode) and its config from a full checkpoint, a shipped model name, or the edge
    or server part of one (``jointcodec export --split``). A part's absent modules are ``MissingPart``s: calling
    one raises a clear ConfigError."""
    weights = resolve_weights(path)
    config = read_config(weights)
    role = config.get("role", "full")
    if role != "full" and role not in PARTS:
        raise CheckpointError(f"{weights}: unknown deployment role {role!r}")
    model = create_model(preset_from_dict(config["preset"]), config["levels"], config["num_classes"])
    try:
        state = load_file(str(weights), device=map_location)
        missing, unexpected = model.load_state_dict(state, strict=role == "full")
    except (SafetensorError, RuntimeError) as err:
        raise CheckpointError(f"{weights} does not fit its preset {config['preset']['name']}: {err}") from err
    if role == "full":
        return model.eval(), config
    absent = [p for p in ALL_PARTS if p not in PARTS[role]]
    wrong = [k for k in missing if k.split(".", 1)[0] not in absent] + list(unexpected)
    if wrong:
        raise CheckpointError(f"{weights} is not a complete {role} part: {', '.join(wrong[:5])}")
    for part in absent:
        setattr(model, part, MissingPart(role, part))
    if config.get("fingerprint") and config["fingerprint"] != model_fingerprint(model):
        raise CheckpointError(f"{weights}: its weights do not match the fingerprint it carries (damaged file)")
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
