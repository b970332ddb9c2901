"""The comparison's summary rows, their text, and the table files (csv, json)."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from pathlib import Path

from jointcodec.baselines.compare.bd import accuracy_at, bd_row
from jointcodec.baselines.compare.points import (
    CLEAN,
    COLUMNS,
    JOINTCODEC,
    PROTOCOL_ORDER,
    Point,
    _default_preset,
    codec_curve,
    codec_names,
    family,
    ours_of,
    setting_key,
)
from jointcodec.baselines.paper import paper_points
from jointcodec.codecs import CODECS
from jointcodec.utils import atomic_write, atomic_write_json


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
        rows.append({"codec": codec, **bd_row(ours, curve, codec), "saving_bound": _saving_bound(default, curve),
                     "systems": [{"system": s, **bd_row([p for p in ours if p.system == s], curve, codec)}
                                 for s in systems],
                     "at_default": at_default, "at_or_below_1bpp": _gains_at_or_below_1bpp(ours, curve),
                     "codec_min_bpp": curve[0].payload_bpp,
                     "curve": [{"setting": p.setting, "protocol": p.protocol, "payload_bpp": p.payload_bpp,
                                "top1": p.top1} for p in curve]})
    return rows


def _saving_bound(default: Point | None, curve: list[Point]) -> dict | None:
    """Where the codec never reaches the default's accuracy on its whole measured curve, BD-rate has no shared
    accuracy; but the codec would need more than its highest measured rate, so the default saves *at least*
    1 - default rate / that rate. None where the codec reaches it (then BD-rate speaks) or without a default."""
    best = max((p.top1 for p in curve), default=None)
    if default is None or best is None or best >= default.top1:
        return None
    top = max(curve, key=lambda p: p.payload_bpp)
    return {"at_least_percent": 100.0 * (1.0 - default.payload_bpp / top.payload_bpp), "codec_bpp": top.payload_bpp,
            "codec_best_top1": best, "top1": default.top1}


def _gains_at_or_below_1bpp(ours: list[Point], curve: list[Point]) -> list[dict]:
    rows = []
    for p in sorted(ours, key=lambda p: p.payload_bpp):
        if p.payload_bpp <= 1.0:
            acc = accuracy_at(curve, p.payload_bpp)
            rows.append({"system": p.system, "payload_bpp": p.payload_bpp, "top1": p.top1, "codec_top1": acc,
                         "gain_points": None if acc is None else p.top1 - acc})
    return rows


def missing_points(points: list[Point], codecs: list[str] | None = None) -> list[dict]:
    """Every ladder setting (``CODECS[name].ladder``) of ``codecs`` (default: all) that has no robust point yet."""
    have = {(p.system, p.setting) for p in points if p.protocol == "robust"}
    return [{"system": name, "setting": setting_key(s), "protocol": "robust"}
            for name, codec in CODECS.items() if codecs is None or name in codecs
            for s in codec.ladder if (name, setting_key(s)) not in have]


# ---------------------------------------------------------------------------------------------- text


def _cell(value: float | None, fmt: str, unit: str = "") -> str:
    return "n/a" if value is None else format(value, fmt) + unit


def _bits_saved(saving: float | None) -> str:
    """-BD-rate in words."""
    if saving is None:
        return "n/a"
    return f"{saving:.1f}% fewer bits" if saving >= 0 else f"{-saving:.1f}% more bits"


def _bound_text(bound: dict | None) -> str:
    if bound is None:
        return ""
    return (f"; at the default's {bound['top1']:.2f}%: at least {bound['at_least_percent']:.1f}% fewer bits "
            f"(the codec stays below it, best {bound['codec_best_top1']:.2f}%, up to {bound['codec_bpp']:.3f} bpp)")


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
                     f"  {_bits_saved(r['bpp_saving_percent'])}{_bound_text(r.get('saving_bound'))}")
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


