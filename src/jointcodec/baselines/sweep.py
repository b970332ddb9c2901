"""Protocol v2 of the classic-codec baselines: one strong receiver, made codec-robust, then specialised.

Stages (each resumable; each finished point is one JSON file, ``RESULTS/<system>/<setting>-<protocol>.json``):

``clean``     the receiver trained and tested on clean images: the ceiling, system ``clean`` (24 bpp).
``robust``    the receiver trained once on the codec-robust pool (:mod:`jointcodec.baselines.robust`): from
              scratch with the full recipe, or (``robust_from_clean``) the clean receiver trained a few more
              epochs on the pool: a fraction of the cost, but 1.1 points lower on CIFAR-10 validation after 4
              epochs (docs/baselines.md), so the published receivers are trained from scratch.
``test``      the robust receiver on every codec x ladder setting of the test split (protocol ``robust``).
``clean-test`` the clean receiver on codec x ladder settings (protocol ``clean-receiver``): at high rates
              it can read coded images better than the robust one, and the better receiver is the codec's.
``finetune``  at each codec's ladder setting nearest each target bpp: the robust receiver fine-tuned on that
              setting alone, the epoch chosen on validation (protocol ``fine-tuned``).
``scratch``   the full recipe from scratch on one setting alone (protocol ``scratch``; calibration).

The validation split (``val_size`` images carved from train with ``split_seed``) is coded like the training
images of each stage and is the only thing tuned on; the test split is only ever tested on.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from jointcodec.baselines.cache import coded_cached
from jointcodec.baselines.receiver_training import (
    WEIGHTS,
    ReceiverRecipe,
    evaluate,
    load_receiver,
    train_receiver,
    with_epochs,
)
from jointcodec.baselines.robust import RobustSource, build_pool, ladder_entries, plan_pool
from jointcodec.codecs import ImageCodec, get_codec
from jointcodec.codecs.batch import Coded
from jointcodec.data import load_split
from jointcodec.errors import ConfigError
from jointcodec.utils import atomic_write_json, claimed

CLEAN_BPP = 24.0  # uncompressed 8-bit RGB


@dataclass
class SweepConfig:
    dataset: str = "cifar10"
    codecs: list[str] = field(default_factory=list)  # empty = every codec
    recipe: ReceiverRecipe = field(default_factory=ReceiverRecipe)
    val_size: int = 2000
    split_seed: int = 0
    pool_versions: int = 3  # coded versions per training image in the robust pool
    p_clean: float = 0.1  # chance an image of a robust epoch is the clean one (keeps the clean ceiling close)
    robust_from_clean: int = 0  # > 0: the robust receiver is the clean one trained this many epochs on the pool
    robust_from_clean_lr: float = 0.4  # the larger of the two fine-tuning rates measured: the pool is a larger shift
    finetune_epochs: int = 2
    finetune_lr: float = 0.1  # chosen on validation over 0.4 (docs/baselines.md): robust weights are near an optimum
    targets: tuple[float, ...] = (0.4, 0.8)  # payload bpp near which the specialised points are made
    scratch: tuple[tuple[str, str], ...] = (("jpeg420", "15"),)
    train_subset: int = 0  # tests and quick looks: only the first N training / test images; 0 = all
    test_subset: int = 0
    results: Path = Path("docs/results/cifar10/baselines")
    runs: Path = Path("runs/receivers/cifar10")
    cache_dir: Path | None = None
    data_dir: str | None = None
    workers: int = 1
    progress: bool = True
    command: str = ""

    @property
    def robust_name(self) -> str:
        """The robust receiver's folder under ``runs`` and its record under ``results/receivers``."""
        return "robust-from-clean" if self.robust_from_clean else "robust"

    def codec_list(self) -> list[ImageCodec]:
        from jointcodec.codecs import CODECS

        return [get_codec(name) for name in (self.codecs or list(CODECS))]


def _machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__}


