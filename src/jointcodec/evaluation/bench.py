"""Edge-side efficiency benchmark: jointcodec's encoder against what a user would run on the device instead.

``jointcodec bench --checkpoint CKPT`` measures, in one process and one run (timings are ratios within one run):

* **jointcodec**: the encoder alone (image -> latent symbols), and encoder + entropy coding (image -> the
  ``.jcc`` bytes: fixed-point context model and range coder);
* **classic codecs**: JPEG 4:2:0 and WebP encoding with Pillow, image -> file bytes;
* **learned codecs**: CompressAI's ``bmshj2018-factorized`` and ``bmshj2018-hyperprior`` (untrained
  weights: timings only), the analysis transform ``g_a`` alone and ``compress()`` (g_a, hyper transforms,
  rANS coding);
* **on-device classification**: jointcodec's whole model (encoder + receiver classifier) and ResNet-18,
  image -> label, so that nothing but the label is sent.

For each: parameters, weights size (serialised safetensors bytes, fp32 and fp16), MACs per image (torch's
FLOP counter, ``jointcodec.evaluation.complexity``), peak working memory, batch-1 latency and batch-64
throughput with 1 thread and with all threads (medians over repeats), and energy per image. Energy is
read from RAPL (``/sys/class/powercap``) where it is readable; otherwise two **estimates** are given, each
labelled: CPU time x a stated power per busy core, and MACs x a stated energy per MAC.

Peak memory: after the timings, glibc is told to map every allocation >= 64 KiB separately and to hand freed
memory back (``mallopt``), the process's peak-RSS mark is reset (``/proc/self/clear_refs``), one warm batch-1
call runs, and the rise of the peak RSS over the RSS before it is its working memory; ``peak_memory_bytes``
adds the fp32 weights. Not available where ``/proc`` or glibc are missing (reported as null).
"""

from __future__ import annotations

import ctypes
import io
import os
import platform
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from jointcodec.errors import ConfigError
from jointcodec.evaluation.complexity import count_macs

# Stated constants for the energy estimates (used only where RAPL cannot be read).
WATTS_PER_CORE = 4.0  # a busy server core: an AMD EPYC's ~240 W TDP over its 64 cores (the bench machine)
PJ_PER_MAC = 4.6  # one fp32 multiply (3.7 pJ) + add (0.9 pJ) at 45 nm, Horowitz (ISSCC 2014); arithmetic only
BATCH = 64
RAPL_ROOT = Path("/sys/class/powercap")


@dataclass
class Candidate:
    """One thing a device could run: ``run(images)`` on uint8 images (N, 3, H, W)."""

    name: str
    group: str  # "jointcodec", "classic codec", "learned codec", "on-device classifier"
    stage: str  # "transform": the network alone; "full": to the bytes (or label) that leave the device
    run: Callable[[torch.Tensor], object]
    modules: list[nn.Module] = field(default_factory=list)  # what the device must hold
    macs: int | None = None
    note: str = ""
    threaded_batches: bool = False  # run a batch as parallel single-image calls (Pillow: one call, one thread)


def _state_bytes(modules: list[nn.Module], dtype: torch.dtype | None = None) -> int | None:
    """Size of the modules' weights and buffers as one safetensors file (optionally cast to ``dtype``)."""
    from safetensors.torch import save

    if not modules:
        return None
    state = {}
    for i, module in enumerate(modules):
        for key, value in module.state_dict().items():
            value = value.detach().cpu()
            if dtype is not None and value.is_floating_point():
                value = value.to(dtype)
            state[f"{i}.{key}"] = value.contiguous()
    return len(save(state))


def _params(modules: list[nn.Module]) -> int | None:
    if not modules:
        return None
    seen = {id(p): p.numel() for m in modules for p in m.parameters()}
    return sum(seen.values())


