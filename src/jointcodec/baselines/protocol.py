"""The baseline protocol: one (codec, setting) point, and sweeps of them.

A point: compress the train and test splits at the setting (cached), train the receiver on the decoded
train images with the joint model's recipe (same network, epochs, augmentation, validation split), test it
on the decoded test images, and write one result JSON. Rates are measured on the test split (the images
the accuracy is measured on): ``payload_bpp`` (the measurement rules, docs/baselines.md) and ``file_bpp``.

Resumable at two levels: a point whose result JSON exists (made under the same protocol) is skipped; a
point whose training was killed continues from its last finished epoch (the recipe's checkpoints).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from jointcodec.baselines.cache import coded_cached, default_cache_dir
from jointcodec.codecs import ImageCodec, Setting, get_codec
from jointcodec.codecs.batch import Coded
from jointcodec.codecs.rate import Search, find_setting
from jointcodec.data import ImageSet, load_split
from jointcodec.errors import ConfigError
from jointcodec.utils import atomic_write_json


def _train_defaults():
    """The recipe's own defaults (imported lazily: the training stack is heavy)."""
    from jointcodec.training import TrainConfig

    return TrainConfig()


@dataclass
class Protocol:
    """Everything that decides a point's numbers; a stored result is reused only if this matches."""

    dataset: str = "cifar10"
    preset: str = "cifar-v1"
    epochs: int = field(default_factory=lambda: _train_defaults().epochs)
    batch_size: int = field(default_factory=lambda: _train_defaults().batch_size)
    lr: float = field(default_factory=lambda: _train_defaults().lr)
    weight_decay: float = field(default_factory=lambda: _train_defaults().weight_decay)
    val_size: int = field(default_factory=lambda: _train_defaults().val_size)
    seed: int = 0
    train_subset: int = 0  # use only the first N training images (tests, quick looks); 0 = all
    test_subset: int = 0  # use only the first N test images; 0 = all


@dataclass
class Runtime:
    """Where and how to run; does not change the numbers."""

    results: Path = Path("runs/baselines")
    cache_dir: Path = field(default_factory=default_cache_dir)
    workers: int = 1
    device: str = "auto"
    precision: str = "auto"
    data_dir: str | None = None
    download: bool = False
    progress: bool = True
    compress_only: bool = False


def point_dir(runtime: Runtime, protocol: Protocol, codec: ImageCodec, setting: Setting) -> Path:
    return Path(runtime.results) / protocol.dataset / codec.name / codec.format_setting(setting)


def _split(protocol: Protocol, runtime: Runtime, split: str) -> ImageSet:
    data = load_split(protocol.dataset, split, runtime.data_dir, runtime.download)
    limit = protocol.train_subset if split == "train" else protocol.test_subset
    return data.subset(slice(0, limit)) if limit else data


def _hwc(data: ImageSet) -> np.ndarray:
    return np.ascontiguousarray(data.all_images("the classic-codec baselines").permute(0, 2, 3, 1).numpy())


def _decoded_set(data: ImageSet, coded: Coded) -> ImageSet:
    images = torch.from_numpy(coded.decoded).permute(0, 3, 1, 2).contiguous()
    return ImageSet(images, data.labels, data.classes, data.name, data.split)


def _rates(coded: Coded, originals: np.ndarray) -> dict:
    """payload_bpp, file_bpp, PSNR, bytes, encode/decode times (wall and CPU, ms per image) of a split."""
    summary = coded.summary()
    return {**{k: v for k, v in summary.items() if k not in ("codec", "setting")}, "psnr_db": coded.psnr(originals)}


def load_result(path: Path, protocol: Protocol) -> dict | None:
    """A finished point's record, None if there is none; ConfigError if it was made under another protocol."""
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    if record.get("protocol") != asdict(protocol):
        theirs = record.get("protocol") or {}
        diff = {k: (theirs.get(k), v) for k, v in asdict(protocol).items() if theirs.get(k) != v}
        raise ConfigError(f"{path} was made under another protocol (stored, requested: {diff}); "
                          "use another --results directory or delete it")
    return record


