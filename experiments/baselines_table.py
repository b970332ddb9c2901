"""Markdown tables of a protocol-v2 baseline folder: every point with its CPU time, the receivers' training
cost, the total CPU-hours, and the calibration table (robust / fine-tuned / scratch at one setting).

    python experiments/baselines_table.py docs/results/cifar10/baselines [--calibrate jpeg420:15]
        [--write docs/baselines.md]

Reads the point files that ``jointcodec sweep`` writes; prints Markdown for docs/baselines.md, or with ``--write``
replaces the block between ``<!-- baselines_table DATASET begin -->`` and ``... end -->`` in that file (DATASET is
the folder's parent's name), so the page always shows what the point files say.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from jointcodec.utils import atomic_write

PROTOCOLS = ("clean", "robust", "clean-receiver", "fine-tuned", "scratch")


def load_points(folder: Path) -> list[dict]:
    points = []
    for path in sorted(folder.glob("*/*.json")):
        if path.parent.name == "receivers":
            continue
        record = json.loads(path.read_text())
        record["_file"] = path.relative_to(folder).as_posix()
        points.append(record)
    return points


def setting_order(record: dict) -> tuple:
    return (record["system"], PROTOCOLS.index(record["protocol"]) if record["protocol"] in PROTOCOLS else 9,
            record["payload_bpp"])


def points_table(points: list[dict]) -> str:
    lines = ["| system | setting | protocol | payload bpp | file bpp | PSNR dB | top-1 % | CPU min | of it coding |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(points, key=setting_order):
        psnr = f"{r['psnr_db']:.2f}" if r.get("psnr_db") is not None else ""
        coding = f"{r['coding_cpu_s'] / 60:.1f}" if r.get("coding_cpu_s") is not None else ""
        protocol = r["protocol"] + (f" (lr {r['lr']:g})" if r["protocol"] == "fine-tuned" and "lr" in r else "")
        lines.append(f"| `{r['system']}` | {r['setting']} | {protocol} | {r['payload_bpp']:.3f} | "
                     f"{r['file_bpp']:.3f} | {psnr} | {r['top1']:.2f} | {r['cpu_s'] / 60:.1f} | {coding} |")
    return "\n".join(lines)


def receivers_table(folder: Path) -> tuple[str, float]:
    lines = ["| receiver run | starts from | epochs | best val top-1 % | train CPU min | pool coding CPU min |",
             "|---|---|---|---|---|---|"]
    total = 0.0
    pools_paid: set[str] = set()  # a pool coded once is cached: a second receiver on it does not pay again
    for path in sorted((folder / "receivers").glob("*.json"), key=lambda p: p.stem):  # robust before robust-*
        r = json.loads(path.read_text())
        pool = r.get("pool_coding_cpu_s")
        signature = json.dumps([(e["codec"], e["setting"], e["n_images"]) for e in r.get("pool", [])])
        shared = pool is not None and signature in pools_paid
        pools_paid.add(signature)
        total += r["cpu_s"] + (0.0 if shared or pool is None else pool)
        vals = [h.get("val_top1") for h in r["history"] if h.get("val_top1") is not None]
        pool_cell = "" if pool is None else "shared (cached)" if shared else f"{pool / 60:.1f}"
        start = Path(r["init_from"]).name + " receiver" if r.get("init_from") else "scratch"
        lines.append(f"| {path.stem} | {start} | {len(r['history'])} | {max(vals):.2f} | {r['cpu_s'] / 60:.1f} | "
                     f"{pool_cell} |")
    return "\n".join(lines), total


def calibration(points: list[dict], system: str, setting: str) -> str:
    rows = {r["protocol"]: r for r in points if r["system"] == system and str(r["setting"]) == setting}
    lines = [f"| `{system}` {setting} | payload bpp | top-1 % | epochs | CPU min |", "|---|---|---|---|---|"]
    for protocol in ("robust", "fine-tuned", "scratch"):
        r = rows.get(protocol)
        if r is None:
            lines.append(f"| {protocol} | | not run yet | | |")
            continue
        epochs = r.get("epochs", "")
        if protocol == "fine-tuned" and r.get("chosen_epoch") is not None:
            epochs = f"{r['chosen_epoch']} of {epochs} (chosen on validation)"
        lines.append(f"| {protocol} | {r['payload_bpp']:.3f} | {r['top1']:.2f} | {epochs} | {r['cpu_s'] / 60:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--calibrate", default="jpeg420:15",
                        help="CODEC:SETTING of the calibration table, or 'none' (a data set without one)")
    parser.add_argument("--write", type=Path, default=None, metavar="DOC",
                        help="replace the dataset's generated block in this Markdown file instead of printing")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        print(f"baselines_table: error: {args.folder} is not a folder", file=sys.stderr)
        return 1
    points = load_points(args.folder)
    table, receivers_cpu = receivers_table(args.folder)
    points_cpu = sum(r["cpu_s"] for r in points if r["protocol"] != "clean")  # clean's cost is its receiver's
    system, _, setting = args.calibrate.partition(":")
    calibration_table = [] if args.calibrate == "none" else [calibration(points, system, setting), ""]
    markdown = "\n".join([
        points_table(points), "", table, "", *calibration_table,
        f"CPU time: receivers {receivers_cpu / 3600:.2f} h (training and pool coding), points "
        f"{points_cpu / 3600:.2f} h (coding, fine-tuning, testing): {(receivers_cpu + points_cpu) / 3600:.2f} "
        f"CPU-hours in all, {len(points)} points."])
    if args.write is None:
        print(markdown)
        return 0
    return write_block(args.write, args.folder.resolve().parent.name, markdown)


def write_block(doc: Path, dataset: str, markdown: str) -> int:
    begin, end = f"<!-- baselines_table {dataset} begin -->", f"<!-- baselines_table {dataset} end -->"
    text = doc.read_text()
    if begin not in text or end not in text:
        print(f"baselines_table: error: {doc} has no '{begin}' ... '{end}' block", file=sys.stderr)
        return 1
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    atomic_write(doc, lambda tmp: Path(tmp).write_text(f"{head}{begin}\n{markdown}\n{end}{tail}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