class _Call(nn.Module):
    """A function as a module, so ``count_macs`` can count it."""

    def __init__(self, fn: Callable[[torch.Tensor], object]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def macs_of(fn: Callable[[torch.Tensor], object], example: torch.Tensor) -> int:
    return count_macs(_Call(fn), example)


# --- candidates ------------------------------------------------------------------------------------
def _to_unit(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 255.0


def jointcodec_candidates(model, image_size: int) -> list[Candidate]:
    from jointcodec.api import Codec
    from jointcodec.data import normalize

    model.eval()
    codec = Codec(model)
    example = normalize(torch.zeros(1, 3, image_size, image_size, dtype=torch.uint8))
    encoder_macs = count_macs(model.encoder, example)
    with torch.no_grad():
        latent = model.quantizer.dequantize(model.quantizer.symbols(model.encoder(example)))
    context_macs = count_macs(model.context, latent)
    classifier_macs = count_macs(model.classifier, latent)

    @torch.no_grad()
    def encoder(images):
        return model.quantizer.symbols(model.encoder(normalize(images)))

    @torch.no_grad()
    def on_device(images):
        return model.classifier(model.quantizer.dequantize(encoder(images))).argmax(1)

    return [
        Candidate("jointcodec encoder", "jointcodec", "transform", encoder, [model.encoder], encoder_macs,
                  "encoder + quantizer -> latent symbols"),
        Candidate("jointcodec encoder + entropy coding", "jointcodec", "full", codec.compress,
                  [model.encoder, model.quantizer, model.context], encoder_macs + context_macs,
                  "-> .jcc bytes (fixed-point context model + range coder); MACs include the context model"),
        Candidate("jointcodec encoder + classifier on device", "on-device classifier", "full", on_device,
                  [model.encoder, model.quantizer, model.classifier], encoder_macs + classifier_macs,
                  "the whole jointcodec model on the device, -> label"),
    ]


def classic_candidates(jpeg_quality: int, webp_quality: int) -> list[Candidate]:
    """JPEG 4:2:0 and WebP as the project's codec wrappers run them (``jointcodec.codecs``: baseline JPEG with the
    standard Huffman tables, WebP method 6), image -> file bytes; plain Pillow with the same options if the
    wrappers are not installed."""
    settings = {"jpeg420": ("JPEG", jpeg_quality, {"subsampling": 2, "optimize": False, "progressive": False}),
                "webp": ("WEBP", webp_quality, {"method": 6, "lossless": False})}
    out = []
    for name, (fmt, quality, options) in settings.items():
        try:
            from jointcodec.codecs import get_codec

            wrapper = get_codec(name)
            library = wrapper.library()
        except ImportError:
            wrapper, library = None, "Pillow"

        def encode(images: torch.Tensor, wrapper=wrapper, fmt=fmt, quality=quality, options=options) -> list[bytes]:
            hwc = images.permute(0, 2, 3, 1).numpy()
            if wrapper is not None:
                return [wrapper.encode(image, quality) for image in hwc]
            return [_pillow_encode(image, fmt, quality=quality, **options) for image in hwc]

        label = f"JPEG 4:2:0 q={quality}" if name == "jpeg420" else f"WebP q={quality} (method 6)"
        out.append(Candidate(label, "classic codec", "full", encode, note=f"{library}, image -> file bytes",
                             threaded_batches=True))
    return out


def _pillow_encode(image: np.ndarray, fmt: str, **options) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def compressai_candidates(quality: int, image_size: int) -> tuple[list[Candidate], str | None]:
    """CompressAI's two Ballé et al. models, untrained (the timings do not depend on the weights' values)."""
    try:
        import compressai  # noqa: F401
        from compressai.zoo import bmshj2018_factorized, bmshj2018_hyperprior
    except Exception as err:  # ImportError, or a dependency of compressai that fails on import
        return [], f"compressai not usable here ({type(err).__name__}: {err})"
    example = torch.zeros(1, 3, image_size, image_size)
    out = []
    # compress() needs the input to be a multiple of the total downsampling (16, and 64 with the hyperprior, whose
    # hyper-synthesis must land on y's grid); like CompressAI's own codec example, pad (replicate) up to it.
    for label, build, edge_parts, multiple in (
            ("bmshj2018-factorized", bmshj2018_factorized, ("g_a", "entropy_bottleneck"), 16),
            ("bmshj2018-hyperprior", bmshj2018_hyperprior,
             ("g_a", "h_a", "h_s", "entropy_bottleneck", "gaussian_conditional"), 64)):
        net = build(quality=quality, pretrained=False).eval()
        net.update(force=True)  # the CDF tables compress() codes with
        g_a = net.g_a
        pad = (-image_size) % multiple

        def padded(x: torch.Tensor, pad: int = pad) -> torch.Tensor:
            return torch.nn.functional.pad(x, (0, pad, 0, pad), mode="replicate") if pad else x

        transform = torch.no_grad()(lambda images, g_a=g_a: g_a(_to_unit(images)))
        full = torch.no_grad()(lambda images, net=net, padded=padded: net.compress(padded(_to_unit(images))))
        modules = [getattr(net, part) for part in edge_parts]
        note = "g_a" + (" + h_a + h_s" if "h_a" in edge_parts else "") + " + rANS -> bytes"
        if pad:
            side = image_size + pad
            note += f"; input padded to {side}x{side} (compress() needs a multiple of {multiple})"
        out.append(Candidate(f"{label} q={quality} g_a", "learned codec", "transform", transform, [g_a],
                             count_macs(g_a, example), f"analysis transform alone, on the {image_size}x{image_size} "
                                                       "input (no padding)"))
        out.append(Candidate(f"{label} q={quality} compress", "learned codec", "full", full, modules,
                             macs_of(lambda x, net=net, padded=padded: net.compress(padded(x)), example), note))
    return out, None


def resnet18_candidate(image_size: int, num_classes: int) -> Candidate:
    """torchvision's ResNet-18; at 32x32 with the usual CIFAR stem (3x3 conv, no max-pool)."""
    from torchvision.models import resnet18

    net = resnet18(num_classes=num_classes).eval()
    note = "torchvision ResNet-18, -> label"
    if image_size <= 64:
        net.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
        note = "torchvision ResNet-18 with the CIFAR stem (3x3 conv, no max-pool), -> label"
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    @torch.no_grad()
    def run(images):
        return net((_to_unit(images) - mean) / std).argmax(1)

    return Candidate("ResNet-18 on device", "on-device classifier", "full", run, [net],
                     count_macs(net, torch.zeros(1, 3, image_size, image_size)), note)


# --- measurement -----------------------------------------------------------------------------------
def _run_batch(candidate: Candidate, images: torch.Tensor, threads: int, pool: ThreadPoolExecutor | None) -> None:
    if candidate.threaded_batches and pool is not None and len(images) > 1:
        chunks = torch.chunk(images, threads)
        list(pool.map(candidate.run, chunks))
    else:
        candidate.run(images)


def _time(candidate: Candidate, images: torch.Tensor, threads: int, repeats: int, budget_s: float) -> dict:
    """Median wall time and CPU time per call (warm: the first call is not counted).

    ``repeats`` calls, but no more once ``budget_s`` has passed and at least 3 (or ``repeats``, if fewer)
    were timed: the slowest candidates (a whole ResNet-18) would otherwise dominate the run.
    """
    pool = ThreadPoolExecutor(threads) if candidate.threaded_batches and threads > 1 else None
    try:
        _run_batch(candidate, images, threads, pool)
        walls, cpus = [], []
        started = time.perf_counter()
        while len(walls) < repeats and (len(walls) < min(3, repeats) or time.perf_counter() - started < budget_s):
            cpu, wall = time.process_time(), time.perf_counter()
            _run_batch(candidate, images, threads, pool)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
    finally:
        if pool is not None:
            pool.shutdown()
    return {"wall_s": statistics.median(walls), "cpu_s": statistics.median(cpus), "samples": len(walls)}


def _rapl_zones() -> list[Path]:
    """Readable package-level RAPL energy counters (empty where there are none or they are root-only)."""
    zones = []
    for zone in sorted(RAPL_ROOT.glob("intel-rapl:*")) if RAPL_ROOT.is_dir() else []:
        counter = zone / "energy_uj"
        if zone.name.count(":") == 1 and counter.is_file():
            try:
                int(counter.read_text())
            except (OSError, ValueError):
                continue
            zones.append(counter)
    return zones


def _rapl_joules(zones: list[Path]) -> float:
    return sum(int(z.read_text()) for z in zones) / 1e6


def _status_kib(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _prepare_memory_measurement() -> bool:
    """Map every allocation >= 64 KiB on its own and give freed memory back, so RSS follows the working set."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD (fixed: no dynamic growth)
        libc.mallopt(-1, 128 * 1024)  # M_TRIM_THRESHOLD
        libc.malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")
    except (OSError, AttributeError):
        return False
    return _status_kib("VmHWM") is not None


def _working_memory(candidate: Candidate, image: torch.Tensor) -> int | None:
    """Peak RSS rise during one (warm) batch-1 call, in bytes."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS mark to the current RSS
    except OSError:
        return None
    before = _status_kib("VmRSS")
    candidate.run(image)
    peak = _status_kib("VmHWM")
    if before is None or peak is None:
        return None
    return max(0, peak - before) * 1024


@dataclass
class BenchConfig:
    checkpoint: str = "default"
    preset: str | None = None  # an untrained preset instead of a checkpoint (timings do not need training)
    threads: int | None = None  # None: 1 and all cores
    repeats: int = 5
    budget_s: float = 2.0  # per measurement: stop repeating after this long (at least 3 samples)
    batch_size: int = BATCH
    jpeg_quality: int = 14  # matched to the default model: 0.724 payload bpp (scripts/reconstruction_grid.py)
    webp_quality: int = 2  # matched likewise: 0.757 payload bpp
    compressai_quality: int = 5
    watts_per_core: float = WATTS_PER_CORE
    pj_per_mac: float = PJ_PER_MAC
    memory: bool = True
    data_dir: str | None = None
    progress: bool = True


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


def run_bench(config: BenchConfig) -> dict:
    from tqdm.auto import tqdm

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
    candidates = jointcodec_candidates(model, image_size)
    candidates += classic_candidates(config.jpeg_quality, config.webp_quality)
    learned, compressai_missing = compressai_candidates(config.compressai_quality, image_size)
    candidates += learned
    candidates.append(resnet18_candidate(image_size, model_config.get("num_classes") or 10))

    zones = _rapl_zones()
    rows = []
    steps = [(c, t) for c in candidates for t in threads]
    bar = tqdm(steps, desc="bench", disable=not config.progress, unit="run")
    timings: dict[str, dict] = {c.name: {} for c in candidates}
    try:
        for candidate, t in bar:
            bar.set_postfix_str(f"{candidate.name}, {t} thread{'s' * (t > 1)}")
            torch.set_num_threads(t)
            one = _time(candidate, images[:1], t, max(3 * config.repeats, 10), config.budget_s)
            energy_before = _rapl_joules(zones) if zones else None
            batch = _time(candidate, images, t, config.repeats, config.budget_s)
            entry = {"latency_ms_b1": 1e3 * one["wall_s"], "cpu_ms_b1": 1e3 * one["cpu_s"],
                     "throughput_b64": len(images) / batch["wall_s"],
                     "cpu_ms_per_image_b64": 1e3 * batch["cpu_s"] / len(images),
                     "samples_b1": one["samples"], "samples_b64": batch["samples"]}
            if energy_before is not None:
                # RAPL measures the whole package (background work included) over warm-up + repeats.
                joules = _rapl_joules(zones) - energy_before
                entry["energy_mj_measured_rapl"] = 1e3 * joules / (len(images) * (batch["samples"] + 1))
            timings[candidate.name][f"threads_{t}"] = entry
        memory_ok = config.memory and _prepare_memory_measurement()
        torch.set_num_threads(1)
        for candidate in candidates:
            params = _params(candidate.modules)
            fp32 = _state_bytes(candidate.modules)
            working = _working_memory(candidate, images[:1]) if memory_ok else None
            single = timings[candidate.name][f"threads_{threads[0]}"]
            energy = {"cpu_estimate_mj": single["cpu_ms_per_image_b64"] * config.watts_per_core,
                      "macs_estimate_mj": (candidate.macs * config.pj_per_mac * 1e-9) if candidate.macs else None}
            if "energy_mj_measured_rapl" in single:
                energy["measured_rapl_mj"] = single["energy_mj_measured_rapl"]
            rows.append({
                "name": candidate.name, "group": candidate.group, "stage": candidate.stage, "note": candidate.note,
                "params": params, "size_fp32_bytes": fp32, "size_fp16_bytes": _state_bytes(candidate.modules,
                                                                                           torch.float16),
                "macs": candidate.macs, "working_memory_bytes": working,
                "peak_memory_bytes": (working + (fp32 or 0)) if working is not None else None,
                "timings": timings[candidate.name], "energy_per_image": energy,
            })
    finally:
        torch.set_num_threads(initial_threads)

    result = {
        "source": source,
        "preset": model_config["preset"]["name"],
        "image_size": image_size,
        "inputs": image_source,
        "machine": _machine(cores),
        "settings": {"threads": threads, "repeats": config.repeats, "batch_size": len(images),
                     "latency_samples": max(3 * config.repeats, 10), "budget_s": config.budget_s,
                     "jpeg_quality": config.jpeg_quality,
                     "webp_quality": config.webp_quality, "compressai_quality": config.compressai_quality,
                     "compressai_weights": "untrained (timing only; architecture of qualities 1-5: N=128, M=192)",
                     "energy": ("measured: RAPL package counters" if zones else
                                f"estimated (RAPL not readable): cpu_estimate = CPU time per image x "
                                f"{config.watts_per_core} W per busy core; macs_estimate = MACs x "
                                f"{config.pj_per_mac} pJ per MAC (fp32 multiply + add, 45 nm, Horowitz 2014; "
                                "arithmetic only, no memory traffic)"),
                     "watts_per_core": config.watts_per_core, "pj_per_mac": config.pj_per_mac,
                     "memory": ("weights + peak RSS rise of one warm batch-1 call (glibc mmap threshold 64 KiB, "
                                "/proc/self/clear_refs)") if memory_ok else "not measured"},
        "candidates": rows,
        "compressai": None if compressai_missing is None else compressai_missing,
        "load_average_before": list(load_before) if load_before else None,
        "load_average_after": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    result["ratios"] = ratios(rows, threads)
    result["summary"] = summary(result["ratios"])
    result["wall_s"] = time.perf_counter() - started
    return result


def _machine(cores: int) -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for name in ("PIL", "compressai", "torchvision"):
        try:
            versions[name] = __import__(name).__version__
        except Exception:  # not installed, or fails on import
            versions[name] = None
    return {"cpu": cpu, "cores": cores, "platform": platform.platform(), "versions": versions}


def _pairs(rows: list[dict]) -> list[tuple[dict, dict]]:
    """(jointcodec reference, alternative): transforms against our encoder, the rest against encoder + coding."""
    ours = {r["stage"]: r for r in rows if r["group"] == "jointcodec"}
    return [(ours[r["stage"]], r) for r in rows if r["group"] != "jointcodec"]


def ratios(rows: list[dict], threads: list[int]) -> list[dict]:
    out = []
    for ours, alt in _pairs(rows):
        entry = {"alternative": alt["name"], "group": alt["group"], "compared_with": ours["name"]}
        if ours["size_fp32_bytes"] and alt["size_fp32_bytes"]:
            entry["size_reduction"] = 1 - ours["size_fp32_bytes"] / alt["size_fp32_bytes"]
        if ours["macs"] and alt["macs"]:
            entry["mac_ratio"] = alt["macs"] / ours["macs"]
        for t in threads:
            a, b = ours["timings"][f"threads_{t}"], alt["timings"][f"threads_{t}"]
            entry[f"latency_speedup_t{t}"] = b["latency_ms_b1"] / a["latency_ms_b1"]
            entry[f"throughput_speedup_t{t}"] = a["throughput_b64"] / b["throughput_b64"]
        for kind in ("measured_rapl_mj", "cpu_estimate_mj", "macs_estimate_mj"):
            mine, theirs = ours["energy_per_image"].get(kind), alt["energy_per_image"].get(kind)
            if mine and theirs:
                entry[f"energy_saving_{kind.removesuffix('_mj')}"] = 1 - mine / theirs
        out.append(entry)
    return out


def summary(entries: list[dict]) -> dict:
    """Ranges of the ratios, per group of alternatives (as the paper states its claims)."""
    out = {}
    for group in sorted({e["group"] for e in entries}):
        chosen = [e for e in entries if e["group"] == group]
        ranges = {}
        for key in sorted({k for e in chosen for k in e if k.startswith(("size_", "latency_", "throughput_",
                                                                       "energy_", "mac_"))}):
            values = [e[key] for e in chosen if e.get(key) is not None]
            if values:
                ranges[key] = [min(values), max(values)]
        out[group] = ranges
    return out


# --- report ----------------------------------------------------------------------------------------
def _fmt(value, spec: str, missing: str = "—") -> str:
    return missing if value is None else format(value, spec)


def _kb(value) -> str:
    return "—" if value is None else f"{value / 1024:,.1f} KiB" if value < 2**20 else f"{value / 2**20:,.2f} MiB"


def format_markdown(result: dict) -> str:
    threads = result["settings"]["threads"]
    machine = result["machine"]
    load = result.get("load_average_before")
    lines = [
        f"# Edge efficiency benchmark: `{result['source']}` ({result['preset']}, {result['image_size']}x"
        f"{result['image_size']} images)",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores usable; torch {machine['versions']['torch']}, "
        f"Pillow {machine['versions']['PIL']}, CompressAI {machine['versions']['compressai']}. "
        f"Inputs: {result['inputs']}. Medians over up to {result['settings']['repeats']} repeats "
        f"(batch {result['settings']['batch_size']}) and up to {result['settings']['latency_samples']} single-image "
        f"calls (batch 1), at least 3 each, fewer once {result['settings']['budget_s']:g} s have passed "
        f"(counts in the JSON); one warm-up call before each. One run, {result['wall_s']:.0f} s.",
    ]
    if load:
        lines.append(f"Load average before the run: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 min); "
                     f"after: {result['load_average_after'][0]:.2f}. A load near or above the core count means other "
                     "work shared the CPU: absolute times are inflated; ratios measured in the same run are less "
                     "affected.")
    lines += ["", f"Energy: {result['settings']['energy']}.", f"Memory: {result['settings']['memory']}.", ""]
    if result.get("compressai"):
        lines += [f"**CompressAI alternatives missing**: {result['compressai']}.", ""]
    header = ["candidate", "stage", "params", "weights fp32", "weights fp16", "MACs / image", "peak memory"]
    for t in threads:
        header += [f"latency b1, {t}T (ms)", f"throughput b{result['settings']['batch_size']}, {t}T (img/s)"]
    header += ["CPU ms / image", "energy / image (mJ)"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in result["candidates"]:
        energy = r["energy_per_image"]
        if "measured_rapl_mj" in energy:
            energy_text = f"{energy['measured_rapl_mj']:.3f} (measured)"
        else:
            energy_text = f"{energy['cpu_estimate_mj']:.3f} (est. CPU)"
            if energy["macs_estimate_mj"] is not None:
                energy_text += f", {energy['macs_estimate_mj']:.3f} (est. MACs)"
        cells = [r["name"], r["stage"], _fmt(r["params"], ","), _kb(r["size_fp32_bytes"]), _kb(r["size_fp16_bytes"]),
                 _fmt(r["macs"] and r["macs"] / 1e6, ",.1f") + (" M" if r["macs"] else ""),
                 _kb(r["peak_memory_bytes"])]
        for t in threads:
            timing = r["timings"][f"threads_{t}"]
            cells += [f"{timing['latency_ms_b1']:.2f}", f"{timing['throughput_b64']:,.0f}"]
        cells += [f"{r['timings'][f'threads_{threads[0]}']['cpu_ms_per_image_b64']:.2f}", energy_text]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "CPU ms / image and energy: batch "
              f"{result['settings']['batch_size']}, {threads[0]} thread(s).", "", "## Ratios", "",
              "Transforms are compared with the jointcodec encoder, everything else with jointcodec's encoder + "
              "entropy coding (what the device runs to send a `.jcc`). Size: 1 - ours / theirs (fp32 weights); "
              "speed-up: their time / ours; energy saving: 1 - ours / theirs.", ""]
    header = ["alternative", "compared with", "smaller by", "MACs theirs / ours"]
    for t in threads:
        header += [f"latency speed-up {t}T", f"throughput speed-up {t}T"]
    header += ["energy saving"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for e in result["ratios"]:
        cells = [e["alternative"], e["compared_with"], _pct(e.get("size_reduction")), _fmt(e.get("mac_ratio"), ".1f")]
        for t in threads:
            cells += [_x(e.get(f"latency_speedup_t{t}")), _x(e.get(f"throughput_speedup_t{t}"))]
        energy = [f"{_pct(e[k])} ({label})" for k, label in (("energy_saving_measured_rapl", "measured"),
                                                            ("energy_saving_cpu_estimate", "est. CPU"),
                                                            ("energy_saving_macs_estimate", "est. MACs")) if k in e]
        cells.append(", ".join(energy) or "—")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Summary (ranges over the alternatives of each group)", ""]
    for group, ranges in result["summary"].items():
        parts = []
        if "size_reduction" in ranges:
            parts.append(f"{_span(ranges['size_reduction'], _pct)} smaller")
        for key, label in ((f"latency_speedup_t{threads[0]}", f"batch-1 latency, {threads[0]} thread"),
                           (f"throughput_speedup_t{threads[-1]}", f"batch-{result['settings']['batch_size']} "
                                                                   f"throughput, {threads[-1]} threads")):
            if key in ranges:
                parts.append(f"{_span(ranges[key], _x)} faster ({label})")
        for key, label in (("energy_saving_measured_rapl", "measured"), ("energy_saving_cpu_estimate",
                                                                         "estimated from CPU time"),
                           ("energy_saving_macs_estimate", "estimated from MACs")):
            if key in ranges:
                parts.append(f"{_span(ranges[key], _pct)} less energy ({label})")
        lines.append(f"- **vs {group}**: " + "; ".join(parts))
    return "\n".join(lines) + "\n"


def _pct(value) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def _x(value) -> str:
    return "—" if value is None else f"{value:.2f}x"


def _span(values: list[float], fmt: Callable) -> str:
    low, high = values
    return fmt(low) if abs(high - low) < 1e-12 else f"{fmt(low)} to {fmt(high)}"


def save_outputs(result: dict, json_path: str | None, markdown_path: str | None) -> None:
    from jointcodec.utils import atomic_write, atomic_write_json

    if json_path:
        atomic_write_json(json_path, _jsonable(result))
    if markdown_path:
        text = format_markdown(result)
        atomic_write(markdown_path, lambda tmp: Path(tmp).write_text(text))


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
