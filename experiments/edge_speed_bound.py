"""The fastest the edge client's encoder + entropy coding can be on this CPU, with the bytes unchanged.

    python experiments/edge_speed_bound.py --export-dir DIR --json docs/results/deployment/edge_speed_bound.json

The bytes are fixed by the decoder: the encoder must compute the exact integer context logits of every latent
element, which this client does as float64 matrix products (exact, see ``FullPass``). So one image costs at least
the context's multiply-adds at the CPU's best float64 matrix-product rate, plus the analysis transform. This script
measures, on one thread:

1. the context's multiply-adds per image, counted from the integer model's masks (only the taps a mask keeps);
2. the best float64 matrix-product rate numpy's BLAS reaches (large square products: its peak, not our shapes);
3. the ONNX analysis transform (fp32 and, if exported, int8), batch 64, median of repeats;
4. the client's whole encode (transform + context + range coding), batch 64, as shipped;

and reports the bound ``1 / (transform + context MACs / peak rate)`` in images/s beside the measured throughput.
The bound leaves out everything but the context's multiply-adds (no frequencies, no range coding, no copies), so
no implementation of this bitstream can beat it on this CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np

from jointcodec.data import load_split
from jointcodec.edge.client import PRECISIONS, EdgeEncoder
from jointcodec.errors import CheckpointError
from jointcodec.utils import atomic_write_json

BATCH = 64  # the throughput batch
REPEATS = 15  # medians over this many timed calls, after one warm-up
PEAK_SIZES = (512, 1024, 2048)  # square float64 products: BLAS at its best


def median_seconds(fn, repeats: int = REPEATS) -> float:
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def context_macs_per_image(edge: EdgeEncoder) -> int:
    """Multiply-adds of the integer context over one latent: per layer, out x in x (taps its mask keeps)."""
    positions = int(np.prod(edge.latent_shape))
    total = 0
    for layer in edge.context.layers:
        outputs, inputs = layer.weights[0].shape[:2]
        taps = max(int(mask.sum()) for mask in layer.masks)
        total += outputs * inputs * taps * positions
    return total


def float64_peak_macs_per_s() -> dict:
    rates = {}
    for n in PEAK_SIZES:
        a, b = np.random.default_rng(0).random((2, n, n))
        rates[n] = n**3 / median_seconds(lambda a=a, b=b: a @ b, repeats=5)
    return {"by_size": {str(n): r for n, r in rates.items()}, "best": max(rates.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--export-dir", required=True, help="an export of `jointcodec export --onnx DIR [--int8]`")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if os.environ.get("OPENBLAS_NUM_THREADS") != "1" or os.environ.get("OMP_NUM_THREADS") != "1":
        raise SystemExit("run with OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1: the bound is for one thread")

    test = load_split("cifar10", "test", args.data_dir)
    images = np.ascontiguousarray(test.images[:BATCH].numpy())
    peak = float64_peak_macs_per_s()
    report: dict = {"batch": BATCH, "threads": 1, "float64_matmul_macs_per_s": peak, "precisions": {},
                    "load_average": os.getloadavg()}
    for precision in PRECISIONS:
        try:
            edge = EdgeEncoder(args.export_dir, threads=1, precision=precision)
        except CheckpointError as err:  # an export without the int8 encoder
            report["precisions"][precision] = {"skipped": str(err)}
            continue
        macs = context_macs_per_image(edge)
        transform_s = median_seconds(lambda e=edge: e.symbols(images, batch_size=BATCH)) / BATCH
        whole_s = median_seconds(lambda e=edge: e.compress(images)) / BATCH
        context_floor_s = macs / peak["best"]
        report["context_macs_per_image"] = macs
        report["precisions"][precision] = {
            "transform_ms_per_image": 1e3 * transform_s,
            "context_at_peak_ms_per_image": 1e3 * context_floor_s,
            "bound_images_per_s": 1.0 / (transform_s + context_floor_s),
            "measured_images_per_s": 1.0 / whole_s,
        }
    report["load_average_after"] = os.getloadavg()
    print(json.dumps(report, indent=2))
    if args.json:
        atomic_write_json(args.json, report)


if __name__ == "__main__":
    main()
