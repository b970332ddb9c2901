"""Pack a CIFAR npz copy losslessly into parts small enough for a size-capped transfer, and unpack it.

Used to carry CIFAR-10 to a GPU machine without network access (at most 64 MiB per transfer): a mod-256
colour transform (G, R-G, B-G), LOCO-I median-edge prediction and xz make 0.54 of the raw bytes, so the
60,000 images travel as two ~50 MB parts. Pure numpy + the standard library, so it runs anywhere.

    python tools/pack_cifar_lossless.py pack DATA/cifar10 OUTDIR --parts 2
    python tools/pack_cifar_lossless.py unpack OUTDIR DATA2/cifar10     # writes train.npz, test.npz
"""

from __future__ import annotations

import argparse
import json
import lzma
import shutil
from pathlib import Path

import numpy as np

SPLITS = ("train", "test")
META_FILES = ("labels.json", ".prepared-npz.json")


def median_prediction(left: np.ndarray, up: np.ndarray, up_left: np.ndarray) -> np.ndarray:
    """LOCO-I / JPEG-LS median edge detector."""
    high, low = np.maximum(left, up), np.minimum(left, up)
    return np.where(up_left >= high, low, np.where(up_left <= low, high, left + up - up_left))


def to_residuals(images: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (3, N, H, W) uint8 prediction residuals (channel-major compresses better)."""
    planes = images.transpose(0, 3, 1, 2).astype(np.int32)
    green = planes[:, 1]
    q = np.stack([green, (planes[:, 0] - green) % 256, (planes[:, 2] - green) % 256], 1)
    left, up, up_left = np.zeros_like(q), np.zeros_like(q), np.zeros_like(q)
    left[..., 1:] = q[..., :-1]
    up[..., 1:, :] = q[..., :-1, :]
    up_left[..., 1:, 1:] = q[..., :-1, :-1]
    residuals = (q - median_prediction(left, up, up_left)) % 256
    return np.ascontiguousarray(residuals.astype(np.uint8).transpose(1, 0, 2, 3))


def from_residuals(residuals: np.ndarray) -> np.ndarray:
    """Inverse of ``to_residuals``: raster order, every image and channel at once."""
    res = residuals.transpose(1, 0, 2, 3).astype(np.int32)
    n, _, height, width = res.shape
    q = np.zeros((n, 3, height + 1, width + 1), np.int32)  # a zero row and column stand for the border
    for y in range(height):
        for x in range(width):
            predicted = median_prediction(q[:, :, y + 1, x], q[:, :, y, x + 1], q[:, :, y, x])
            q[:, :, y + 1, x + 1] = (predicted + res[:, :, y, x]) % 256
    q = q[:, :, 1:, 1:]
    green = q[:, 0]
    return np.stack([(q[:, 1] + green) % 256, green, (q[:, 2] + green) % 256], -1).astype(np.uint8)


def pack(source: Path, out: Path, parts: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    arrays = {split: np.load(source / f"{split}.npz") for split in SPLITS}
    images = np.concatenate([arrays[split]["images"] for split in SPLITS])
    np.savez(out / "labels.npz", **{split: arrays[split]["labels"] for split in SPLITS})
    for name in META_FILES:
        if (source / name).is_file():
            shutil.copy(source / name, out / name)
    for index, chunk in enumerate(np.array_split(images, parts)):
        (out / f"part{index}.xz").write_bytes(lzma.compress(to_residuals(chunk).tobytes(), preset=6))
    (out / "parts.json").write_text(json.dumps({"parts": parts, "counts": {s: len(arrays[s]["labels"])
                                                                          for s in SPLITS}}))


def unpack(packed: Path, target: Path) -> None:
    info = json.loads((packed / "parts.json").read_text())
    chunks = [np.frombuffer(lzma.decompress((packed / f"part{i}.xz").read_bytes()), np.uint8).reshape(3, -1, 32, 32)
              for i in range(info["parts"])]
    images = from_residuals(np.concatenate(chunks, 1))
    labels = np.load(packed / "labels.npz")
    target.mkdir(parents=True, exist_ok=True)
    start = 0
    for split in SPLITS:
        stop = start + info["counts"][split]
        np.savez(target / f"{split}.npz", images=images[start:stop], labels=labels[split].astype(np.int64))
        start = stop
    for name in META_FILES:
        if (packed / name).is_file():
            shutil.copy(packed / name, target / name)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=("pack", "unpack"))
    p.add_argument("source", type=Path)
    p.add_argument("target", type=Path)
    p.add_argument("--parts", type=int, default=2)
    args = p.parse_args()
    pack(args.source, args.target, args.parts) if args.mode == "pack" else unpack(args.source, args.target)


if __name__ == "__main__":
    main()
