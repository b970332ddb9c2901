"""Time a named recipe end to end over several seeds, then measure each trained model through real files.

    python tools/time_recipe.py fast --seeds 0 1 2 --out runs/fast-timing \\
        --json runs/fast-recipe.json [-- --device cuda]

Each seed is one `jointcodec train --recipe NAME --seed S` process; its wall clock runs from starting the process
(importing, loading the data) to the saved model and its end-of-training test, which is what a user waits for.
Then `jointcodec evaluate --coded` measures the model through real `.jcc` files (not timed). The summary takes the
worst seed: the lowest top-1, the highest rate, the longest time. Seeds already in --json are skipped, so a killed
run continues where it stopped; the file is rewritten atomically after each seed. Flags after `--` go to `train`.

A time means something only for one recipe on one kind of machine, so the file records the recipe's fields, the
flags and the machine (CPU, cores, whether it computes in bf16), and a rerun that differs in any of them is refused:
seeds measured apart are never summarised together.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path

from jointcodec.errors import ConfigError
from jointcodec.training.hyperparameters import named_recipe
from jointcodec.utils import atomic_write_json, cpu_has_fast_bf16, cpu_model

JOINTCODEC = [sys.executable, "-m", "jointcodec.cli.main"]


def as_typed(command: list[str]) -> str:
    """A JOINTCODEC command as a user types it: ``jointcodec train ...``."""
    return " ".join(["jointcodec", *command[len(JOINTCODEC):]])


def machine() -> dict:
    """The kind of machine a time belongs to: the CPU, its cores, and whether `--precision auto` trains in bf16
    there (it does where the CPU has native bf16 units; the same recipe in fp32 takes about 1.5x as long), and the
    GPU where there is one."""
    record = {"cpu": cpu_model(), "cores": os.cpu_count(), "bf16": cpu_has_fast_bf16(), "torch": version("torch")}
    gpu = gpu_model()
    return {**record, "gpu": gpu} if gpu else record  # CPU-only records keep their earlier form


def gpu_model() -> str | None:
    """The first CUDA device's name where torch sees one (a `--device auto` or `cuda` run trains there)."""
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def settings_mismatch(record: dict, settings: dict) -> str | None:
    """Which of recipe, its fields, the train flags and the machine ``record`` was measured with differs from
    ``settings`` (None: all the same, or no record yet)."""
    for key in settings:
        if record and record.get(key) != settings[key]:
            return key
    return None


def run_seed(recipe: str, seed: int, out: Path, train_flags: list[str], limit: int) -> dict:
    """Train one seed (timed), then evaluate it through real files (the first ``limit`` test images, 0: all); the
    seed's record. CalledProcessError where either command fails (it has printed why)."""
    run = out / f"seed{seed}"
    train = [*JOINTCODEC, "train", "--recipe", recipe, "--seed", str(seed), "--out", str(run), "--no-progress",
             *train_flags]
    start = time.perf_counter()
    subprocess.run(train, check=True)
    wall_s = time.perf_counter() - start
    coded_json = run / "coded.json"
    subprocess.run([*JOINTCODEC, "evaluate", "--checkpoint", str(run), "--coded", "--no-progress",
                    "--json", str(coded_json), "--limit", str(limit)], check=True)
    coded = json.loads(coded_json.read_text())
    return {"seed": seed, "wall_s": wall_s, "top1_coded": coded["top1_coded"], "bpp_payload": coded["bpp_payload"],
            "bpp_estimated": coded["bpp_estimated"], "run": str(run), "command": as_typed(train)}


def summary(seeds: list[dict], max_minutes: float, min_top1: float, max_bpp: float) -> dict:
    """The worst seed on each axis, and whether the worst still meets every bar."""
    worst = {"top1_coded": min(s["top1_coded"] for s in seeds), "bpp_payload": max(s["bpp_payload"] for s in seeds),
             "wall_s": max(s["wall_s"] for s in seeds)}
    bars = {"max_minutes": max_minutes, "min_top1": min_top1, "max_bpp": max_bpp}
    # A top-1 over N images moves in steps of 100/N %; float32 arithmetic leaves 87.99999952 for 8,800 of 10,000,
    # so it is compared at 4 decimals, far below any step.
    meets = (round(worst["top1_coded"], 4) >= min_top1 and worst["bpp_payload"] <= max_bpp
             and worst["wall_s"] <= max_minutes * 60)
    return {"worst": worst, "bars": bars, "meets_bars": meets}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    cut = argv.index("--") if "--" in argv else len(argv)
    own, train_flags = argv[:cut], argv[cut + 1:]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe", help="a name from `jointcodec recipes`")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, required=True, help="folder for one run directory per seed")
    parser.add_argument("--json", type=Path, required=True, help="the per-seed figures and the summary")
    parser.add_argument("--max-minutes", type=float, default=30.0, help="the bar for the slowest seed")
    parser.add_argument("--min-top1", type=float, default=88.0, help="the bar for the weakest seed (%%)")
    parser.add_argument("--max-bpp", type=float, default=0.80, help="the bar for the highest payload rate")
    parser.add_argument("--limit", type=int, default=0, help="evaluate on the first N test images (0: all)")
    args = parser.parse_args(own)
    try:
        named_recipe(args.recipe)  # its own error names the choices
    except ConfigError as error:
        parser.error(str(error))

    record = json.loads(args.json.read_text()) if args.json.is_file() else {}
    settings = {"recipe": args.recipe, "recipe_fields": asdict(named_recipe(args.recipe)), "train_flags": train_flags,
                "machine": machine()}
    differs = settings_mismatch(record, settings)
    if differs:
        parser.error(f"{args.json} was measured with another {differs.replace('_', ' ')} "
                     f"({record.get(differs)!r}, now {settings[differs]!r}); give another --json")
    done = {s["seed"]: s for s in record.get("seeds", [])}
    for seed in args.seeds:
        if seed in done:
            print(f"seed {seed}: already measured, skipped")
            continue
        try:
            done[seed] = run_seed(args.recipe, seed, args.out, train_flags, args.limit)
        except subprocess.CalledProcessError as error:
            print(f"error: seed {seed}: `{as_typed(error.cmd)}` failed (exit {error.returncode})", file=sys.stderr)
            return 1
        seeds = [done[s] for s in sorted(done)]
        record = {**settings, "seeds": seeds,
                  **summary(seeds, args.max_minutes, args.min_top1, args.max_bpp)}
        atomic_write_json(args.json, record)
        s = done[seed]
        print(f"seed {seed}: {s['wall_s'] / 60:.1f} min, top-1 {s['top1_coded']:.2f} % at {s['bpp_payload']:.4f} bpp")
    if record:
        print(json.dumps({k: record[k] for k in ("worst", "meets_bars")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
