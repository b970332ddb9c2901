"""The rate-accuracy comparison: every measured point in one table, the paper-style plot, and BD-style
savings of jointcodec against each classic codec.

jointcodec points come from ``jointcodec evaluate --coded --json FILE`` records (rates from real
``.jcc`` files: ``bpp_payload``, ``bpp_file``; accuracy from the decoded files, ``top1_coded``); codec
points from the baseline protocol's ``result.json`` files.

BD-style numbers (after Bjontegaard's BD-rate, but piecewise linear on the measured points instead of
a cubic fit): each system's curve is its Pareto frontier (the points that no cheaper point of the same
system beats), accuracy interpolated linearly in log bpp. *bpp saving at equal accuracy* is
``1 - exp(mean(log bpp_jointcodec(a) - log bpp_codec(a)))`` over the accuracies both curves reach;
*accuracy gain at equal bpp* is the mean of ``top1_jointcodec(r) - top1_codec(r)`` over the rates both
curves span. Where the curves do not overlap the number is absent, not extrapolated.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from jointcodec.baselines.paper import paper_points
from jointcodec.codecs import CODECS
from jointcodec.errors import DataError
from jointcodec.utils import atomic_write, atomic_write_json

JOINTCODEC = "jointcodec"
SYSTEMS = [f"{JOINTCODEC}-L{levels}" for levels in (2, 3, 6)] + list(CODECS)
COLUMNS = ["system", "setting", "payload_bpp", "file_bpp", "top1", "top5", "psnr_db", "n_test", "epochs", "source"]
COLORS = {JOINTCODEC: "#d62728", "jpeg420": "#1f77b4", "jpeg444": "#17becf", "jpeg2000": "#9467bd",
          "webp": "#2ca02c", "hevc": "#ff7f0e", "avif": "#8c564b", "jpegxl": "#e377c2"}
GRID = 200  # interpolation points over an overlap


@dataclass
class Point:
    system: str
    setting: str
    payload_bpp: float
    file_bpp: float | None
    top1: float
    top5: float | None = None
    psnr_db: float | None = None
    n_test: int | None = None
    epochs: int | None = None
    source: str = ""


def _json_files(paths: list[str | Path]) -> list[Path]:
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(path.rglob("*.json"))
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"{path}: no such file or directory")
    return files


def _read(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def codec_points(results: str | Path, dataset: str) -> list[Point]:
    """Baseline results (``RESULTS/<dataset>/<codec>/<setting>/result.json``) for ``dataset``."""
    points = []
    for path in sorted((Path(results) / dataset).glob("*/*/result.json")):
        r = _read(path)
        if r and r.get("system") in CODECS and r.get("dataset") == dataset:
            points.append(Point(r["system"], str(r["setting"]), r["payload_bpp"], r.get("file_bpp"), r["top1"],
                                r.get("top5"), r.get("psnr_db"), r.get("n_test"), r.get("epochs"), str(path)))
    return points


def jointcodec_points(paths: list[str | Path], dataset: str) -> list[Point]:
    """``evaluate --coded --json`` records for ``dataset`` (files, or folders searched for them)."""
    points = []
    for path in _json_files(paths):
        r = _read(path)
        if not r or "bpp_payload" not in r or r.get("dataset") != dataset:
            continue  # not a coded evaluation of this data set (e.g. a plain evaluate, a training log)
        points.append(Point(f"{JOINTCODEC}-L{r['levels']}", str(r.get("checkpoint") or r.get("preset") or path.stem),
                            r["bpp_payload"], r.get("bpp_file"), r.get("top1_coded", r["top1"]),
                            r.get("top5_coded", r.get("top5")), None, r.get("n_images"), r.get("epochs"), str(path)))
    return points


def family(system: str) -> str:
    return JOINTCODEC if system.startswith(JOINTCODEC) else system


def frontier(points: list[Point]) -> tuple[np.ndarray, np.ndarray]:
    """(log bpp, top-1) of the Pareto frontier: sorted by rate, keeping points that raise accuracy."""
    rates, accs = [], []
    for p in sorted(points, key=lambda p: (p.payload_bpp, -p.top1)):
        if p.payload_bpp > 0 and (not accs or p.top1 > accs[-1]):
            rates.append(math.log(p.payload_bpp))
            accs.append(p.top1)
    return np.array(rates), np.array(accs)


def accuracy_at(points: list[Point], bpp: float) -> float | None:
    """Interpolated top-1 of a system's frontier at ``bpp``; None outside its measured range."""
    rates, accs = frontier(points)
    if not len(rates) or not rates[0] <= math.log(bpp) <= rates[-1]:
        return None
    return float(np.interp(math.log(bpp), rates, accs))


