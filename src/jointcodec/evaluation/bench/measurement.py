"""How ``jointcodec bench`` measures a candidate: size, timing, energy, working memory, and the ratios between them.

Timings are medians over warm calls in one process; energy is read from RAPL where readable, else estimated from
CPU time and from MACs with stated constants; working memory is the peak-RSS rise of one call (glibc tuned so that
RSS follows the working set). Ratios compare each alternative with the matching jointcodec stage.
"""

from __future__ import annotations

import ctypes
import platform
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torch import nn

from jointcodec.evaluation.bench.candidates import Candidate

# Stated constants for the energy estimates (used only where RAPL cannot be read).
WATTS_PER_CORE = 4.0  # a busy server core: an AMD EPYC's ~240 W TDP over its 64 cores (the bench machine)
PJ_PER_MAC = 4.6  # one fp32 multiply (3.7 pJ) + add (0.9 pJ) at 45 nm, Horowitz (ISSCC 2014); arithmetic only
RAPL_ROOT = Path("/sys/class/powercap")


# --- size ------------------------------------------------------------------------------------------
def state_bytes(modules: list[nn.Module], dtype: torch.dtype | None = None) -> int | None:
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


def param_count(modules: list[nn.Module]) -> int | None:
    """Parameters of the modules, each shared parameter counted once."""
    if not modules:
        return None
    seen = {id(p): p.numel() for m in modules for p in m.parameters()}
    return sum(seen.values())


# --- timing ----------------------------------------------------------------------------------------
def latency_calls(repeats: int) -> int:
    """Single-image calls timed for the batch-1 latency: cheap, so more of them than batch repeats."""
    return max(3 * repeats, 10)


def _run_batch(candidate: Candidate, images: torch.Tensor, threads: int, pool: ThreadPoolExecutor | None) -> None:
    if candidate.threaded_batches and pool is not None and len(images) > 1:
        chunks = torch.chunk(images, threads)
        list(pool.map(candidate.run, chunks))
    else:
        candidate.run(images)


def median_times(candidate: Candidate, images: torch.Tensor, threads: int, repeats: int, budget_s: float) -> dict:
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


def time_candidate(candidate: Candidate, images: torch.Tensor, threads: int, repeats: int, budget_s: float,
                   zones: list[Path]) -> dict:
    """Batch-1 latency, batch throughput and CPU time at ``threads`` (and RAPL energy where ``zones`` are given)."""
    one = median_times(candidate, images[:1], threads, latency_calls(repeats), budget_s)
    energy_before = rapl_joules(zones) if zones else None
    batch = median_times(candidate, images, threads, repeats, budget_s)
    entry = {"latency_ms_b1": 1e3 * one["wall_s"], "cpu_ms_b1": 1e3 * one["cpu_s"],
             "throughput_b64": len(images) / batch["wall_s"],
             "cpu_ms_per_image_b64": 1e3 * batch["cpu_s"] / len(images),
             "samples_b1": one["samples"], "samples_b64": batch["samples"]}
    if energy_before is not None:
        # RAPL measures the whole package (background work included) over warm-up + repeats.
        joules = rapl_joules(zones) - energy_before
        entry["energy_mj_measured_rapl"] = 1e3 * joules / (len(images) * (batch["samples"] + 1))
    return entry


# --- energy ----------------------------------------------------------------------------------------
def rapl_zones() -> list[Path]:
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


def rapl_joules(zones: list[Path]) -> float:
    return sum(int(z.read_text()) for z in zones) / 1e6


# --- memory ----------------------------------------------------------------------------------------
def _status_kib(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def prepare_memory_measurement() -> bool:
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


def working_memory(candidate: Candidate, image: torch.Tensor) -> int | None:
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


# --- one candidate's row ---------------------------------------------------------------------------
def candidate_row(candidate: Candidate, timings: dict, energy_threads: int, image: torch.Tensor | None,
                  watts_per_core: float, pj_per_mac: float) -> dict:
    """Everything measured for one candidate; its working memory on ``image`` (None: not measured), energy from the
    timings at ``energy_threads``."""
    params = param_count(candidate.modules)
    fp32 = state_bytes(candidate.modules)
    working = working_memory(candidate, image) if image is not None else None
    single = timings[f"threads_{energy_threads}"]
    energy = {"cpu_estimate_mj": single["cpu_ms_per_image_b64"] * watts_per_core,
              "macs_estimate_mj": (candidate.macs * pj_per_mac * 1e-9) if candidate.macs and candidate.fp32_macs
              else None}
    if "energy_mj_measured_rapl" in single:
        energy["measured_rapl_mj"] = single["energy_mj_measured_rapl"]
    return {
        "name": candidate.name, "group": candidate.group, "stage": candidate.stage, "note": candidate.note,
        "params": params, "size_fp32_bytes": fp32, "size_fp16_bytes": state_bytes(candidate.modules, torch.float16),
        "macs": candidate.macs, "working_memory_bytes": working,
        "peak_memory_bytes": (working + (fp32 or 0)) if working is not None else None,
        "timings": timings, "energy_per_image": energy,
    }


def machine_info(cores: int) -> dict:
    """CPU model, usable cores, platform and the versions of the libraries measured."""
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


# --- ratios ----------------------------------------------------------------------------------------
JOINTCODEC = "jointcodec"  # the torch path's group; the edge client's rows are in "jointcodec client <precision>"


def _pairs(rows: list[dict], reference: str) -> list[tuple[dict, dict]]:
    """(reference row, alternative): transforms against the reference group's encoder, the rest against its encoder +
    coding. The alternatives are the other systems; the edge client's tables also hold the torch path's rows."""
    ours = {r["stage"]: r for r in rows if r["group"] == reference}

    def alternative(row: dict) -> bool:
        return not row["group"].startswith(JOINTCODEC) or (row["group"] == JOINTCODEC != reference)

    return [(ours[r["stage"]], r) for r in rows if alternative(r) and r["stage"] in ours]


def ratios(rows: list[dict], threads: list[int], reference: str = JOINTCODEC) -> list[dict]:
    """Each alternative against the matching stage of ``reference`` (a group of jointcodec rows): size reduction, MAC
    ratio, speed-ups, energy saving."""
    out = []
    for ours, alt in _pairs(rows, reference):
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


def client_ratios(rows: list[dict], threads: list[int]) -> dict[str, list[dict]]:
    """The edge client's rows against the same alternatives and against the torch path, one table per precision."""
    groups = sorted({r["group"] for r in rows if r["group"].startswith(JOINTCODEC + " client")})
    return {group: ratios(rows, threads, group) for group in groups}


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
