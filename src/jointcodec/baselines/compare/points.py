"""The measured points of the rate-accuracy comparison, and each system's curve.

Inputs:

* codec points, protocol v2: one JSON file per point, ``RESULTS/<system>/<setting>-<protocol>.json``
  (committed under ``docs/results/<dataset>/baselines``), protocol ``robust``, ``fine-tuned``, ``scratch``,
  or ``clean`` (the receiver on uncoded images: the accuracy ceiling);
* codec points, protocol v1 (``RESULTS/<dataset>/<codec>/<setting>/result.json``), read where present and
  marked ``v1-scratch`` (the receiver was trained from scratch on decoded images);
* jointcodec points: ``jointcodec evaluate --coded --json FILE`` records (rates from real ``.jcc`` files:
  ``bpp_payload``, ``bpp_file``; accuracy from the decoded files, ``top1_coded``), protocol ``joint``.

A codec's number at a setting is the best top-1 over its protocols (robust, fine-tuned, scratch, v1):
each protocol is a fair way to read that codec's images, so the codec gets the better one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from jointcodec.codecs import CODECS
from jointcodec.errors import DataError

JOINTCODEC = "jointcodec"
CLEAN = "clean"
JOINT = "joint"  # the protocol of jointcodec's own points
V1 = "v1-scratch"
V2_PROTOCOLS = ("robust", "fine-tuned", "scratch", "clean-receiver", CLEAN)
# In order of preference when accuracies tie.
CODEC_PROTOCOLS = ("robust", "fine-tuned", "scratch", "clean-receiver", V1)
PROTOCOL_ORDER = (JOINT,) + CODEC_PROTOCOLS + (CLEAN,)  # the table's order within a system
COLUMNS = ["system", "setting", "protocol", "receiver", "payload_bpp", "file_bpp", "top1", "top5", "psnr_db",
           "n_test", "epochs", "cpu_s", "source"]



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


