"""Train candidate presets side by side, one process each, with the core recipe (a GPU sweep).

Used to pick the shipped CIFAR preset (docs/results.md, "Choosing the preset"): every candidate gets
the recipe's defaults (``TrainConfig``: 26 epochs, batch 256, target 0.79 bpp, seed 0), so a winner here
is trained the same way with ``jointcodec train`` on the CPU. Small models leave a GPU mostly idle, so
several processes share one; each gets an equal share of the CPU threads (OMP_NUM_THREADS, unless set), because
8 processes of 16 torch threads on 16 cores stepped over 10x slower than 4 of 3 (measured on one H100).
A candidate is plain data: encoder and receiver arguments.

    python experiments/preset_sweep.py --device cuda --out-root runs/sweep [--candidates cifar-v3,v3-r31:1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from jointcodec.evaluation.complexity import count_macs
from jointcodec.models.registry import (
    CIFAR_CLASSIFIER,
    CIFAR_CONTEXT,
    CIFAR_LIGHT_ENCODER,
    PRESETS,
    Preset,
    create_model,
    register,
)
from jointcodec.training.recipe import TrainConfig, train

MID_ENCODER = {"stem": 24, "width": 48, "blocks": 1, "latent_channels": 16, "bottleneck": 64}
# name -> (encoder args, receiver args); registered presets (cifar-v2, cifar-v3, cifar-v1-deep, ...) need no entry.
CANDIDATES: dict[str, tuple[dict, dict]] = {
    "v3-r31": (CIFAR_LIGHT_ENCODER, {**CIFAR_CLASSIFIER, "blocks": (3, 1)}),
    "mid-deep": (MID_ENCODER, {**CIFAR_CLASSIFIER, "blocks": (2, 1)}),
}
# "NAME:SEED" runs a candidate with another seed (the spread between seeds, next to the gaps between presets).
DEFAULT_RUN = ["cifar-v2", "cifar-v3", "cifar-v3-deep", "cifar-v1-deep", "cifar-v1-deep:1", "cifar-v1-deep:2",
               *CANDIDATES]


def register_candidates() -> None:
    for name, (encoder_args, classifier_args) in CANDIDATES.items():
        register(Preset(name, "cifar", encoder_args=encoder_args, classifier_args=classifier_args,
                        context_args=CIFAR_CONTEXT))


def macs(name: str) -> tuple[int, int]:
    """(encoder, receiver) MACs per 32x32 image."""
    model = create_model(name, 2, 10)
    encoder = count_macs(model.encoder, torch.zeros(1, 3, 32, 32))
    return encoder, count_macs(model.classifier, torch.zeros(1, 16, 8, 8))


def split_seed(run: str) -> tuple[str, int]:
    name, _, seed = run.partition(":")
    if not (seed or "0").isdigit():
        sys.exit(f"error: {run!r}: the seed after ':' must be a whole number")
    return name, int(seed or 0)


def run_dir(root: Path, run: str) -> Path:
    name, seed = split_seed(run)
    return root / (f"{name}-s{seed}" if seed else name)


def run_one(args: argparse.Namespace) -> None:
    name, seed = split_seed(args.one)
    config = TrainConfig(preset=name, seed=seed, dataset=args.dataset, levels=args.levels, epochs=args.epochs,
                         device=args.device, precision=args.precision, data_dir=args.data_dir,
                         train_subset=args.train_subset, val_size=args.val_size, progress=False,
                         out=str(run_dir(Path(args.out_root), args.one)))
    train(config)


def run_all(args: argparse.Namespace) -> None:
    names = args.candidates.split(",") if args.candidates else DEFAULT_RUN
    unknown = [n for n in names if split_seed(n)[0] not in PRESETS]
    if unknown:
        sys.exit(f"error: unknown candidate(s) {', '.join(unknown)}; choose from {', '.join(DEFAULT_RUN)}")
    root = Path(args.out_root)
    root.mkdir(parents=True, exist_ok=True)
    passthrough = [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
                   if k not in ("one", "candidates") and v is not None]
    started = time.time()
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS",
                                                           str(max(1, (os.cpu_count() or 1) // len(names))))}
    logs = {name: open(f"{run_dir(root, name)}.log", "w") for name in names}  # noqa: SIM115 (open while running)
    procs = {name: subprocess.Popen([sys.executable, __file__, f"--one={name}", *passthrough], env=env,
                                    stdout=logs[name], stderr=subprocess.STDOUT) for name in names}
    codes = {name: proc.wait() for name, proc in procs.items()}
    for log in logs.values():
        log.close()
    rows = []
    for name in names:
        result_file = run_dir(root, name) / "eval_test.json"
        result = json.loads(result_file.read_text()) if result_file.is_file() else {}
        encoder, receiver = macs(split_seed(name)[0])
        rows.append({"preset": split_seed(name)[0], "seed": split_seed(name)[1], "exit_code": codes[name],
                     "top1": result.get("top1"),
                     "bpp_estimated": result.get("bpp_estimated"), "encoder_macs": encoder,
                     "receiver_macs": receiver, "encoder_to_receiver": round(encoder / receiver, 3),
                     "train_wall_clock_s": result.get("train_wall_clock_s")})
        print(json.dumps(rows[-1]), flush=True)
    summary = {"device": torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device,
               "precision": args.precision, "epochs": args.epochs, "processes_at_once": len(names),
               "wall_clock_s": round(time.time() - started, 1), "runs": rows}
    (root / "summary.json").write_text(json.dumps(summary, indent=1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--candidates", help=f"comma list (default: {','.join(DEFAULT_RUN)})")
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--levels", type=int, default=2)
    p.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    p.add_argument("--device", default="cuda")
    p.add_argument("--precision", default="32-true", help="32-true matches the CPU recipe's numerics")
    p.add_argument("--data-dir")
    p.add_argument("--train-subset", type=int, default=0)
    p.add_argument("--val-size", type=int, default=TrainConfig.val_size)
    p.add_argument("--out-root", default="runs/sweep")
    args = p.parse_args()
    register_candidates()
    run_one(args) if args.one else run_all(args)


if __name__ == "__main__":
    main()
