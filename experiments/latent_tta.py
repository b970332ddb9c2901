"""Whether the server can gain accuracy for free by voting over flipped or shifted copies of the decoded latent.

    python experiments/latent_tta.py cifar10-v1deep-L2 --json docs/results/cifar10/latent-tta-probe.json

A classic test-time augmentation for pixel classifiers is to average the predictions for the image and its mirror.
The server here never sees the image, only the decoded latent, so the candidates are transforms of the latent: a
horizontal flip, shifts by one latent column (four image pixels, within the training translation), and their
combinations. The bits, and so the edge, stay the same. Measured on the model's validation split (carved from
train with the model's own seed), never on test: the figures decide whether a receiver-side vote is worth building.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from torch.nn import functional as F

from jointcodec.checkpoint import load_model
from jointcodec.data import load_split
from jointcodec.data.augment import normalize
from jointcodec.data.datasets import train_val_split
from jointcodec.training.hyperparameters import Recipe
from jointcodec.utils import atomic_write_json

BATCH = 500


def shift_columns(latent: torch.Tensor, columns: int) -> torch.Tensor:
    """The latent moved ``columns`` to the right (negative: left), the vacated column repeating its neighbour."""
    if columns > 0:
        return F.pad(latent, (columns, 0, 0, 0), mode="replicate")[..., :-columns]
    return F.pad(latent, (0, -columns, 0, 0), mode="replicate")[..., -columns:]


TRANSFORMS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "identity": lambda q: q,
    "flip": lambda q: q.flip(-1),
    "shift+1": lambda q: shift_columns(q, 1),
    "shift-1": lambda q: shift_columns(q, -1),
    "flip,shift+1": lambda q: shift_columns(q.flip(-1), 1),
    "flip,shift-1": lambda q: shift_columns(q.flip(-1), -1),
}
VOTES = [["identity"], ["flip"], ["shift+1"], ["identity", "flip"], ["identity", "shift+1", "shift-1"],
         ["identity", "flip,shift+1"], ["identity", "flip,shift-1"],
         ["identity", "flip", "flip,shift+1", "flip,shift-1"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a zoo name or a run directory trained with a validation split")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    model, config = load_model(args.checkpoint)
    model.eval()
    recipe = Recipe.from_record(config.get("train"))
    if recipe.val_size <= 0:
        parser.error(f"{args.checkpoint} trained on every training image: it has no clean validation split")
    _, val = train_val_split(load_split(config["dataset"], "train"), recipe.val_size, recipe.split_seed())
    log_probs: dict[str, list[torch.Tensor]] = {name: [] for name in TRANSFORMS}
    with torch.no_grad():
        for start in range(0, len(val), BATCH):
            latent = model.quantizer(model.encoder(normalize(val.images[start:start + BATCH]))).values
            for name, transform in TRANSFORMS.items():
                log_probs[name].append(model.classifier(transform(latent).contiguous()).float().log_softmax(1))
    labels = torch.as_tensor(val.labels)
    probs = {name: torch.cat(parts).exp() for name, parts in log_probs.items()}
    rows = []
    for vote in VOTES:
        predicted = torch.stack([probs[name] for name in vote]).mean(0).argmax(1)
        rows.append({"vote": vote, "val_top1": round((predicted == labels).float().mean().item() * 100, 2)})
        print(f"{' + '.join(vote):40s} {rows[-1]['val_top1']:.2f} %")
    if args.json:
        atomic_write_json(args.json, {"checkpoint": args.checkpoint, "dataset": config["dataset"],
                                      "val_images": len(val), "val_seed": recipe.split_seed(), "votes": rows})


if __name__ == "__main__":
    main()
