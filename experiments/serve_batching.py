"""Does micro-batching raise the receiver's throughput? The worker pool alone, without HTTP, in one process.

    python experiments/serve_batching.py --checkpoint default --concurrent 16 --rounds 5 --json batching.json

``--concurrent`` single-image requests are submitted at once to the service's ``ClassifierPool``, with batching
and without, alternating (so both see the same machine load); the median time per round gives images/s for each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

import torch

from jointcodec.api import Codec
from jointcodec.bitstream import split
from jointcodec.data import load_split
from jointcodec.serve.worker import ClassifierPool


async def one_round(pool: ClassifierPool, containers: list) -> float:
    started = time.perf_counter()
    await asyncio.gather(*(pool.classify(c, timeout_s=600) for c in containers))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="default")
    parser.add_argument("--concurrent", type=int, default=16, help="single-image requests in flight at once")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    codec = Codec.load(args.checkpoint)
    images = load_split("cifar10", "test", args.data_dir).images[:args.concurrent * args.rounds]
    container = codec.encode_symbols(codec.symbols(images)).container
    singles = [split(container, [i]) for i in range(len(images))]
    pools = {name: ClassifierPool(codec, args.workers, 10_000, batching, 256, 2.0)
             for name, batching in (("batching", True), ("no_batching", False))}
    times: dict[str, list[float]] = {name: [] for name in pools}

    async def run() -> None:
        for pool in pools.values():  # warm-up
            await one_round(pool, singles[:2])
        for r in range(args.rounds):
            chunk = singles[r * args.concurrent:(r + 1) * args.concurrent]
            for name, pool in pools.items():
                times[name].append(await one_round(pool, chunk))

    asyncio.run(run())
    result = {"concurrent": args.concurrent, "rounds": args.rounds, "workers": args.workers, "torch_threads": 1,
              "batches": {name: pool.batches for name, pool in pools.items()}}
    for name, values in times.items():
        result[name] = {"median_round_s": statistics.median(values),
                        "images_per_s": args.concurrent / statistics.median(values)}
    result["speedup"] = result["batching"]["images_per_s"] / result["no_batching"]["images_per_s"]
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
