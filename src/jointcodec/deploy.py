"""Split deployment: the edge part (encoder, quantizer, context model) and the server part (quantizer,
context model, classifier) as separate weight files, each carrying the model's fingerprint.

``jointcodec export-edge`` writes them; ``load_codec_model`` reads a full checkpoint or either part. A
part lacks the modules of the other side: calling them raises a clear ``ConfigError``.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from jointcodec.checkpoint import CONFIG_METADATA_KEY, load_model, read_config, resolve_weights
from jointcodec.entropy import FixedPointContext
from jointcodec.errors import CheckpointError, ConfigError
from jointcodec.models import JointModel, create_model, preset_from_dict
from jointcodec.utils import atomic_write, atomic_write_json

PARTS = {"edge": ("encoder", "quantizer", "context"), "server": ("quantizer", "context", "classifier")}
ALL_PARTS = ("encoder", "quantizer", "context", "classifier")


class MissingPart(nn.Module):
    """Stands in for a module that a deployment part does not ship."""

    def __init__(self, role: str, part: str) -> None:
        super().__init__()
        self.role, self.part = role, part

    def forward(self, *args, **kwargs):
        other = "server" if self.role == "edge" else "edge"
        raise ConfigError(f"this is the {self.role} part of a model: it has no {self.part} "
                          f"(use the {other} part or the full checkpoint)")


def fingerprint(model: JointModel) -> str:
    """The model's bitstream fingerprint (hex): a hash of the context model's weights and the centers."""
    return FixedPointContext(model.context, model.quantizer.centers).fingerprint.hex()


def export_split(checkpoint: str | Path, out_dir: str | Path) -> dict[str, Path]:
    """Write ``edge.safetensors`` and ``server.safetensors`` (and ``deployment.json``) into ``out_dir``."""
    model, config = load_model(checkpoint)
    out_dir = Path(out_dir)
    digest = fingerprint(model)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    written = {}
    for role, parts in PARTS.items():
        part_state = {k: v for k, v in state.items() if k.split(".", 1)[0] in parts}
        part_config = {**config, "role": role, "fingerprint": digest}
        path = out_dir / f"{role}.safetensors"
        metadata = {CONFIG_METADATA_KEY: json.dumps(part_config)}
        atomic_write(path, lambda tmp, s=part_state, m=metadata: save_file(s, tmp, metadata=m))
        written[role] = path
    atomic_write_json(out_dir / "deployment.json", {
        "fingerprint": digest, "preset": config["preset"]["name"], "levels": config["levels"],
        "parts": {role: {"file": path.name, "modules": list(PARTS[role])} for role, path in written.items()}})
    return written


def load_codec_model(path: str | Path) -> tuple[JointModel, dict]:
    """A full checkpoint, or the edge or server part written by ``export_split`` -> (model, config)."""
    weights = resolve_weights(path)
    config = read_config(weights)
    role = config.get("role", "full")
    if role == "full":
        return load_model(path)
    if role not in PARTS:
        raise CheckpointError(f"{weights}: unknown deployment role {role!r}")
    model = create_model(preset_from_dict(config["preset"]), config["levels"], config["num_classes"])
    try:
        state = load_file(str(weights))
        missing, unexpected = model.load_state_dict(state, strict=False)
    except (SafetensorError, RuntimeError) as err:
        raise CheckpointError(f"{weights} does not fit its preset {config['preset']['name']}: {err}") from err
    absent = [p for p in ALL_PARTS if p not in PARTS[role]]
    wrong = [k for k in missing if k.split(".", 1)[0] not in absent] + list(unexpected)
    if wrong:
        raise CheckpointError(f"{weights} is not a complete {role} part: {', '.join(wrong[:5])}")
    for part in absent:
        setattr(model, part, MissingPart(role, part))
    if config.get("fingerprint") and config["fingerprint"] != fingerprint(model):
        raise CheckpointError(f"{weights}: its weights do not match the fingerprint it carries (damaged file)")
    return model.eval(), config