def _overlap(x1: np.ndarray, x2: np.ndarray) -> tuple[float, float] | None:
    """The common range of two ascending frontier coordinates (None if either has < 2 points)."""
    if len(x1) < 2 or len(x2) < 2:
        return None
    lo, hi = max(x1[0], x2[0]), min(x1[-1], x2[-1])
    return (float(lo), float(hi)) if lo < hi else None


def bd_compare(ours: list[Point], theirs: list[Point]) -> dict:
    """BD-style bpp saving (percent) and accuracy gain (points) of ``ours`` over ``theirs``."""
    r1, a1 = frontier(ours)
    r2, a2 = frontier(theirs)  # both coordinates ascend along a frontier
    out: dict = {"bpp_saving_percent": None, "accuracy_gain_points": None, "rate_overlap_bpp": None,
                 "accuracy_overlap": None}
    if rates := _overlap(r1, r2):
        grid = np.linspace(*rates, GRID)
        out["accuracy_gain_points"] = float(np.mean(np.interp(grid, r1, a1) - np.interp(grid, r2, a2)))
        out["rate_overlap_bpp"] = [math.exp(rates[0]), math.exp(rates[1])]
    if accuracies := _overlap(a1, a2):
        grid = np.linspace(*accuracies, GRID)
        log_ratio = np.mean(np.interp(grid, a1, r1) - np.interp(grid, a2, r2))
        out["bpp_saving_percent"] = float(100 * (1 - math.exp(log_ratio)))
        out["accuracy_overlap"] = list(accuracies)
    return out


def summary(points: list[Point]) -> list[dict]:
    """For each codec: the BD-style numbers, and the gain at every jointcodec point at <= 1.0 bpp."""
    ours = [p for p in points if family(p.system) == JOINTCODEC]
    rows = []
    for codec in CODECS:
        theirs = [p for p in points if p.system == codec]
        if not theirs or not ours:
            continue
        at_points = []
        for p in sorted(ours, key=lambda p: p.payload_bpp):
            if p.payload_bpp <= 1.0:
                acc = accuracy_at(theirs, p.payload_bpp)
                at_points.append({"system": p.system, "payload_bpp": p.payload_bpp, "top1": p.top1,
                                  "codec_top1": acc, "gain_points": None if acc is None else p.top1 - acc})
        rows.append({"codec": codec, **bd_compare(ours, theirs), "at_or_below_1bpp": at_points,
                     "codec_min_bpp": min(p.payload_bpp for p in theirs)})
    return rows


def format_summary(rows: list[dict]) -> str:
    def cell(value: float | None, fmt: str) -> str:
        return "n/a" if value is None else format(value, fmt)

    lines = [f"{'codec':9s} {'bpp saving at equal top-1':>26s} {'top-1 gain at equal bpp':>24s}  "
             "gain at the jointcodec points <= 1.0 bpp"]
    for r in rows:
        gains = ", ".join(f"{p['system']} at {p['payload_bpp']:.2f} bpp: "
                          + (f"{p['gain_points']:+.1f} points" if p["gain_points"] is not None
                             else f"n/a (codec starts at {r['codec_min_bpp']:.2f} bpp)")
                          for p in r["at_or_below_1bpp"]) or "-"
        saving = cell(r["bpp_saving_percent"], ".1f") + ("%" if r["bpp_saving_percent"] is not None else "")
        lines.append(f"{r['codec']:9s} {saving:>26s} {cell(r['accuracy_gain_points'], '+.2f'):>24s}  {gains}")
    return "\n".join(lines)


