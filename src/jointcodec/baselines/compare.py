"""The rate-accuracy comparison: every measured point in one table, the paper-style plot, and BD-style
numbers of jointcodec against each classic codec.

Inputs
------
* codec points, protocol v2: one JSON file per point, ``RESULTS/<system>/<setting>-<protocol>.json``
  (committed under ``docs/results/<dataset>/baselines``), protocol ``robust``, ``fine-tuned``, ``scratch``,
  or ``clean`` (the receiver on uncoded images: the accuracy ceiling);
* codec points, protocol v1 (``RESULTS/<dataset>/<codec>/<setting>/result.json``), read where present and
  marked ``v1-scratch`` (the receiver was trained from scratch on decoded images);
* jointcodec points: ``jointcodec evaluate --coded --json FILE`` records (rates from real ``.jcc`` files:
  ``bpp_payload``, ``bpp_file``; accuracy from the decoded files, ``top1_coded``), protocol ``joint``.

A codec's number at a setting is the best top-1 over its protocols (robust, fine-tuned, scratch, v1):
each protocol is a fair way to read that codec's images, so the codec gets the better one.

BD-style numbers (after Bjontegaard, but piecewise linear on the measured points instead of a cubic fit,
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
CLEAN = "clean"
JOINT = "joint"  # the protocol of jointcodec's own points
V1 = "v1-scratch"
V2_PROTOCOLS = ("robust", "fine-tuned", "scratch", CLEAN)
CODEC_PROTOCOLS = ("robust", "fine-tuned", "scratch", V1)  # in order of preference when accuracies tie
PROTOCOL_ORDER = (JOINT,) + CODEC_PROTOCOLS + (CLEAN,)  # the table's order within a system
COLUMNS = ["system", "setting", "protocol", "receiver", "payload_bpp", "file_bpp", "top1", "top5", "psnr_db",
           "n_test", "epochs", "cpu_s", "source"]
COLORS = {JOINTCODEC: "#d62728", "jpeg420": "#1f77b4", "jpeg444": "#17becf", "jpeg2000": "#9467bd",
          "webp": "#2ca02c", "hevc": "#ff7f0e", "heif": "#bcbd22", "avif": "#8c564b", "jpegxl": "#e377c2"}
OTHER_COLOR = "#7f7f7f"
X_MAX = 2.6  # the plot's bpp range: the paper's, and where every system's curve lies
HOLLOW = {"fine-tuned": "s", "scratch": "^", V1: "v"}  # plot markers of the non-robust protocols


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
    protocol: str = ""
    receiver: str = ""
    cpu_s: float | None = None


# ---------------------------------------------------------------------------------------------- reading


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
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def setting_key(setting: object) -> str:
    """A canonical text form of a codec setting, so that 25, 25.0 and "25" are one setting."""
    try:
        return f"{float(setting):g}"  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(setting)


def _v2_point(record: dict, path: Path) -> Point:
    missing = [k for k in ("system", "setting", "payload_bpp", "top1") if record.get(k) is None]
    if missing:
        raise DataError(f"{path}: a baseline point without {', '.join(missing)}")
    return Point(str(record["system"]), setting_key(record["setting"]), float(record["payload_bpp"]),
                 record.get("file_bpp"), float(record["top1"]), record.get("top5"), record.get("psnr_db"),
                 record.get("n_test"), record.get("epochs"), str(path), record["protocol"],
                 str(record.get("receiver") or ""), record.get("cpu_s"))


def _v1_point(record: dict, path: Path) -> Point:
    recipe = record.get("protocol")  # v1 stores its training recipe here; the receiver is the recipe's preset
    receiver = str(recipe.get("preset", "")) if isinstance(recipe, dict) else ""
    return Point(record["system"], setting_key(record["setting"]), record["payload_bpp"], record.get("file_bpp"),
                 record["top1"], record.get("top5"), record.get("psnr_db"), record.get("n_test"),
                 record.get("epochs"), str(path), V1, receiver)


def codec_points(results: str | Path, dataset: str) -> list[Point]:
    """The baseline points of ``dataset`` under ``results``: v2 point files anywhere below it, and v1
    ``<dataset>/<codec>/<setting>/result.json`` files. DataError if ``results`` does not exist."""
    root = Path(results)
    if not root.exists():
        raise DataError(f"no results for {dataset}: {root} does not exist (--results takes the folder of "
                        f"baseline point files, default docs/results/{dataset}/baselines)")
    points = []
    for path in _json_files([root]):
        record = _read(path)
        if not record or record.get("dataset") != dataset:
            continue  # another data set's point, or a file that is no point at all
        if path.name == "result.json" and record.get("system") in CODECS:
            points.append(_v1_point(record, path))
        elif record.get("protocol") in V2_PROTOCOLS:
            points.append(_v2_point(record, path))
    return points


def _zoo_models() -> dict[str, str]:
    from jointcodec import zoo

    return dict(zoo.MODELS)


def _default_preset() -> str | None:
    """The preset of the shipped default model (its config), None where it cannot be read."""
    from jointcodec import zoo

    config = _read(zoo.WEIGHTS_DIR / zoo.MODELS["default"] / "config.json") or {}
    preset = config.get("preset")
    return preset.get("name") if isinstance(preset, dict) else None


def jointcodec_system(record: dict) -> str:
    """``jointcodec-L<levels>``, or ``jointcodec-<name>`` for a shipped (zoo) model other than the default:
    such a model is a system of its own, not another point of the L curves."""
    zoo = _zoo_models()
    for key in ("checkpoint", "preset"):
        name = record.get(key)
        if isinstance(name, str) and name in zoo and zoo[name] != zoo["default"]:
            return f"{JOINTCODEC}-{name}"
    return f"{JOINTCODEC}-L{record['levels']}"


def jointcodec_points(paths: list[str | Path], dataset: str) -> list[Point]:
    """``evaluate --coded --json`` records for ``dataset`` (files, or folders searched for them)."""
    points = []
    for path in _json_files(paths):
        r = _read(path)
        if not r or "bpp_payload" not in r or r.get("dataset") != dataset:
            continue  # not a coded evaluation of this data set (e.g. a plain evaluate, a training log)
        points.append(Point(jointcodec_system(r), str(r.get("checkpoint") or r.get("preset") or path.stem),
                            r["bpp_payload"], r.get("bpp_file"), r.get("top1_coded", r["top1"]),
                            r.get("top5_coded", r.get("top5")), None, r.get("n_images"), r.get("epochs"), str(path),
                            JOINT, str(r.get("preset") or "")))
    return points


# ---------------------------------------------------------------------------------------------- curves


def family(system: str) -> str:
    return JOINTCODEC if system.startswith(JOINTCODEC) else system


def ours_of(points: list[Point]) -> list[Point]:
    return [p for p in points if family(p.system) == JOINTCODEC]


def codec_names(points: list[Point]) -> list[str]:
    """The codecs with points: CODECS order first, then any other system name (e.g. a new codec)."""
    # The receivers tested on clean images (system clean, any protocol) are a ceiling, not a codec.
    present = {p.system for p in points if p.protocol in CODEC_PROTOCOLS and p.system != CLEAN}
    return [c for c in CODECS if c in present] + sorted(present - set(CODECS))


def codec_curve(points: list[Point], codec: str) -> list[Point]:
    """Per setting, the codec's best point over its protocols (the issue's rule: the better one is the codec's
    number at that setting), sorted by rate."""
    best: dict[str, Point] = {}
    for p in points:
        if p.system != codec or p.protocol not in CODEC_PROTOCOLS:
            continue
        # Ties go to the earlier protocol in CODEC_PROTOCOLS (robust first).
        rank = (p.top1, -CODEC_PROTOCOLS.index(p.protocol))
        held = best.get(p.setting)
        if held is None or rank > (held.top1, -CODEC_PROTOCOLS.index(held.protocol)):
            best[p.setting] = p
    return sorted(best.values(), key=lambda p: p.payload_bpp)


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


def default_point(points: list[Point]) -> Point | None:
    """jointcodec's default operating point: the shipped default model's coded evaluation (checkpoint
    ``default`` with the default's preset; the one on most images), else the cheapest L=2 point, else the
    cheapest jointcodec point."""
    ours = sorted(ours_of(points), key=lambda p: p.payload_bpp)
    preset = _default_preset()
    shipped = [p for p in ours if p.setting == "default" and (preset is None or p.receiver == preset)]
    if shipped:
        return max(shipped, key=lambda p: (p.n_test or 0, p.top1))
    l2 = [p for p in ours if p.system == f"{JOINTCODEC}-L2"]
    return (l2 or ours or [None])[0]


def summary(points: list[Point]) -> list[dict]:
    """One row per codec: BD numbers against all jointcodec systems together (their Pareto frontier) and
    against each system, the lead at jointcodec's default rate, and the gain at every jointcodec point at
    <= 1.0 bpp. Empty without jointcodec points."""
    ours = ours_of(points)
    if not ours:
        return []
    default = default_point(points)
    systems = sorted({p.system for p in ours})
    rows = []
    for codec in codec_names(points):
        curve = codec_curve(points, codec)
        at_default = None
        if default is not None:
            acc = accuracy_at(curve, default.payload_bpp)
            at_default = {"system": default.system, "checkpoint": default.setting, "payload_bpp": default.payload_bpp,
                          "top1": default.top1, "codec_top1": acc, "lead_points": None if acc is None else
                          default.top1 - acc}
        rows.append({"codec": codec, **bd_row(ours, curve, codec),
                     "systems": [{"system": s, **bd_row([p for p in ours if p.system == s], curve, codec)}
                                 for s in systems],
                     "at_default": at_default, "at_or_below_1bpp": _gains_at_or_below_1bpp(ours, curve),
                     "codec_min_bpp": curve[0].payload_bpp,
                     "curve": [{"setting": p.setting, "protocol": p.protocol, "payload_bpp": p.payload_bpp,
                                "top1": p.top1} for p in curve]})
    return rows


def _gains_at_or_below_1bpp(ours: list[Point], curve: list[Point]) -> list[dict]:
    rows = []
    for p in sorted(ours, key=lambda p: p.payload_bpp):
        if p.payload_bpp <= 1.0:
            acc = accuracy_at(curve, p.payload_bpp)
            rows.append({"system": p.system, "payload_bpp": p.payload_bpp, "top1": p.top1, "codec_top1": acc,
                         "gain_points": None if acc is None else p.top1 - acc})
    return rows


def missing_points(points: list[Point]) -> list[dict]:
    """Every ladder setting (``CODECS[name].ladder``) that has no robust point yet."""
    have = {(p.system, p.setting) for p in points if p.protocol == "robust"}
    return [{"system": name, "setting": setting_key(s), "protocol": "robust"}
            for name, codec in CODECS.items() for s in codec.ladder if (name, setting_key(s)) not in have]


# ---------------------------------------------------------------------------------------------- text


def _cell(value: float | None, fmt: str, unit: str = "") -> str:
    return "n/a" if value is None else format(value, fmt) + unit


def _bits_saved(saving: float | None) -> str:
    """-BD-rate in words."""
    if saving is None:
        return "n/a"
    return f"{saving:.1f}% fewer bits" if saving >= 0 else f"{-saving:.1f}% more bits"


def format_summary(rows: list[dict]) -> str:
    """The table: per codec, both sides at jointcodec's default rate, then the BD numbers against all jointcodec
    systems together; below it the numbers per system and why any number is absent."""
    if not rows:
        return "no codec to compare with jointcodec"
    default = rows[0]["at_default"]
    where = (f"at {default['payload_bpp']:.3f} bpp ({default['system']}, {default['checkpoint']})"
             if default else "at jointcodec's default rate")
    lines = [f"BD numbers: jointcodec (all systems' frontier) against each codec's best-of-protocols curve; "
             f"accuracies {where}",
             f"{'codec':9s} {'codec top-1':>11s} {'ours top-1':>10s} {'lead':>7s} {'BD-accuracy':>11s} "
             f"{'BD-rate':>8s}  bits saved (jointcodec needs ...)"]
    notes = []
    for r in rows:
        d = r["at_default"] or {}
        lines.append(f"{r['codec']:9s} {_cell(d.get('codec_top1'), '.2f', '%'):>11s} "
                     f"{_cell(d.get('top1'), '.2f', '%'):>10s} {_cell(d.get('lead_points'), '+.2f'):>7s} "
                     f"{_cell(r['accuracy_gain_points'], '+.2f'):>11s} {_cell(r['bd_rate_percent'], '+.1f', '%'):>8s}"
                     f"  {_bits_saved(r['bpp_saving_percent'])}")
        if d and d.get("codec_top1") is None:
            notes.append(f"{r['codec']}: no top-1 at {d['payload_bpp']:.3f} bpp: its curve starts at "
                         f"{r['codec_min_bpp']:.3f} bpp (not extrapolated)")
        notes += [f"{r['codec']}: {n}" for n in r["notes"]]
    lines += ["", "per jointcodec system ('at one value': a single point, its lead at its rate and the bits saved "
              "at its accuracy):"]
    for r in rows:
        for s in r["systems"]:
            lines.append(f"  {s['system']:24s} vs {r['codec']:9s} BD-accuracy "
                         f"{_cell(s['accuracy_gain_points'], '+.2f'):>6s} ({s['accuracy_kind'] or 'absent'}), "
                         f"BD-rate {_cell(s['bd_rate_percent'], '+.1f', '%'):>7s} ({s['rate_kind'] or 'absent'}), "
                         f"{_bits_saved(s['bpp_saving_percent'])}")
            notes += [f"{s['system']} vs {r['codec']}: {n}" for n in s["notes"]]
    if notes:
        lines += ["", "absent numbers (n/a):"] + [f"  {n}" for n in notes]
    return "\n".join(lines)


def format_missing(missing: list[dict]) -> str:
    """Per codec, the ladder settings without a robust point."""
    if not missing:
        return "every ladder setting has a robust point"
    by_codec: dict[str, list[str]] = {}
    for m in missing:
        by_codec.setdefault(m["system"], []).append(m["setting"])
    lines = ["ladder settings without a robust point yet:"]
    for name, settings in by_codec.items():
        every = " (all)" if len(settings) == len(CODECS[name].ladder) else ""
        lines.append(f"  {name:9s} {CODECS[name].setting_name} {', '.join(settings)}{every}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- files


def _order(p: Point) -> tuple:
    """jointcodec systems first, then the codecs in CODECS order (other names after), the clean ceiling last."""
    codec_index = {name: i for i, name in enumerate(CODECS)}
    group = 0 if family(p.system) == JOINTCODEC else 2 if p.protocol == CLEAN else 1
    protocol = PROTOCOL_ORDER.index(p.protocol) if p.protocol in PROTOCOL_ORDER else len(PROTOCOL_ORDER)
    return group, codec_index.get(p.system, len(codec_index)), p.system, protocol, p.payload_bpp


def write_table(points: list[Point], out_dir: Path, dataset: str, extra: dict) -> tuple[Path, Path]:
    points = sorted(points, key=_order)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(asdict(p) for p in points)
    csv_path, json_path = out_dir / "rate_accuracy.csv", out_dir / "rate_accuracy.json"
    atomic_write(csv_path, lambda tmp: Path(tmp).write_text(buffer.getvalue()))
    atomic_write_json(json_path, {"dataset": dataset, "columns": COLUMNS,
                                  "points": [{c: asdict(p)[c] for c in COLUMNS} for p in points],
                                  "paper": paper_points(dataset), **extra})
    return csv_path, json_path


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


def compare(dataset: str, results: str | Path, jointcodec: list[str | Path], out: str | Path,
            command: str = "", draw: bool = True) -> dict:
    """Collect, tabulate, plot and summarise; returns {points, summary, missing, files}."""
    points = jointcodec_points(jointcodec, dataset) + codec_points(results, dataset)
    if not points:
        raise DataError(f"no results for {dataset}: no baseline points under {results} and no coded evaluations "
                        f"among {[str(p) for p in jointcodec] or 'the --jointcodec files (none given)'}")
    out_dir = Path(out) / dataset
    rows, missing = summary(points), missing_points(points)
    files = list(write_table(points, out_dir, dataset, {"summary": rows, "missing": missing, "command": command}))
    if draw:
        files += plot(points, dataset, out_dir)
    return {"points": points, "summary": rows, "missing": missing, "files": files}
