"""Bit-exactness of the coded path on real data: batch sizes, one-by-one decoding, thread counts.

    python tools/bitexact_check.py --checkpoint default --images 10000 --one-by-one 500

1. encodes the images' latents in batches of 64 (one container per batch) and all at once: the payloads must be
   byte-identical;
2. decodes the first ``--one-by-one`` images one image at a time, and all images in the default batches: the
   symbols must equal the encoded ones;
3. runs the entropy coding (symbols -> bytes -> symbols) in subprocesses with 1 and with 2 threads (torch,
   numpy's BLAS and the coder's own threads, ``JOINTCODEC_CODING_THREADS``): the bytes must be identical.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from jointcodec.api import Codec
from jointcodec.bitstream import split
from jointcodec.data import load_split

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "JOINTCODEC_CODING_THREADS")
CHILD = """
import hashlib, sys, torch
torch.set_num_threads(int(sys.argv[1]))
from jointcodec.api import Codec
codec = Codec.load(sys.argv[2])
symbols = torch.load(sys.argv[3])
data = codec.encode_symbols(symbols).to_bytes()
assert torch.equal(codec.decode_symbols(data), symbols)
print(hashlib.sha256(data).hexdigest())
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="default")
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--one-by-one", type=int, default=500)
    parser.add_argument("--thread-images", type=int, default=2000)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()

    codec = Codec.load(args.checkpoint)
    data = load_split(codec.config["dataset"], "test", args.data_dir).subset(slice(0, args.images))
    symbols = codec.symbols(data.images)
    report = {"images": len(symbols), "threads": torch.get_num_threads()}

    whole = codec.encode_symbols(symbols).container
    batches = [codec.encode_symbols(symbols[i:i + 64]).container for i in range(0, len(symbols), 64)]
    report["batches_of_64_equal_one_batch"] = [p for c in batches for p in c.payloads] == list(whole.payloads)

    started = time.perf_counter()
    report["decode_batched_exact"] = bool(torch.equal(codec.decode_symbols(whole), symbols))
    report["decode_batched_s"] = time.perf_counter() - started
    started = time.perf_counter()
    singles = [codec.decode_symbols(split(whole, [i])) for i in range(min(args.one_by_one, len(symbols)))]
    report["decode_one_by_one_exact"] = bool(torch.equal(torch.cat(singles), symbols[:args.one_by_one]))
    report["decode_one_by_one_images"] = args.one_by_one
    report["decode_one_by_one_s_per_image"] = (time.perf_counter() - started) / max(1, args.one_by_one)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "symbols.pt"
        torch.save(symbols[:args.thread_images].clone(), path)
        digests = {}
        for threads in (1, 2):
            # torch's and numpy's BLAS thread pools both change with the count (the integer context runs in numpy)
            env = {**os.environ, **{k: str(threads) for k in THREAD_VARIABLES}}
            proc = subprocess.run([sys.executable, "-c", CHILD, str(threads), str(args.checkpoint), str(path)],
                                  capture_output=True, text=True, env=env, check=True)
            digests[threads] = proc.stdout.strip()
    report["threads_1_vs_2_identical_bytes"] = digests[1] == digests[2]
    report["thread_check_images"] = min(args.thread_images, len(symbols))
    report["sha256_first_batch"] = hashlib.sha256(b"".join(whole.payloads)).hexdigest()[:16]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
