"""fp32 vs bf16 autocast for one training step of a preset on this CPU (median of repeats, same process).

    python experiments/cpu_precision.py --preset cifar-v1 --batch-size 128 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch.nn import functional as F

from jointcodec.models import create_model
from jointcodec.training.parts import to_channels_last
from jointcodec.utils import cpu_has_fast_bf16


def step_seconds(preset: str, batch_size: int, bf16: bool, repeats: int) -> float:
    torch.manual_seed(0)
    model = create_model(preset, 2, 10)
    to_channels_last(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images = torch.randn(batch_size, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (batch_size,))
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(images, rate_images=batch_size // 4)
            loss = F.cross_entropy(out.logits.float(), labels) + out.bpp.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if i:  # the first step warms up the kernels
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cifar-v1")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    fp32 = step_seconds(args.preset, args.batch_size, False, args.repeats)
    bf16 = step_seconds(args.preset, args.batch_size, True, args.repeats)
    print(json.dumps({"preset": args.preset, "batch_size": args.batch_size, "threads": torch.get_num_threads(),
                      "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                      "native_bf16": cpu_has_fast_bf16(), "fp32_step_s": round(fp32, 4),
                      "bf16_step_s": round(bf16, 4), "bf16_slowdown": round(bf16 / fp32, 2)}))


if __name__ == "__main__":
    main()
