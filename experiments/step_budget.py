"""How far a recipe is from the fast recipe's 30-minute bar on this CPU, and why: the training step's time, the
multiply-accumulates (MACs) it does, and the rate it does them at against the CPU's own matrix-multiply rate.

    python experiments/step_budget.py --preset cifar-v1-deep --recipe fast \
        --json docs/results/cifar10/step-budget-avx2.json

A step that already runs at the CPU's matrix-multiply rate can only get faster by doing fewer MACs: the figure
``cut_needed`` is how many times fewer the recipe would need to train inside the bar (its epochs x steps x the
step's time, against the bar less what loading the data and the final test take).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from jointcodec.models import create_model
from jointcodec.training.hyperparameters import LABEL_SMOOTHING, RATE_BATCH_FRACTION, named_recipe
from jointcodec.training.parts import to_channels_last
from jointcodec.utils import atomic_write_json, cpu_has_fast_bf16, cpu_model

CIFAR_TRAIN_IMAGES = 50_000
BAR_MINUTES = 30.0
OVERHEAD_MINUTES = 1.0  # starting the process, loading CIFAR-10 and the final test (measured: under a minute)
GEMM_SIDE = 2048  # a matrix multiply large enough to run at the CPU's peak


def gemm_gmacs(repeats: int) -> float:
    """The CPU's practical peak: billions of MACs per second of one large fp32 matrix multiply (median)."""
    a, b = torch.randn(GEMM_SIDE, GEMM_SIDE), torch.randn(GEMM_SIDE, GEMM_SIDE)
    a @ b  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return GEMM_SIDE ** 3 / statistics.median(times) / 1e9


def training_step(preset: str, batch_size: int, bf16: bool):
    """One step of the recipe's loop on random images: forward with the PE on a quarter of the batch, the
    smoothed cross-entropy plus the rate, backward, Nesterov SGD."""
    torch.manual_seed(0)
    model = create_model(preset, 2, 10).train()
    to_channels_last(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    images = torch.randn(batch_size, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (batch_size,))
    rate_images = max(1, int(RATE_BATCH_FRACTION * batch_size))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(images, rate_grad_to_encoder=2.0, rate_images=rate_images)
            loss = F.cross_entropy(out.logits.float(), labels, label_smoothing=LABEL_SMOOTHING) + out.bpp.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cifar-v1-deep")
    parser.add_argument("--recipe", default="fast")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    recipe = named_recipe(args.recipe, preset=args.preset)
    bf16 = cpu_has_fast_bf16()  # what --precision auto trains in
    step = training_step(args.preset, recipe.batch_size, bf16)
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    step_macs = counter.get_total_flops() / 2
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    step_s = statistics.median(times)
    peak = gemm_gmacs(args.repeats)

    steps = recipe.epochs * ((CIFAR_TRAIN_IMAGES - recipe.val_size) // recipe.batch_size)
    training_minutes = steps * step_s / 60
    result = {
        "command": "python experiments/step_budget.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "cpu": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(), "native_bf16": bf16, "torch": torch.__version__,
        "preset": args.preset, "recipe": args.recipe,
        "batch_size": recipe.batch_size, "step_s": round(step_s, 4), "step_s_each": [round(t, 4) for t in times],
        "step_gmacs_forward_and_backward": round(step_macs / 1e9, 2),
        "step_rate_gmacs_per_s": round(step_macs / step_s / 1e9, 1), "gemm_gmacs_per_s": round(peak, 1),
        "step_rate_of_gemm_rate": round(step_macs / step_s / 1e9 / peak, 2),
        "recipe_steps": steps, "recipe_training_minutes": round(training_minutes, 1),
        "bar_minutes": BAR_MINUTES, "overhead_minutes": OVERHEAD_MINUTES,
        "cut_needed": round(training_minutes / (BAR_MINUTES - OVERHEAD_MINUTES), 2),
    }
    print(json.dumps(result, indent=1))
    if args.json:
        atomic_write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
