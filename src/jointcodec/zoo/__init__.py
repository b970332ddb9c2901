"""Pretrained models shipped inside the package (``--checkpoint default``): the zoo that ``jointcodec zoo`` lists.

Each shipped model is a folder under ``weights/`` holding ``model.safetensors`` (+ ``config.json``, maybe a
``decoder.safetensors``) and ``card.json``, its card: the names it answers to, what it is, the command that
trained it, and its figures on the test split through real ``.jcc`` files. The figures are copied, under the
keys ``jointcodec evaluate --coded --json`` writes, from the results file the card names as ``source``; a
folder with a card ships, one without does not.

To keep the package small, a shipped model may store its receiver's (the classifier's) weight matrices in fp16
(``half_receiver``): they are cast back to fp32 on load. The encoder, the quantizer and the context model stay
fp32, so a model's ``.jcc`` files are the same bytes either way; its card's top-1 is measured on the fp16 file.
A shipped image decoder may store its weight matrices in fp16 the same way (``half_matrices``).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from jointcodec.errors import CheckpointError

if TYPE_CHECKING:  # the zoo's listing and the torch-free edge client do not import torch
    import torch

WEIGHTS_DIR = Path(__file__).parent / "weights"
CARD = "card.json"
RECEIVER = "classifier."  # the state-dict prefix of the server-side receiver: the only part fp16 may touch


@dataclass(frozen=True)
class ModelCard:
    """One shipped model: plain data, read from its ``card.json``."""

    name: str
    folder: str  # under WEIGHTS_DIR
    aliases: tuple[str, ...]  # other names ``--checkpoint`` accepts (``default``)
    dataset: str
    preset: str
    levels: int
    measured: dict  # keys of `jointcodec evaluate --coded --json`: top1_coded, bpp_payload, encoder_params, ...
    source: str  # the results file (repository path) the measured figures were copied from
    measured_by: str  # the command that wrote it
    measured_on: str
    train_command: str
    trained_on: str

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)

    def to_dict(self) -> dict:
        return {**asdict(self), "aliases": list(self.aliases)}


@cache
def cards() -> tuple[ModelCard, ...]:
    """Every shipped model's card, by name."""
    found = []
    for path in sorted(WEIGHTS_DIR.glob(f"*/{CARD}")):
        record = json.loads(path.read_text())
        found.append(ModelCard(**{**record, "folder": path.parent.name, "aliases": tuple(record.get("aliases", ()))}))
    return tuple(sorted(found, key=lambda card: card.name))


def _folders() -> dict[str, str]:
    folders: dict[str, str] = {}
    for card in cards():
        for name in card.names:
            if name in folders:  # a packaging mistake: two cards claim one name
                raise CheckpointError(f"shipped model name {name!r} is claimed by {folders[name]} and {card.folder}")
            folders[name] = card.folder
    return folders


# name or alias -> folder under weights/ (``--checkpoint NAME`` resolves through it)
MODELS: dict[str, str] = _folders()


def card(name: str) -> ModelCard:
    """The card of the shipped model ``name`` (or alias); a CheckpointError listing the choices if none is."""
    if name not in MODELS:
        raise CheckpointError(f"no shipped model {name!r} (shipped: {', '.join(sorted(MODELS))})")
    return next(c for c in cards() if c.folder == MODELS[name])


def weights_path(name: str) -> Path:
    path = WEIGHTS_DIR / card(name).folder / "model.safetensors"
    if not path.is_file():
        raise CheckpointError(f"shipped model {name!r} is missing from this install ({path})")
    return path


def last_train_step(train_command: str) -> list[str]:
    """The words of the step of a card's command that made the weights: the last of its ``&&``-joined steps."""
    return shlex.split(train_command.split("&&")[-1])


def half_matrices(state: dict[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    """``state`` with the weight matrices under ``prefix`` in fp16 (half their bytes). Vectors (batch-norm scales,
    shifts and statistics, biases) stay fp32: they are tiny, and fp16 would round the smallest variances."""
    return {key: value.half() if key.startswith(prefix) and value.is_floating_point() and value.dim() >= 2
            else value for key, value in state.items()}


def half_receiver(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with the receiver's weight matrices in fp16. Everything that decides the bits (encoder,
    quantizer, context) is left exactly as is, so the files a model writes do not change."""
    return half_matrices(state, RECEIVER)
