"""``jointcodec sweep``: the classic-codec baselines under protocol v2 (one strong, codec-robust receiver)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from jointcodec.cli.options import add_data_options, add_progress_option


def add_sweep(sub) -> None:
    from jointcodec.baselines.receiver_training import ReceiverRecipe
    from jointcodec.baselines.sweep import STAGES, SweepConfig

    d, r = SweepConfig(), ReceiverRecipe()
    p = sub.add_parser("sweep")
    p.add_argument("stages", nargs="+", metavar="STAGE", help=f"any of {', '.join(STAGES)}, in order")
    p.add_argument("--dataset", default=d.dataset, help="cifar10 or cifar100")
    p.add_argument("--codec", nargs="+", default=[], metavar="NAME", help="codecs (default: all)")
    p.add_argument("--receiver", default=r.preset, help="airnet-s, airnet-m or airnet-l (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=r.epochs, help="the receiver recipe's epochs")
    p.add_argument("--val-size", type=int, default=d.val_size, help="images carved from train for validation")
    p.add_argument("--pool-versions", type=int, default=d.pool_versions,
                   help="coded versions of each training image in the codec-robust pool")
    p.add_argument("--p-clean", type=float, default=d.p_clean, help="share of clean images in a robust epoch")
    p.add_argument("--robust-from-clean", type=int, default=d.robust_from_clean, metavar="EPOCHS",
                   help="robust stage: train the clean receiver EPOCHS more on the pool instead of a new one from "
                        "scratch (0 = from scratch); test and finetune then use that receiver")
    p.add_argument("--robust-from-clean-lr", type=float, default=d.robust_from_clean_lr)
    p.add_argument("--finetune-epochs", type=int, default=d.finetune_epochs)
    p.add_argument("--finetune-lr", type=float, default=d.finetune_lr)
    p.add_argument("--targets", nargs="+", type=float, default=list(d.targets), metavar="BPP",
                   help="fine-tune at each codec's ladder setting nearest these payload bpp")
    p.add_argument("--only-targets", action="store_true",
                   help="test stages: only the settings nearest --targets (the headline points first)")
    p.add_argument("--first", type=int, default=0, metavar="N",
                   help="test stages: only the first N settings of each ladder (its lowest rates); 0 = all")
    p.add_argument("--last", type=int, default=0, metavar="N",
                   help="test stages: only the last N settings of each ladder (its highest rates); 0 = all")
    p.add_argument("--scratch", nargs="+", default=[f"{c}:{s}" for c, s in d.scratch], metavar="CODEC:SETTING",
                   help="settings the scratch stage trains from scratch (default: %(default)s)")
    p.add_argument("--train-subset", type=int, default=0, help="only the first N training images (quick looks)")
    p.add_argument("--test-subset", type=int, default=0, help="only the first N test images (quick looks)")
    p.add_argument("--results", default=None, help="point files (default: docs/results/<dataset>/baselines)")
    p.add_argument("--runs", default=None, help="receiver runs (default: runs/receivers/<dataset>)")
    p.add_argument("--cache-dir", default=None, help="codec output cache (default: $JOINTCODEC_CACHE or "
                                                      "~/.cache/jointcodec/baselines)")
    p.add_argument("--workers", type=int, default=1, help="coding processes")
    add_data_options(p, download=False)
    add_progress_option(p)
    p.set_defaults(run=run_sweep)


def _scratch(values: list[str]) -> tuple[tuple[str, str], ...]:
    from jointcodec.codecs import get_codec
    from jointcodec.errors import ConfigError

    pairs = []
    for value in values:
        name, sep, setting = value.partition(":")
        if not sep:
            raise ConfigError(f"--scratch takes CODEC:SETTING, e.g. jpeg420:15, got {value!r}")
        get_codec(name).check_setting(setting)
        pairs.append((name, setting))
    return tuple(pairs)


def run_sweep(args) -> int:
    from jointcodec.baselines.airnet import get_airnet_preset
    from jointcodec.baselines.receiver_training import ReceiverRecipe
    from jointcodec.baselines.sweep import STAGES, SweepConfig, run_stages
    from jointcodec.codecs import get_codec
    from jointcodec.errors import ConfigError

    bad = [s for s in args.stages if s not in STAGES]
    if bad:
        raise ConfigError(f"unknown stage(s) {', '.join(bad)}; choose from {', '.join(STAGES)}")
    for name in args.codec:
        get_codec(name)
    get_airnet_preset(args.receiver)
    for flag in ("epochs", "finetune_epochs", "pool_versions"):
        if getattr(args, flag) < 1:
            raise ConfigError(f"--{flag.replace('_', '-')} must be >= 1")
    for flag in ("robust_from_clean", "first", "last"):
        if getattr(args, flag) < 0:
            raise ConfigError(f"--{flag.replace('_', '-')} must be >= 0")
    config = SweepConfig(
        dataset=args.dataset, codecs=args.codec, recipe=ReceiverRecipe(preset=args.receiver, epochs=args.epochs),
        val_size=args.val_size, pool_versions=args.pool_versions, p_clean=args.p_clean,
        robust_from_clean=args.robust_from_clean, robust_from_clean_lr=args.robust_from_clean_lr,
        finetune_epochs=args.finetune_epochs, finetune_lr=args.finetune_lr, targets=tuple(args.targets),
        scratch=_scratch(args.scratch), train_subset=args.train_subset, test_subset=args.test_subset,
        results=Path(args.results or f"docs/results/{args.dataset}/baselines"),
        runs=Path(args.runs or f"runs/receivers/{args.dataset}"),
        cache_dir=Path(args.cache_dir) if args.cache_dir else None, data_dir=args.data_dir, workers=args.workers,
        progress=args.progress, command="jointcodec " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    run_stages(config, args.stages, args.only_targets, args.first, args.last)
    return 0


__all__ = ["add_sweep"]