def run_point(codec_name: str, setting: Setting, protocol: Protocol, runtime: Runtime,
              target_bpp: float | None = None, command: str | None = None) -> dict:
    """One point of a rate-accuracy curve (see the module docstring); returns its record."""
    from jointcodec.baselines.receiver import ReceiverTask
    from jointcodec.checkpoint import TRAINER_STATE
    from jointcodec.training import TrainConfig, train

    codec = get_codec(codec_name)
    setting = codec.check_setting(setting)
    label = f"{codec.name} {codec.setting_name} {codec.format_setting(setting)}"
    folder = point_dir(runtime, protocol, codec, setting)
    result_path = folder / "result.json"
    done = load_result(result_path, protocol)
    if done is not None:
        print(f"{label}: done already ({result_path}): top1 {done['top1']:.2f}% at {done['payload_bpp']:.3f} bpp")
        return done

    started = time.time()
    sets, coded = {}, {}
    for split in ("train", "test"):
        sets[split] = _split(protocol, runtime, split)
        coded[split], cache_file, hit = coded_cached(codec, _hwc(sets[split]), setting, runtime.cache_dir,
                                                     runtime.workers, runtime.progress, f"{label} {split}")
        print(f"{label} {split}: {len(sets[split])} images, payload {coded[split].payload_bpp:.4f} bpp, file "
              f"{coded[split].file_bpp:.4f} bpp ({'cached' if hit else 'coded'}: {cache_file})", flush=True)
    compress_s = time.time() - started
    rates = _rates(coded["test"], _hwc(sets["test"]))
    if runtime.compress_only:
        return {"system": codec.name, "setting": setting, **rates}

    record = {"codec": codec.name, "setting": setting, "protocol": asdict(protocol)}
    run_dir = folder / "run"
    defaults = TrainConfig()
    config = TrainConfig(preset=protocol.preset, dataset=protocol.dataset, levels=defaults.levels,
                         epochs=protocol.epochs, batch_size=protocol.batch_size, lr=protocol.lr,
                         weight_decay=protocol.weight_decay, val_size=protocol.val_size, seed=protocol.seed,
                         device=runtime.device, precision=runtime.precision, data_dir=runtime.data_dir,
                         out=str(run_dir), resume=(run_dir / TRAINER_STATE).is_file(), test_at_end=True,
                         progress=runtime.progress)
    task = ReceiverTask(_decoded_set(sets["train"], coded["train"]), _decoded_set(sets["test"], coded["test"]),
                        record)
    trained = train(config, task=task)
    test = trained["test"]
    result = {
        "system": codec.name, "codec": codec.description, "library": codec.library(),
        "setting": setting, "setting_name": codec.setting_name, "target_bpp": target_bpp,
        "dataset": protocol.dataset, "top1": test["top1"], "top5": test["top5"], **rates,
        "train_rates": _rates(coded["train"], _hwc(sets["train"])),
        "n_train": len(sets["train"]) - protocol.val_size, "n_val": protocol.val_size, "n_test": len(sets["test"]),
        "receiver_params": test["params"], "receiver_macs": test["macs"],
        "epochs": protocol.epochs, "train_wall_clock_s": test["train_wall_clock_s"],
        "compress_wall_clock_s": compress_s,
        "val_top1": [row.get("val_top1") for row in trained["history"]],
        "protocol": asdict(protocol), "command": command or " ".join(sys.argv),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "device": config.device, "workers": runtime.workers},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write_json(result_path, result)
    print(f"{label}: top1 {result['top1']:.2f}% at {result['payload_bpp']:.4f} bpp payload "
          f"({result['file_bpp']:.4f} bpp file); wrote {result_path}", flush=True)
    return result


def search_settings(codec: ImageCodec, targets: list[float], protocol: Protocol, runtime: Runtime,
                    search_images: int) -> list[Search]:
    """The setting for each target bpp, searched on the first ``search_images`` training images (never on
    test images: the measurement rules, docs/baselines.md). Stored next to the results, so a resumed sweep
    does not search again."""
    path = Path(runtime.results) / protocol.dataset / codec.name / f"search-{search_images}.json"
    stored = json.loads(path.read_text()) if path.is_file() else {}
    images = _hwc(load_split(protocol.dataset, "train", runtime.data_dir, runtime.download)
                  .subset(slice(0, search_images)))
    found = []
    for target in targets:
        key = f"{target:g}"
        if key not in stored:
            search = find_setting(codec, images, target, workers=runtime.workers)
            stored[key] = asdict(search)
            atomic_write_json(path, stored)
        s = stored[key]
        found.append(Search(s["codec"], s["target_bpp"], s["setting"], s["payload_bpp"], s["reached"],
                            [tuple(p) for p in s["probes"]]))
    return found


def run_sweep(codec_names: list[str], protocol: Protocol, runtime: Runtime, settings: list[str] | None = None,
              targets: list[float] | None = None, search_images: int = 2000, command: str | None = None) -> list[dict]:
    """Every point of every codec: explicit ``settings`` (one codec), ``targets`` (searched), or each ladder."""
    codecs = [get_codec(name) for name in codec_names]
    if settings and len(codecs) != 1:
        raise ConfigError("--setting applies to one codec; give --targets or the ladders for several")
    plan: list[tuple[ImageCodec, Setting, float | None]] = []
    for codec in codecs:
        if settings:
            plan += [(codec, codec.check_setting(s), None) for s in settings]
        elif targets:
            for search in search_settings(codec, targets, protocol, runtime, search_images):
                if not search.reached:
                    print(f"{codec.name}: {search.target_bpp:g} bpp is out of reach (nearest "
                          f"{search.payload_bpp:.3f} bpp at {search.setting}); skipped", flush=True)
                    continue
                plan.append((codec, search.setting, search.target_bpp))
        else:
            plan += [(codec, s, None) for s in codec.ladder]
    return [run_point(codec.name, setting, protocol, runtime, target, command) for codec, setting, target in plan]
