"""BD-style numbers (after Bjontegaard, but piecewise linear on the measured points instead of a cubic fit,
because a handful of noisy accuracy points make a cubic swing): each system's curve is its Pareto frontier
(the points that no cheaper point of the same system beats), accuracy linear in log bpp between points.

* BD-accuracy (``accuracy_gain_points``): the mean of ``top1_jointcodec(r) - top1_codec(r)`` over the log
  bpp range both curves span;
* BD-rate (``bd_rate_percent``): ``exp(mean(log bpp_jointcodec(a) - log bpp_codec(a))) - 1`` over the
  accuracies both curves reach, in percent; negative means jointcodec needs fewer bits (the usual sign).
  ``bpp_saving_percent`` is the bits saved, ``-BD-rate``.

The means are exact integrals of the piecewise-linear differences. When the shared range shrinks to one
value (jointcodec, or the codec, is a single point inside the other's span) the numbers are taken at that
value: the accuracy lead at that rate and the bits saved at that accuracy. Where the curves do not
overlap the number is absent, not extrapolated, and the row says why.
"""

from __future__ import annotations

import math

import numpy as np

from jointcodec.baselines.compare.points import Point


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


# ---------------------------------------------------------------------------------------------- BD numbers


def _shared(x1: np.ndarray, x2: np.ndarray) -> tuple[float, float] | None:
    """The common range of two ascending coordinates; a single value where they only touch (one of them a
    single point inside the other's span); None where they do not meet or one is empty."""
    if not len(x1) or not len(x2):
        return None
    lo, hi = max(x1[0], x2[0]), min(x1[-1], x2[-1])
    return (float(lo), float(hi)) if lo <= hi else None


def _mean_difference(x1: np.ndarray, y1: np.ndarray, x2: np.ndarray, y2: np.ndarray, lo: float, hi: float) -> float:
    """The mean of ``y1(x) - y2(x)`` over [lo, hi], both piecewise linear: trapezoids on the union of the
    breakpoints integrate it exactly. At lo == hi, the difference there."""
    xs = np.unique(np.concatenate([[lo, hi], x1[(x1 > lo) & (x1 < hi)], x2[(x2 > lo) & (x2 < hi)]]))
    diff = np.interp(xs, x1, y1) - np.interp(xs, x2, y2)
    if hi == lo:
        return float(diff[0])
    return float(np.sum((diff[1:] + diff[:-1]) / 2 * np.diff(xs)) / (hi - lo))


def bd_compare(ours: list[Point], theirs: list[Point]) -> dict:
    """BD-style bits saved (percent, ``-BD-rate``) and accuracy gain (points, BD-accuracy) of ``ours`` over
    ``theirs``, with the shared bpp and accuracy ranges they were taken over (None where absent)."""
    r1, a1 = frontier(ours)
    r2, a2 = frontier(theirs)  # both coordinates ascend along a frontier
    out: dict = {"bpp_saving_percent": None, "accuracy_gain_points": None, "rate_overlap_bpp": None,
                 "accuracy_overlap": None}
    if rates := _shared(r1, r2):
        out["accuracy_gain_points"] = _mean_difference(r1, a1, r2, a2, *rates)
        out["rate_overlap_bpp"] = [math.exp(rates[0]), math.exp(rates[1])]
    if accuracies := _shared(a1, a2):
        log_ratio = _mean_difference(a1, r1, a2, r2, *accuracies)
        out["bpp_saving_percent"] = float(100 * (1 - math.exp(log_ratio)))
        out["accuracy_overlap"] = list(accuracies)
    return out


def _span(values: np.ndarray, fmt: str, unit: str) -> str:
    if not len(values):
        return "no points"
    if len(values) == 1:
        return f"{values[0]:{fmt}}{unit} only"
    return f"{values[0]:{fmt}}-{values[-1]:{fmt}}{unit}"


def _why_absent(ours: list[Point], theirs: list[Point], numbers: dict, codec: str) -> list[str]:
    """One line per absent number: the two spans that do not meet."""
    r1, a1 = frontier(ours)
    r2, a2 = frontier(theirs)
    notes = []
    if numbers["accuracy_gain_points"] is None:
        notes.append(f"no BD-accuracy: no shared rate (jointcodec {_span(np.exp(r1), '.2f', ' bpp')}, "
                     f"{codec} {_span(np.exp(r2), '.2f', ' bpp')})")
    if numbers["bpp_saving_percent"] is None:
        notes.append(f"no BD-rate: no shared accuracy (jointcodec {_span(a1, '.1f', ' %')}, "
                     f"{codec} {_span(a2, '.1f', ' %')})")
    return notes


def bd_row(ours: list[Point], theirs: list[Point], codec: str) -> dict:
    """:func:`bd_compare` plus BD-rate, whether each number is a mean over a range or taken at one value,
    and why any number is absent."""
    numbers = bd_compare(ours, theirs)
    saving = numbers["bpp_saving_percent"]

    def kind(overlap: list[float] | None) -> str | None:
        return None if overlap is None else "at one value" if overlap[0] == overlap[1] else "mean over range"

    return {**numbers, "bd_rate_percent": None if saving is None else -saving,
            "accuracy_kind": kind(numbers["rate_overlap_bpp"]), "rate_kind": kind(numbers["accuracy_overlap"]),
            "notes": _why_absent(ours, theirs, numbers, codec)}


