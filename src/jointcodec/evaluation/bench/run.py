"""One run of ``jointcodec bench``: load the model and images, measure every candidate, assemble the result."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from jointcodec.errors import ConfigError
from jointcodec.evaluation.bench.candidates import all_candidates
from jointcodec.evaluation.bench.measurement import (
    PJ_PER_MAC,
    WATTS_PER_CORE,
    candidate_row,
    client_ratios,
    latency_calls,
    machine_info,
    prepare_memory_measurement,
    rapl_zones,
    ratios,
    summary,
    time_candidate,
)

BATCH = 64


@dataclass
class BenchConfig:
    checkpoint: str = "default"
    preset: str | None = None  # an untrained preset instead of a checkpoint (timings do not need training)
    threads: int | None = None  # None: 1 and all cores
    repeats: int = 5
    budget_s: float = 2.0  # per measurement: stop repeating after this long (at least 3 samples)
    batch_size: int = BATCH
    jpeg_quality: int = 14  # matched to the default model: 0.724 payload bpp (experiments/reconstruction_grid.py)
    webp_quality: int = 2  # matched likewise: 0.757 payload bpp
    compressai_quality: int = 5
    watts_per_core: float = WATTS_PER_CORE
    pj_per_mac: float = PJ_PER_MAC
    memory: bool = True
    data_dir: str | None = None
    progress: bool = True
    onnx: str | None = None  # an edge export (`jointcodec export --onnx`) for the client's rows; None: export one


def _load(config: BenchConfig):
    from jointcodec.checkpoint import load_model
    from jointcodec.models import create_model, get_preset

    if config.preset:
        preset = get_preset(config.preset)
        classes = 1000 if preset.image_size >= 128 else 10
        model = create_model(preset, 2, classes).eval()
        return model, {"preset": preset.to_dict(), "dataset": None, "num_classes": classes}, f"preset {preset.name}"
    model, model_config = load_model(config.checkpoint)
    return model, model_config, str(config.checkpoint)


def _images(model_config: dict, image_size: int, count: int, data_dir: str | None) -> tuple[torch.Tensor, str]:
    """Real test images where the model's data set is at hand (codec speed depends on content), else noise."""
    from jointcodec.data import load_split
    from jointcodec.errors import DataError

    dataset = model_config.get("dataset")
    if dataset:
        try:
            data = load_split(dataset, "test", data_dir, False, image_size)
            if len(data) >= count and data.image_size == (image_size, image_size):
                return data.images[:count].contiguous(), f"the first {count} {dataset} test images"
        except DataError:
            pass
    generator = torch.Generator().manual_seed(0)
    # Smooth random images (upsampled noise): closer to photos than white noise for the codecs.
    low = torch.rand(count, 3, max(1, image_size // 8), max(1, image_size // 8), generator=generator)
    images = torch.nn.functional.interpolate(low, size=(image_size, image_size), mode="bilinear")
    return (images * 255).round().to(torch.uint8), f"{count} synthetic smooth random images (no data set at hand)"


def _edge_export(config: BenchConfig, model, model_config: dict, scratch: Path) -> tuple[Path | None, str]:
    """The edge export whose client the bench runs, and a line on where it came from (or why there is none).

    ``--onnx DIR`` names one; otherwise the model is exported into ``scratch``, with the int8 encoder where the
    model's training images are at hand for its calibration."""
    from jointcodec.errors import DataError

    if config.onnx:
        import json

        from jointcodec.edge.client import MANIFEST
        from jointcodec.entropy.fixedpoint import model_fingerprint

        try:
            fingerprint = json.loads((Path(config.onnx) / MANIFEST).read_text())["fingerprint"]
        except (OSError, ValueError, KeyError) as err:
            raise ConfigError(f"--onnx {config.onnx}: not an edge export (no readable {MANIFEST}: {err})") from err
        if fingerprint != model_fingerprint(model):
            raise ConfigError(f"--onnx {config.onnx} holds model {fingerprint}, the bench runs "
                              f"{model_fingerprint(model)}: export the same checkpoint")
        return Path(config.onnx), f"the export in {config.onnx}"
    try:
        from jointcodec.edge.onnx_export import CALIBRATION_IMAGES, export_model, training_images
    except ImportError as err:
        return None, f"no edge client rows: exporting needs onnx, onnxscript and onnxruntime ({err})"
    try:
        calibration, int8 = training_images(model_config, CALIBRATION_IMAGES, config.data_dir), "fp32 and int8"
    except (ConfigError, DataError) as err:
        calibration, int8 = None, f"fp32 only (no int8 encoder: {err})"
    export_model(model, model_config, scratch, calibration=calibration)
    return scratch, f"exported for this run, {int8}"


def _settings(config: BenchConfig, threads: list[int], batch_size: int, rapl: bool, memory_ok: bool) -> dict:
    """How the run measured, recorded beside its numbers."""
    return {"threads": threads, "repeats": config.repeats, "batch_size": batch_size,
            "latency_samples": latency_calls(config.repeats), "budget_s": config.budget_s,
            "jpeg_quality": config.jpeg_quality,
            "webp_quality": config.webp_quality, "compressai_quality": config.compressai_quality,
            "compressai_weights": "untrained (timing only; architecture of qualities 1-5: N=128, M=192)",
            "energy": ("measured: RAPL package counters" if rapl else
                       f"estimated (RAPL not readable): cpu_estimate = CPU time per image x "
                       f"{config.watts_per_core} W per busy core; macs_estimate = MACs x "
                       f"{config.pj_per_mac} pJ per MAC (fp32 multiply + add, 45 nm, Horowitz 2014; "
                       "arithmetic only, no memory traffic)"),
            "watts_per_core": config.watts_per_core, "pj_per_mac": config.pj_per_mac,
            "memory": ("weights + peak RSS rise of one warm batch-1 call (glibc mmap threshold 64 KiB, "
                       "/proc/self/clear_refs)") if memory_ok else "not measured"}


def _measure(candidates: list, images: torch.Tensor, threads: list[int], config: BenchConfig,
             zones: list[Path]) -> tuple[list[dict], bool]:
    """Time every candidate at every thread count (RAPL ``zones`` where readable), then measure its memory; its
    rows, and whether memory was measured."""
    from tqdm.auto import tqdm

    steps = [(c, t) for c in candidates for t in threads]
    bar = tqdm(steps, desc="bench", disable=not config.progress, unit="run")
    timings: dict[str, dict] = {c.name: {} for c in candidates}
    for candidate, t in bar:
        bar.set_postfix_str(f"{candidate.name}, {t} thread{'s' * (t > 1)}")
        _set_threads(candidate, t)
        timings[candidate.name][f"threads_{t}"] = time_candidate(candidate, images, t, config.repeats,
                                                                 config.budget_s, zones)
    # Memory after the timings, so that the allocator settings it needs do not touch them.
    memory_ok = config.memory and prepare_memory_measurement()
    rows = []
    for candidate in candidates:
        _set_threads(candidate, 1)
        rows.append(candidate_row(candidate, timings[candidate.name], threads[0],
                                  images[:1] if memory_ok else None, config.watts_per_core, config.pj_per_mac))
    return rows, memory_ok


def _set_threads(candidate, threads: int) -> None:
    torch.set_num_threads(threads)
    if candidate.set_threads:
        candidate.set_threads(threads)


def run_bench(config: BenchConfig) -> dict:
    """Measure every candidate; the result holds the rows, their ratios to jointcodec (the torch path, and the edge
    client as shipped) and a summary per group."""
    started = time.perf_counter()
    if config.repeats < 1 or config.batch_size < 1:
        raise ConfigError("--repeats and --batch-size must be at least 1")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = [config.threads] if config.threads else sorted({1, cores})
    if any(t < 1 for t in threads):
        raise ConfigError(f"--threads must be at least 1, got {config.threads}")
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    initial_threads = torch.get_num_threads()

    model, model_config, source = _load(config)
    image_size = model_config["preset"]["image_size"]
    images, image_source = _images(model_config, image_size, config.batch_size, config.data_dir)
    zones = rapl_zones()
    scratch = tempfile.TemporaryDirectory(prefix="jointcodec-bench.")
    try:
        edge_export, edge_source = _edge_export(config, model, model_config, Path(scratch.name))
        candidates, compressai_missing = all_candidates(model, image_size, model_config.get("num_classes") or 10,
                                                        config.jpeg_quality, config.webp_quality,
                                                        config.compressai_quality, edge_export)
        rows, memory_ok = _measure(candidates, images, threads, config, zones)
    finally:
        torch.set_num_threads(initial_threads)
        scratch.cleanup()

    result = {
        "source": source,
        "preset": model_config["preset"]["name"],
        "image_size": image_size,
        "inputs": image_source,
        "machine": machine_info(cores),
        "settings": _settings(config, threads, len(images), bool(zones), memory_ok),
        "candidates": rows,
        "compressai": None if compressai_missing is None else compressai_missing,
        "edge_client": edge_source,
        "load_average_before": list(load_before) if load_before else None,
        "load_average_after": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    result["ratios"] = ratios(rows, threads)
    result["client_ratios"] = client_ratios(rows, threads)
    result["summary"] = summary(result["ratios"])
    result["wall_s"] = time.perf_counter() - started
    return result