class Sweep:
    """Holds the data splits once and runs the stages of protocol v2."""

    def __init__(self, config: SweepConfig, log=print) -> None:
        self.config, self.log = config, log
        train = load_split(config.dataset, "train", config.data_dir)
        test = load_split(config.dataset, "test", config.data_dir)
        if config.train_subset:
            train = train.subset(slice(0, config.train_subset))
        if config.test_subset:
            test = test.subset(slice(0, config.test_subset))
        self.train_images = train.all_images("the baseline receivers")
        self.train_labels = train.labels
        self.test_images = test.all_images("the baseline receivers")
        self.test_labels = test.labels
        self.num_classes = len(train.classes)
        if config.val_size >= len(self.train_labels):
            raise ConfigError(f"--val-size {config.val_size} leaves no training images")
        order = torch.randperm(len(self.train_labels), generator=torch.Generator().manual_seed(config.split_seed))
        self.val_idx, self.fit_idx = order[:config.val_size], order[config.val_size:]
        self.claims = config.runs / "claims"  # which process measures which point (parallel `sweep` processes)

    # -- helpers -------------------------------------------------------------------------------------------
    def _describe(self, images: str) -> dict:
        c = self.config
        return {"dataset": c.dataset, "images": images, "val_size": c.val_size, "split_seed": c.split_seed,
                **({"train_subset": c.train_subset} if c.train_subset else {})}

    def _hwc(self, images: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(images.permute(0, 2, 3, 1).numpy())

    def _coded(self, codec: ImageCodec, setting, split: str) -> Coded:
        images = self.train_images if split == "train" else self.test_images
        coded, _, hit = coded_cached(codec, self._hwc(images), setting, self.config.cache_dir, self.config.workers,
                                     self.config.progress, f"{codec.name} {codec.format_setting(setting)} {split}")
        if not hit:
            self.log(f"coded {split}: {codec.name} {codec.format_setting(setting)} ({coded.payload_bpp:.3f} bpp)")
        return coded

    @staticmethod
    def _coding_cpu_s(coded: Coded) -> float | None:
        if coded.encode_cpu_s is None or coded.decode_cpu_s is None:
            return None
        return float(np.sum(coded.encode_cpu_s) + np.sum(coded.decode_cpu_s))

    @staticmethod
    def _decoded(coded: Coded) -> torch.Tensor:
        return torch.from_numpy(coded.decoded).permute(0, 3, 1, 2).contiguous()

    def result_path(self, system: str, setting: str, protocol: str) -> Path:
        return self.config.results / system / f"{setting}-{protocol}.json"

    def _write_point(self, path: Path, record: dict) -> dict:
        c = self.config
        if record["protocol"] in ("robust", "fine-tuned"):
            record = {**record, "robust_receiver": c.robust_name}
        record = {**record, "dataset": c.dataset, "receiver": c.recipe.preset, "n_test": len(self.test_labels),
                  "command": c.command, "machine": _machine(), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        atomic_write_json(path, record)
        self.log(f"{record['system']} {record['setting']} [{record['protocol']}]: top1 {record['top1']:.2f}% at "
                 f"{record['payload_bpp']:.3f} bpp payload -> {path}")
        return record

    def _codec_point(self, codec: ImageCodec, setting, protocol: str, top: dict, coded: Coded, cpu_s: float,
                     wall_s: float, extra: dict | None = None) -> dict:
        return {"system": codec.name, "setting": setting, "setting_name": codec.setting_name,
                "library": codec.library(), "protocol": protocol, "payload_bpp": coded.payload_bpp,
                "file_bpp": coded.file_bpp, "psnr_db": coded.psnr(self._hwc(self.test_images)),
                "top1": top["top1"], "top5": top["top5"], "cpu_s": cpu_s, "wall_s": wall_s, **(extra or {})}

    def _val(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return images[self.val_idx], self.train_labels[self.val_idx]

    def _fit_source(self, images: torch.Tensor):
        fit_images, fit_labels = images[self.fit_idx], self.train_labels[self.fit_idx]
        return lambda epoch, generator: (fit_images, fit_labels)

    def _receiver_record(self, name: str, summary: dict, extra: dict | None = None) -> None:
        path = self.config.results / "receivers" / f"{name}.json"
        atomic_write_json(path, {"receiver": self.config.recipe.preset, "recipe": asdict(self.config.recipe),
                                 "dataset": self.config.dataset, **summary, **(extra or {}),
                                 "command": self.config.command, "machine": _machine()})

    # -- stages ---------------------------------------------------------------------------------------------
    def clean(self) -> dict:
        """The receiver on clean images: the ceiling (system ``clean``, 24 bpp)."""
        path = self.result_path("clean", "none", "clean")
        out = self.config.runs / "clean"
        started = time.time()
        summary = train_receiver(self._fit_source(self.train_images), self.num_classes, self.config.recipe, out,
                                 val=self._val(self.train_images), describe=self._describe("clean"),
                                 progress=self.config.progress, log=self.log)
        self._receiver_record("clean", summary)
        model, _ = load_receiver(out)
        cpu0 = time.process_time()
        top = evaluate(model, self.test_images, self.test_labels, progress=self.config.progress)
        return self._write_point(path, {
            "system": "clean", "setting": "none", "setting_name": "none", "protocol": "clean",
            "payload_bpp": CLEAN_BPP, "file_bpp": CLEAN_BPP, "psnr_db": None, "top1": top["top1"], "top5": top["top5"],
            "cpu_s": summary["cpu_s"] + time.process_time() - cpu0, "wall_s": time.time() - started,
            "train_cpu_s": summary["cpu_s"], "epochs": self.config.recipe.epochs,
            "val_top1": [row.get("val_top1") for row in summary["history"]]})

    def _pool(self):
        c = self.config
        entries = ladder_entries(c.codec_list())
        plan = plan_pool(len(self.train_labels), len(entries), c.pool_versions, c.split_seed)
        pool, rows = build_pool(self._hwc(self.train_images), entries, plan, c.cache_dir, c.workers, c.progress,
                                self.log)
        return pool, rows

    def robust(self) -> Path:
        """Train the codec-robust receiver; returns its folder."""
        c = self.config
        out = c.runs / c.robust_name
        pool, rows = self._pool()
        source = RobustSource(pool[:, self.fit_idx], self.train_images[self.fit_idx],
                              self.train_labels[self.fit_idx], c.p_clean)
        # Validation: each validation image at its first pool version (a fixed random codec and setting).
        val = pool[0, self.val_idx], self.train_labels[self.val_idx]
        describe = {**self._describe("robust pool"), "codecs": sorted({r["codec"] for r in rows}),
                    "pool_versions": c.pool_versions, "p_clean": c.p_clean}
        recipe, init = c.recipe, None
        if c.robust_from_clean:
            init = c.runs / "clean"
            if not (init / WEIGHTS).is_file():
                raise ConfigError(f"--robust-from-clean starts from the clean receiver, and {init} has none: "
                                  "run the clean stage first")
            # A shift to coded images, not a new task: no warm-up, and the epoch is chosen on validation.
            recipe = with_epochs(c.recipe, c.robust_from_clean, lr=c.robust_from_clean_lr, warmup=0.0)
        summary = train_receiver(source, self.num_classes, recipe, out, val=val, init_from=init,
                                 keep_best=init is not None, describe=describe, progress=c.progress, log=self.log)
        pool_cpu = [r["cpu_s"] for r in rows]
        self._receiver_record(c.robust_name, summary, {
            "pool": rows, "pool_coding_cpu_s": sum(pool_cpu) if None not in pool_cpu else None, **describe,
            **({"init_from": str(init), "recipe": asdict(recipe)} if init else {})})
        return out

    def _settings(self, codec: ImageCodec, only_targets: bool, first: int, last: int) -> list:
        if only_targets:
            return self.nearest_settings(codec)
        ladder = list(codec.ladder)[:first or None]
        return ladder[-last:] if last else ladder

    def test(self, only_targets: bool = False, first: int = 0, last: int = 0,
             protocol: str = "robust") -> list[dict]:
        """A receiver on every codec x ladder setting of the test split: the robust one (protocol ``robust``,
        also on clean images), or the clean one (protocol ``clean-receiver``: where coding is mild, the
        ceiling's receiver may read coded images better than the robust one). ``only_targets``: only the
        settings nearest the target rates; ``first`` / ``last``: only each ladder's lowest / highest N."""
        c = self.config
        folder = c.runs / (c.robust_name if protocol == "robust" else "clean")
        model, _ = load_receiver(folder)
        records = []
        path = self.result_path("clean", "none", "robust")
        with claimed(path, self.claims) as mine:
            if protocol == "robust" and mine:
                cpu0, started = time.process_time(), time.time()
                top = evaluate(model, self.test_images, self.test_labels, progress=c.progress)
                records.append(self._write_point(path, {
                    "system": "clean", "setting": "none", "setting_name": "none", "protocol": "robust",
                    "payload_bpp": CLEAN_BPP, "file_bpp": CLEAN_BPP, "psnr_db": None, "top1": top["top1"],
                    "top5": top["top5"], "cpu_s": time.process_time() - cpu0, "wall_s": time.time() - started}))
        for codec in c.codec_list():
            for setting in self._settings(codec, only_targets, first, last):
                path = self.result_path(codec.name, codec.format_setting(setting), protocol)
                with claimed(path, self.claims) as mine:
                    if mine:
                        records.append(self._coded_point(model, codec, setting, protocol, path))
        return records

    def _coded_point(self, model, codec: ImageCodec, setting, protocol: str, path: Path) -> dict:
        cpu0, started = time.process_time(), time.time()
        coded = self._coded(codec, setting, "test")
        top = evaluate(model, self._decoded(coded), self.test_labels, progress=self.config.progress)
        coding = self._coding_cpu_s(coded) or 0.0
        return self._write_point(path, self._codec_point(
            codec, setting, protocol, top, coded, coding + time.process_time() - cpu0, time.time() - started,
            {"coding_cpu_s": coding}))

    def nearest_settings(self, codec: ImageCodec) -> list:
        """The ladder settings nearest each target payload bpp, by the rates measured on the first 2,000
        *training* images (the test split chooses nothing)."""
        probe = self._hwc(self.train_images[:2000])
        rates = {s: coded_cached(codec, probe, s, self.config.cache_dir, self.config.workers)[0].payload_bpp
                 for s in codec.ladder}
        chosen = []
        for target in self.config.targets:
            best = min(rates, key=lambda s: abs(rates[s] - target))
            if best not in chosen:
                chosen.append(best)
        return chosen

    def _specialised(self, codec: ImageCodec, setting, protocol: str) -> dict | None:
        """A receiver trained for one codec setting (``fine-tuned`` or ``scratch``), measured on its test split;
        None where the point exists or another process is producing it."""
        path = self.result_path(codec.name, codec.format_setting(setting), protocol)
        with claimed(path, self.claims) as mine:
            return self._train_specialised(codec, setting, protocol, path) if mine else None

    def _train_specialised(self, codec: ImageCodec, setting, protocol: str, path: Path) -> dict:
        c = self.config
        name = codec.format_setting(setting)
        cpu0, started = time.process_time(), time.time()
        train_coded = self._coded(codec, setting, "train")
        train_images = self._decoded(train_coded)
        # Training's CPU comes from its own (resume-proof) count, so the window below excludes it.
        setup_cpu_s = time.process_time() - cpu0
        describe = self._describe(f"{codec.name} {name}")
        if protocol == "fine-tuned":
            recipe = with_epochs(c.recipe, c.finetune_epochs, lr=c.finetune_lr, warmup=0.0)
            init = c.runs / c.robust_name
        else:
            recipe, init = c.recipe, None
        out = c.runs / protocol / codec.name / name
        summary = train_receiver(self._fit_source(train_images), self.num_classes, recipe, out,
                                 val=self._val(train_images), init_from=init, keep_best=protocol == "fine-tuned",
                                 describe=describe, progress=c.progress, log=self.log)
        cpu0 = time.process_time()
        model, _ = load_receiver(out)
        test_coded = self._coded(codec, setting, "test")
        top = evaluate(model, self._decoded(test_coded), self.test_labels, progress=c.progress)
        coding = (self._coding_cpu_s(train_coded) or 0.0) + (self._coding_cpu_s(test_coded) or 0.0)
        cpu_s = coding + setup_cpu_s + summary["cpu_s"] + time.process_time() - cpu0
        return self._write_point(path, self._codec_point(
            codec, setting, protocol, top, test_coded, cpu_s,
            time.time() - started, {"coding_cpu_s": coding, "train_cpu_s": summary["cpu_s"],
                                    "epochs": recipe.epochs, "chosen_epoch": summary["chosen_epoch"],
                                    "val_top1": [row.get("val_top1") for row in summary["history"]],
                                    "best_val_top1": summary["best_val_top1"], "lr": recipe.lr}))

    def finetune(self) -> list[dict]:
        records = []
        for codec in self.config.codec_list():
            for setting in self.nearest_settings(codec):
                record = self._specialised(codec, setting, "fine-tuned")
                if record:
                    records.append(record)
        return records

    def scratch(self) -> list[dict]:
        records = []
        for name, setting in self.config.scratch:
            codec = get_codec(name)
            record = self._specialised(codec, codec.check_setting(setting), "scratch")
            if record:
                records.append(record)
        return records


STAGES = ("clean", "robust", "test", "clean-test", "finetune", "scratch")


def run_stages(config: SweepConfig, stages: list[str], only_targets: bool = False, first: int = 0,
               last: int = 0, log=print) -> None:
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ConfigError(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    sweep = Sweep(config, log)
    for stage in stages:
        log(f"== stage {stage}")
        if stage in ("test", "clean-test"):
            sweep.test(only_targets, first, last, "robust" if stage == "test" else "clean-receiver")
        else:
            getattr(sweep, stage)()


__all__ = ["STAGES", "Sweep", "SweepConfig", "run_stages"]
