"""The paper-style plot: top-1 against payload bpp."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jointcodec.baselines.compare.bd import frontier
from jointcodec.baselines.compare.points import CLEAN, JOINTCODEC, V1, Point, codec_curve, codec_names, family, ours_of
from jointcodec.baselines.paper import paper_points
from jointcodec.utils import atomic_write

COLORS = {JOINTCODEC: "#d62728", "jpeg420": "#1f77b4", "jpeg444": "#17becf", "jpeg2000": "#9467bd",
          "webp": "#2ca02c", "hevc": "#ff7f0e", "heif": "#bcbd22", "avif": "#8c564b", "jpegxl": "#e377c2"}
OTHER_COLOR = "#7f7f7f"
X_MAX = 2.6  # the plot's bpp range: the paper's, and where every system's curve lies
HOLLOW = {"fine-tuned": "s", "scratch": "^", "clean-receiver": "D", V1: "v"}  # plot markers of the non-robust protocols


def _color(system: str) -> str:
    return COLORS.get(family(system), OTHER_COLOR)


def _plot_codecs(ax, points: list[Point]) -> None:
    """Each codec: its best-of-protocols curve as a line, robust points as filled circles on or under it,
    the other protocols' points as hollow markers of the same colour."""
    for codec in codec_names(points):
        color = _color(codec)
        curve = codec_curve(points, codec)
        ax.plot([p.payload_bpp for p in curve], [p.top1 for p in curve], color=color, lw=1.0, label=codec)
        robust = [p for p in points if p.system == codec and p.protocol == "robust"]
        ax.plot([p.payload_bpp for p in robust], [p.top1 for p in robust], ls="none", marker="o", ms=4, color=color)
        for protocol, marker in HOLLOW.items():
            mine = [p for p in points if p.system == codec and p.protocol == protocol]
            ax.plot([p.payload_bpp for p in mine], [p.top1 for p in mine], ls="none", marker=marker, ms=5,
                    mfc="none", mew=1.0, color=color)
    present = {p.protocol for p in points}
    for protocol, marker in [("robust", "o")] + list(HOLLOW.items()):
        if protocol in present:  # legend keys for the marker shapes, in grey
            ax.plot([], [], ls="none", marker=marker, ms=5, color="#555555", mfc="#555555" if protocol == "robust"
                    else "none", label=f"marker: {protocol}")


def _plot_ours(ax, points: list[Point]) -> None:
    """jointcodec in red: its frontier as a line, each system with its own marker."""
    ours = ours_of(points)
    rates, accs = frontier(ours)
    if len(rates) > 1:
        ax.plot(np.exp(rates), accs, color=COLORS[JOINTCODEC], lw=1.5)
    for system, marker in zip(sorted({p.system for p in ours}), "D*PXhp8", strict=False):
        mine = sorted((p for p in ours if p.system == system), key=lambda p: p.payload_bpp)
        ax.plot([p.payload_bpp for p in mine], [p.top1 for p in mine], ls="none", marker=marker, ms=6,
                color=COLORS[JOINTCODEC], label=system)


def _plot_clean(ax, points: list[Point]) -> None:
    """The receiver on uncoded images: a dashed ceiling labelled with its accuracy."""
    clean = [p for p in points if p.protocol == CLEAN]
    for p in clean:
        who = f" ({p.receiver})" if len({q.receiver for q in clean}) > 1 else ""
        ax.axhline(p.top1, ls="--", lw=1.0, color="#333333")
        ax.annotate(f"clean{who}: {p.top1:.1f}%", (X_MAX, p.top1), xytext=(-4, 3), textcoords="offset points",
                    ha="right", va="bottom", fontsize=7, color="#333333")


def _plot_paper(ax, dataset: str) -> None:
    """The paper's figures as small grey markers, one shape per paper system."""
    refs = paper_points(dataset)
    for name, marker in zip(dict.fromkeys(r["paper_system"] for r in refs), "osD^v<>ph", strict=False):
        mine = [r for r in refs if r["paper_system"] == name]
        ax.plot([r["payload_bpp"] for r in mine], [r["top1"] for r in mine], ls="none", marker=marker, ms=3.5,
                color="#9a9a9a", label=f"paper: {name}")


def plot(points: list[Point], dataset: str, out_dir: Path) -> tuple[Path, Path]:
    """Top-1 against payload bpp: codec curves, jointcodec in red, the clean ceiling, the paper's points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "jointcodec"  # reproducible SVG ids
    fig, ax = plt.subplots(figsize=(8.0, 5.6))
    _plot_paper(ax, dataset)
    _plot_codecs(ax, points)
    _plot_ours(ax, points)
    _plot_clean(ax, points)
    ax.set_xlim(0, X_MAX)
    ax.set_xlabel("payload bits per pixel (real bytes; classic codecs without shared headers/tables)")
    ax.set_ylabel("top-1 accuracy on the test split (%)")
    ax.set_title(f"{dataset}: accuracy against rate (codec lines: best protocol per setting)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6.5, ncol=2, loc="lower right")
    fig.tight_layout()
    png, svg = out_dir / "rate_accuracy.png", out_dir / "rate_accuracy.svg"
    atomic_write(png, lambda tmp: fig.savefig(tmp, format="png", dpi=150))
    atomic_write(svg, lambda tmp: fig.savefig(tmp, format="svg", metadata={"Date": None}))
    plt.close(fig)
    return png, svg


