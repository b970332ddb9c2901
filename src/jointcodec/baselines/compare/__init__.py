"""The rate-accuracy comparison: every measured point in one table, the paper-style plot, and BD-style
numbers of jointcodec against each classic codec.

``points`` reads the measured points and builds each system's curve, ``bd`` computes the BD-style numbers,
``report`` the summary rows, their text and the table files, ``plot`` the figure.
"""

from __future__ import annotations

from pathlib import Path

from jointcodec.baselines.compare.bd import accuracy_at, bd_compare, bd_row, frontier
from jointcodec.baselines.compare.plot import plot
from jointcodec.baselines.compare.points import (
    CLEAN,
    CODEC_PROTOCOLS,
    COLUMNS,
    JOINTCODEC,
    Point,
    codec_curve,
    codec_points,
    jointcodec_points,
)
from jointcodec.baselines.compare.report import (
    default_point,
    format_missing,
    format_summary,
    missing_points,
    summary,
    write_table,
)
from jointcodec.errors import DataError


def compare(dataset: str, results: str | Path, jointcodec: list[str | Path], out: str | Path,
            command: str = "", draw: bool = True, codecs: list[str] | None = None) -> dict:
    """Collect, tabulate, plot and summarise; returns {points, summary, missing, files}. ``codecs``: the codecs
    whose missing ladder settings are listed (default: all)."""
    points = jointcodec_points(jointcodec, dataset) + codec_points(results, dataset)
    if not points:
        raise DataError(f"no results for {dataset}: no baseline points under {results} and no coded evaluations "
                        f"among {[str(p) for p in jointcodec] or 'the --jointcodec files (none given)'}")
    out_dir = Path(out) / dataset
    rows, missing = summary(points), missing_points(points, codecs)
    files = list(write_table(points, out_dir, dataset, {"summary": rows, "missing": missing, "command": command}))
    if draw:
        files += plot(points, dataset, out_dir)
    return {"points": points, "summary": rows, "missing": missing, "files": files}


__all__ = ["CLEAN", "CODEC_PROTOCOLS", "COLUMNS", "JOINTCODEC", "Point", "accuracy_at", "bd_compare", "bd_row",
           "codec_curve", "codec_points", "compare", "default_point", "format_missing", "format_summary", "frontier",
           "jointcodec_points", "missing_points", "plot", "summary", "write_table"]
