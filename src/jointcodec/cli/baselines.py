"""``jointcodec baseline``, ``compare`` and ``ladder``: the classic-codec baselines on one protocol."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from jointcodec.cli.options import add_data_options, add_device_options, add_limit_option, add_progress_option

DEFAULT_RESULTS = "runs/baselines"


def _command() -> str:
    return "jointcodec " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _codec_names(values: list[str]) -> list[str]:
    from jointcodec.codecs import CODECS

    names = [n for v in values for n in v.split(",") if n]
    return list(CODECS) if names == ["all"] else names


def add_baseline(sub) -> None:
    from jointcodec.baselines.protocol import Protocol

    d = Protocol()
    p = sub.add_parser("baseline")
    p.add_argument("--dataset", default=d.dataset, help="cifar10 or cifar100")
    p.add_argument("--codec", nargs="+", required=True, metavar="NAME",
                   help="jpeg420, jpeg444, jpeg2000, webp, hevc, heif, avif, jpegxl, or all")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--setting", nargs="+", metavar="S", help="the codec's setting(s) (quality, distance, dB, QP)")
    which.add_argument("--targets", nargs="+", type=float, metavar="BPP",
                       help="search the setting for each target mean payload bpp (on training images)")
    p.add_argument("--search-images", type=int, default=2000, help="training images the --targets search codes")
    p.add_argument("--preset", default=d.preset, help="the receiver is this preset's encoder + classifier")
    p.add_argument("--epochs", type=int, default=d.epochs, help="the recipe's epochs (use jointcodec's)")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--val-size", type=int, default=d.val_size, help="images carved from train for validation")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--train-subset", type=int, default=0, help="use only the first N training images")
    p.add_argument("--test-subset", type=int, default=0, help="use only the first N test images")
    p.add_argument("--results", default=DEFAULT_RESULTS, help="results folder (default: %(default)s)")
    p.add_argument("--cache-dir", default=None, help="codec output cache (default: $JOINTCODEC_CACHE or "
                                                      "~/.cache/jointcodec/baselines)")
    p.add_argument("--workers", type=int, default=0, help="compression processes (default: all cores)")
    add_device_options(p)
    add_data_options(p)
    p.add_argument("--compress-only", action="store_true", help="only code (and cache) the splits; no training")
    add_progress_option(p)
    p.set_defaults(run=run_baseline)


def run_baseline(args) -> int:
    from jointcodec.baselines.cache import default_cache_dir
    from jointcodec.baselines.protocol import Protocol, Runtime, run_sweep
    from jointcodec.codecs import get_codec
    from jointcodec.codecs.batch import default_workers
    from jointcodec.errors import ConfigError

    names = _codec_names(args.codec)
    codecs = [get_codec(name) for name in names]  # unknown names fail here, before any work
    if args.setting:
        if len(codecs) != 1:
            raise ConfigError("--setting applies to one codec; give --targets or the ladders for several")
        for s in args.setting:
            codecs[0].check_setting(s)
    if args.targets and any(t <= 0 for t in args.targets):
        raise ConfigError("--targets must be positive bpp values")
    for flag in ("epochs", "batch_size", "search_images"):
        if getattr(args, flag) < 1:
            raise ConfigError(f"--{flag.replace('_', '-')} must be >= 1")
    protocol = Protocol(dataset=args.dataset, preset=args.preset, epochs=args.epochs, batch_size=args.batch_size,
                        lr=args.lr, weight_decay=args.weight_decay, val_size=args.val_size, seed=args.seed,
                        train_subset=args.train_subset, test_subset=args.test_subset)
    runtime = Runtime(results=Path(args.results), cache_dir=Path(args.cache_dir or default_cache_dir()),
                      workers=args.workers or default_workers(), device=args.device, precision=args.precision,
                      data_dir=args.data_dir, download=args.download, progress=args.progress,
                      compress_only=args.compress_only)
    records = run_sweep(names, protocol, runtime, args.setting, args.targets, args.search_images, _command())
    print(f"{len(records)} point(s) done")
    return 0


def add_compare(sub) -> None:
    p = sub.add_parser("compare")
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--results", default=None,
                   help="baseline results folder: v2 point files (<system>/<setting>-<protocol>.json) and/or the "
                        "v1 layout <dataset>/<codec>/<setting>/result.json (default: docs/results/<dataset>/baselines)")
    p.add_argument("--jointcodec", nargs="*", default=[], metavar="JSON",
                   help="`jointcodec evaluate --coded --json` files, or folders holding them")
    p.add_argument("--out", default="docs/results", help="writes OUT/<dataset>/rate_accuracy.{csv,json,png,svg}")
    p.add_argument("--codec", nargs="+", default=None, metavar="NAME",
                   help="the codecs this data set's sweep covers: only their missing settings are listed")
    p.add_argument("--no-plot", dest="plot", action="store_false")
    p.set_defaults(run=run_compare)


def run_compare(args) -> int:
    from jointcodec.baselines.compare import compare, format_missing, format_summary
    from jointcodec.codecs import get_codec

    for name in args.codec or []:
        get_codec(name)  # an unknown name is a one-line error
    results = args.results or f"docs/results/{args.dataset}/baselines"  # the default follows --dataset
    outcome = compare(args.dataset, results, args.jointcodec, args.out, _command(), args.plot, args.codec)
    systems = sorted({p.system for p in outcome["points"]})
    print(f"{len(outcome['points'])} points from {len(systems)} systems: {', '.join(systems)}")
    if outcome["summary"]:
        print(format_summary(outcome["summary"]))
    print(format_missing(outcome["missing"]))
    for path in outcome["files"]:
        print(f"wrote {path}")
    return 0


def add_ladder(sub) -> None:
    p = sub.add_parser("ladder")
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--split", default="test", choices=["train", "test"])
    add_limit_option(p, default=2000)
    p.add_argument("--codec", nargs="+", default=["all"], metavar="NAME")
    p.add_argument("--setting", nargs="+", metavar="S", help="settings (one codec); default: its ladder")
    p.add_argument("--workers", type=int, default=1)
    add_data_options(p, download=False)
    p.add_argument("--json", default=None, help="write the table as JSON to this file")
    add_progress_option(p)
    p.set_defaults(run=run_ladder)


def run_ladder(args) -> int:
    import numpy as np

    from jointcodec.codecs import get_codec
    from jointcodec.codecs.rate import measure_ladder
    from jointcodec.data import load_split
    from jointcodec.errors import ConfigError

    codecs = [get_codec(name) for name in _codec_names(args.codec)]
    if args.setting and len(codecs) != 1:
        raise ConfigError("--setting applies to one codec")
    settings = [codecs[0].check_setting(s) for s in args.setting] if args.setting else None
    data = load_split(args.dataset, args.split, args.data_dir)
    if args.limit:
        data = data.subset(slice(0, args.limit))
    images = np.ascontiguousarray(data.all_images("jointcodec ladder").permute(0, 2, 3, 1).numpy())
    table = {}
    print(f"{'codec':9s} {'setting':>8s} {'payload bpp':>11s} {'file bpp':>9s} {'overhead B':>10s} "
          f"{'PSNR dB':>8s} {'enc ms':>7s} {'dec ms':>7s}  (median CPU time per image)")
    for codec in codecs:
        rows = measure_ladder(codec, images, tuple(settings) if settings else None, args.workers, args.progress)
        table[codec.name] = {"description": codec.description, "library": codec.library(),
                             "setting_name": codec.setting_name, "rows": rows, "command": _command()}
        for r in rows:
            print(f"{codec.name:9s} {codec.format_setting(r['setting']):>8s} {r['payload_bpp']:11.4f} "
                  f"{r['file_bpp']:9.4f} {r['overhead_bytes_mean']:10.1f} {r['psnr_db']:8.2f} "
                  f"{r['encode_cpu_ms_median']:7.2f} {r['decode_cpu_ms_median']:7.2f}", flush=True)
    if "jpeg420" in table:
        from jointcodec.codecs.jpeg import JPEG420_REFERENCE_BPP

        for r in table["jpeg420"]["rows"]:
            if r["setting"] in JPEG420_REFERENCE_BPP:
                r["reference_bpp"] = reference = JPEG420_REFERENCE_BPP[r["setting"]]
                print(f"jpeg420 Q{r['setting']}: {r['payload_bpp']:.3f} bpp here, {reference:.2f} in the reference "
                      "table (docs/baselines.md)")
    if args.json:
        record = {"dataset": args.dataset, "split": args.split, "n_images": len(images), "workers": args.workers,
                  "codecs": table}
        merge_ladders(Path(args.json), record)
        print(f"wrote {args.json}")
    return 0


def merge_ladders(path: Path, record: dict) -> None:
    """Write ``record`` to ``path``, keeping what the file already holds for the same images: rows of other
    codecs and settings stay, each codec entry with the command that measured it."""
    import json

    from jointcodec.utils import atomic_write_json

    old = json.loads(path.read_text()) if path.is_file() else {}
    same = all(old.get(k) == record[k] for k in ("dataset", "split", "n_images"))
    codecs = dict(old.get("codecs", {})) if same else {}
    for name, entry in record["codecs"].items():
        previous = codecs.get(name, {})
        kept = [r for r in previous.get("rows", []) if r["setting"] not in {n["setting"] for n in entry["rows"]}]
        commands = [c for c in previous.get("commands", []) if c != entry["command"]]
        rows = sorted(kept + entry["rows"], key=lambda r: r["payload_bpp"])
        codecs[name] = {**{k: v for k, v in entry.items() if k != "command"}, "rows": rows,
                        "commands": commands + [entry["command"]]}
    atomic_write_json(path, {**record, "codecs": codecs})


__all__ = ["add_baseline", "add_compare", "add_ladder", "merge_ladders"]
