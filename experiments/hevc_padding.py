"""How much libheif's padding of small pictures costs the `heif` baseline (docs/baselines.md).

libheif's x265 plugin pads every picture smaller than 64x64 to 64x64 before x265 codes it. This compares,
on the first N CIFAR-10 test images, the payload of each 32x32 image coded alone (padded to 64x64, what the
`heif` wrapper measures) with the payload per image of 2x2 mosaics of four images (64x64: no padding, but
the four images also share a slice and predict from each other, so the mosaic is an optimistic bound). The
`hevc` wrapper avoids the padding altogether: it calls x265 at 32x32 through PyAV.

    python experiments/hevc_padding.py --images 200 --json docs/results/cifar10/hevc_padding.json
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from jointcodec.codecs import get_codec
from jointcodec.data import load_split
from jointcodec.utils import atomic_write_json


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b) ** 2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200, help="first N test images (a multiple of 4)")
    parser.add_argument("--qualities", type=int, nargs="+", default=[15, 27])
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    data = load_split("cifar10", "test").subset(slice(0, args.images - args.images % 4))
    images = np.ascontiguousarray(data.images.permute(0, 2, 3, 1).numpy())
    codec = get_codec("heif")
    rows = []
    for quality in args.qualities:
        single = [codec.encode(x, quality) for x in images]
        mosaics = [np.concatenate([np.concatenate(images[i:i + 2], 1), np.concatenate(images[i + 2:i + 4], 1)], 0)
                   for i in range(0, len(images), 4)]
        coded = [codec.encode(m, quality) for m in mosaics]
        rows.append({
            "quality": quality,
            "single_payload_bpp": float(np.mean([8 * codec.layout(f).payload_bytes / 1024 for f in single])),
            "single_psnr_db": float(np.mean([psnr(x, codec.decode(f)) for x, f in zip(images, single, strict=True)])),
            "mosaic_payload_bpp_per_image": float(np.mean([8 * codec.layout(f).payload_bytes / 4096 for f in coded])),
            "mosaic_psnr_db": float(np.mean([psnr(m, codec.decode(f)) for m, f in zip(mosaics, coded, strict=True)])),
        })
        print(json.dumps(rows[-1]), flush=True)
    if args.json:
        atomic_write_json(args.json, {"n_images": len(images), "library": codec.library(),
                                      "command": "python " + " ".join(sys.argv), "rows": rows})


if __name__ == "__main__":
    main()
