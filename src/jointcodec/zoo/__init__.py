"""Pretrained models shipped inside the package (``--checkpoint default``)."""

from __future__ import annotations

from pathlib import Path

from jointcodec.errors import CheckpointError

WEIGHTS_DIR = Path(__file__).parent / "weights"

# name -> folder under weights/ holding model.safetensors (+ config.json)
MODELS: dict[str, str] = {
    "default": "cifar10-v1deep-L2",
    "cifar10-v1deep-L2": "cifar10-v1deep-L2",
}


def weights_path(name: str) -> Path:
    path = WEIGHTS_DIR / MODELS[name] / "model.safetensors"
    if not path.is_file():
        raise CheckpointError(f"shipped model {name!r} is missing from this install ({path})")
    return path
