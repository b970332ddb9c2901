"""Whether a model's receiver can be stored in fp16 without changing anything it produces.

    python experiments/fp16_receiver_check.py default --json docs/results/cifar10/default-fp16-check.json

Writes the model with its receiver's weight matrices in fp16 (``zoo.half_receiver``, as the zoo stores them) to a
temporary file, then compares it with the fp32 model on every test image: the bitstream fingerprint, every latent
symbol (so every ``.jcc`` byte), every label, and the largest logit difference. Equal symbols and labels mean every
figure measured downstream of the receiver (coded top-1, labels through the service) is unchanged.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, safe_open, save_file

from jointcodec import zoo
from jointcodec.checkpoint import load_model, resolve_weights
from jointcodec.data import load_split
from jointcodec.entropy.fixedpoint import model_fingerprint
from jointcodec.evaluation.evaluate import predict
from jointcodec.utils import atomic_write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    source = resolve_weights(args.checkpoint)
    fp32, config = load_model(source)
    with tempfile.TemporaryDirectory() as folder:
        half = Path(folder) / "model.safetensors"
        metadata = safe_open(str(source), "pt").metadata()
        save_file(zoo.half_receiver(load_file(str(source))), str(half), metadata=metadata)
        fp16, _ = load_model(half)
    test = load_split(config["dataset"], "test", args.data_dir)
    a, b = predict(fp32, test), predict(fp16, test)
    labels_a, labels_b = a["logits"].argmax(1), b["logits"].argmax(1)
    result = {"checkpoint": args.checkpoint, "n_images": len(test),
              "fingerprint_equal": model_fingerprint(fp32) == model_fingerprint(fp16),
              "symbols_equal": bool(torch.equal(a["symbols"], b["symbols"])),
              "labels_equal": int((labels_a == labels_b).sum()),
              "top1_fp32": 100 * (labels_a == test.labels).float().mean().item(),
              "top1_fp16": 100 * (labels_b == test.labels).float().mean().item(),
              "max_logit_difference": (a["logits"] - b["logits"]).abs().max().item()}
    print(json.dumps(result))
    if args.json:
        atomic_write_json(args.json, result)


if __name__ == "__main__":
    main()