def write_table(points: list[Point], out_dir: Path, dataset: str, extra: dict) -> tuple[Path, Path]:
    order = {s: i for i, s in enumerate(SYSTEMS)}
    points = sorted(points, key=lambda p: (order.get(p.system, len(order)), p.payload_bpp))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(asdict(p) for p in points)
    csv_path, json_path = out_dir / "rate_accuracy.csv", out_dir / "rate_accuracy.json"
    atomic_write(csv_path, lambda tmp: Path(tmp).write_text(buffer.getvalue()))
    atomic_write_json(json_path, {"dataset": dataset, "columns": COLUMNS, "points": [asdict(p) for p in points],
                                  "paper": paper_points(dataset), **extra})
    return csv_path, json_path


def plot(points: list[Point], dataset: str, out_dir: Path) -> tuple[Path, Path]:
    """Top-1 against payload bpp, one curve per system, the paper's points as hollow markers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "jointcodec"  # reproducible SVG ids
    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    markers = dict(zip(SYSTEMS, "o^sDv<>phX", strict=False))
    ours = sorted((p for p in points if family(p.system) == JOINTCODEC), key=lambda p: p.payload_bpp)
    if len(ours) > 1:  # one model per L: join them into jointcodec's curve, each L keeps its own marker
        ax.plot([p.payload_bpp for p in ours], [p.top1 for p in ours], color=COLORS[JOINTCODEC], lw=1.5)
    for system in [s for s in SYSTEMS if any(p.system == s for p in points)]:
        mine = sorted((p for p in points if p.system == system), key=lambda p: p.payload_bpp)
        ax.plot([p.payload_bpp for p in mine], [p.top1 for p in mine], marker=markers[system], ms=5,
                color=COLORS[family(system)], label=system, lw=1.0,
                ls="none" if family(system) == JOINTCODEC else "-")
    seen: dict[str, int] = {}
    for name in dict.fromkeys(r["paper_system"] for r in paper_points(dataset)):
        refs = [r for r in paper_points(dataset) if r["paper_system"] == name]
        shape = "osD"[seen.get(refs[0]["system"], 0) % 3]  # two paper systems of one colour (AE-V1, AE-V2)
        seen[refs[0]["system"]] = seen.get(refs[0]["system"], 0) + 1
        ax.plot([r["payload_bpp"] for r in refs], [r["top1"] for r in refs], ls="none", marker=shape, ms=7,
                mfc="none", mew=1.2, color=COLORS[refs[0]["system"]], label=f"paper: {name}")
    ax.set_xlabel("payload bits per pixel (real bytes; classic codecs without shared headers/tables)")
    ax.set_ylabel("top-1 accuracy on the test split (%)")
    ax.set_title(f"{dataset}: accuracy against rate, one protocol for every system")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    png, svg = out_dir / "rate_accuracy.png", out_dir / "rate_accuracy.svg"
    atomic_write(png, lambda tmp: fig.savefig(tmp, format="png", dpi=150))
    atomic_write(svg, lambda tmp: fig.savefig(tmp, format="svg", metadata={"Date": None}))
    plt.close(fig)
    return png, svg


def compare(dataset: str, results: str | Path, jointcodec: list[str | Path], out: str | Path,
            command: str = "", draw: bool = True) -> dict:
    """Collect, tabulate, plot and summarise; returns {points, summary, files}."""
    points = jointcodec_points(jointcodec, dataset) + codec_points(results, dataset)
    if not points:
        raise DataError(f"no results for {dataset}: nothing under {Path(results) / dataset}/*/*/result.json "
                        f"and no coded evaluations among {[str(p) for p in jointcodec] or 'the --jointcodec files'}")
    out_dir = Path(out) / dataset
    rows = summary(points)
    files = list(write_table(points, out_dir, dataset, {"summary": rows, "command": command}))
    if draw:
        files += plot(points, dataset, out_dir)
    return {"points": points, "summary": rows, "files": files}
