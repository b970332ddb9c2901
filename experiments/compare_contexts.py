"""Rate cost of the parallel-decodable contexts (channel, checkerboard) against the 3D context.

Freezes a trained model's encoder and quantizer, trains a fresh context model of each kind on the latent
symbols of the training images (same budget for both), and reports each one's estimated and actual
(range-coded) rate on the test split. With ``--save-dir``, also writes full checkpoints (the model with
each new context) that ``jointcodec evaluate --coded`` can time.

    python experiments/compare_contexts.py --checkpoint default --epochs 6 --save-dir /tmp/contexts \
        --variants 3d channel checkerboard checkerboard:8

A variant is a context kind, optionally with ``:WIDTH`` (default: the checkpoint's context width).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch.nn import functional as F

from jointcodec.api import Codec
from jointcodec.checkpoint import load_model, save_model
from jointcodec.data import load_split
from jointcodec.models import ContextModel3D, create_context, preset_from_dict


def train_context(kind: str, args: dict, levels: int, centers: torch.Tensor, symbols: torch.Tensor, epochs: int,
                  batch_size: int, lr: float, seed: int) -> ContextModel3D:
    """Adam on the mean code length of ``symbols`` (N, C, H, W) under a fresh context model."""
    torch.manual_seed(seed)
    context = create_context(levels, {**args, "kind": kind})
    optimizer = torch.optim.Adam(context.parameters(), lr=lr)
    steps = epochs * (len(symbols) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=steps)
    values = centers[symbols]
    for epoch in range(epochs):
        order = torch.randperm(len(symbols))
        for i in range(len(symbols) // batch_size):
            batch = order[i * batch_size:(i + 1) * batch_size]
            logits = context(values[batch])
            loss = F.cross_entropy(logits.reshape(-1, levels), symbols[batch].reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        print(f"  {kind}: epoch {epoch + 1}/{epochs}, train {loss.item() / 0.6931:.4f} bits/symbol", flush=True)
    return context.eval()


def context_macs(codec: Codec, shape: tuple[int, int, int]) -> int:
    """Multiply-accumulates of the integer context model per image (unmasked taps only, per position class)."""
    _, position_class = codec.model.context.decoding_steps(shape)
    counts = torch.bincount(position_class.flatten(), minlength=2).tolist()
    return sum(count * int(mask.sum()) * weight.shape[0] * weight.shape[1]
               for layer in codec.fixed.layers
               for count, mask, weight in zip(counts, layer.masks, layer.weights, strict=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="default")
    parser.add_argument("--train-images", type=int, default=20000)
    parser.add_argument("--test-images", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--save-dir", default=None, help="write a full checkpoint per context kind here")
    parser.add_argument("--json", default=None)
    parser.add_argument("--variants", nargs="+", default=["3d", "channel", "checkerboard"])
    args = parser.parse_args()

    model, config = load_model(args.checkpoint)
    codec = Codec(model, config)
    train = load_split(config["dataset"], "train", args.data_dir).subset(slice(0, args.train_images))
    test = load_split(config["dataset"], "test", args.data_dir).subset(slice(0, args.test_images))
    train_symbols, test_symbols = codec.symbols(train.images), codec.symbols(test.images)
    pixels = test.image_size[0] * test.image_size[1]
    centers = model.quantizer.centers.detach()
    context_args = {k: v for k, v in config["preset"]["context_args"].items() if k != "kind"}
    results = {}
    for variant_name in args.variants:
        kind, _, width = variant_name.partition(":")
        variant_args = {**context_args, **({"width": int(width)} if width else {})}
        context = train_context(kind, variant_args, model.levels, centers, train_symbols, args.epochs,
                                args.batch_size, args.lr, seed=0)
        variant = copy.deepcopy(model)
        variant.context = context
        preset = replace(preset_from_dict(config["preset"]), context_args={**variant_args, "kind": kind})
        variant_config = {**config, "preset": preset.to_dict(), "context_retrained_on": args.checkpoint}
        coded = Codec(variant, variant_config)
        with torch.no_grad():
            logits = context(centers[test_symbols])
        estimated = F.cross_entropy(logits.reshape(-1, model.levels), test_symbols.reshape(-1), reduction="sum")
        started = time.perf_counter()
        encoded = coded.encode_symbols(test_symbols)
        encode_s = time.perf_counter() - started
        started = time.perf_counter()
        decoded = coded.decode_symbols(encoded.container)
        decode_s = time.perf_counter() - started
        payload = sum(map(len, encoded.container.payloads))
        results[variant_name] = {
            "bpp_estimated": estimated.item() / 0.6931471805599453 / (len(test_symbols) * pixels),
            "bpp_payload": 8 * payload / (len(test_symbols) * pixels),
            "exact": bool(torch.equal(decoded, test_symbols)),
            "entropy_encode_s": encode_s, "entropy_decode_s": decode_s,
            "decode_steps": len(coded.fixed.coding_order(tuple(test_symbols.shape[1:]))),
            "context_macs_per_image": context_macs(coded, tuple(test_symbols.shape[1:])),
        }
        if "3d" in results:
            results[variant_name]["rate_vs_3d_relative"] = (results[variant_name]["bpp_payload"]
                                                            / results["3d"]["bpp_payload"] - 1)
        print(variant_name, json.dumps(results[variant_name]), flush=True)
        if args.save_dir:
            save_model(Path(args.save_dir) / variant_name.replace(":", "-w"), variant, variant_config)
    results["setup"] = vars(args) | {"threads": torch.get_num_threads()}
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
