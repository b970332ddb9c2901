"""``jointcodec bench``'s output: the Markdown tables (candidates, ratios, summary) and the JSON record."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np


def _fmt(value, spec: str, missing: str = "—") -> str:
    return missing if value is None else format(value, spec)


def _kb(value) -> str:
    return "—" if value is None else f"{value / 1024:,.1f} KiB" if value < 2**20 else f"{value / 2**20:,.2f} MiB"


def format_markdown(result: dict) -> str:
    """The tables of one bench result, as printed and as written by ``--markdown``."""
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
    if result.get("edge_client"):
        lines += [f"Edge client (`jointcodec.edge`, numpy + ONNX Runtime + constriction): {result['edge_client']}.", ""]
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
    lines += _ratio_table(result["ratios"], threads)
    for group, entries in result.get("client_ratios", {}).items():
        lines += ["", f"## Ratios of the edge client ({group.rsplit(' ', 1)[-1]})", "",
                  "The torch-free client as shipped against the same alternatives and against the torch path: its "
                  "encoder against theirs, its encoder + entropy coding against the rest. Speed-up: their time / "
                  "the client's.", ""]
        lines += _ratio_table(entries, threads)
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


def _ratio_table(entries: list[dict], threads: list[int]) -> list[str]:
    header = ["alternative", "compared with", "smaller by", "MACs theirs / ours"]
    for t in threads:
        header += [f"latency speed-up {t}T", f"throughput speed-up {t}T"]
    header += ["energy saving"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for e in entries:
        cells = [e["alternative"], e["compared_with"], _pct(e.get("size_reduction")), _fmt(e.get("mac_ratio"), ".1f")]
        for t in threads:
            cells += [_x(e.get(f"latency_speedup_t{t}")), _x(e.get(f"throughput_speedup_t{t}"))]
        energy = [f"{_pct(e[k])} ({label})" for k, label in (("energy_saving_measured_rapl", "measured"),
                                                            ("energy_saving_cpu_estimate", "est. CPU"),
                                                            ("energy_saving_macs_estimate", "est. MACs")) if k in e]
        cells.append(", ".join(energy) or "—")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _pct(value) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def _x(value) -> str:
    return "—" if value is None else f"{value:.2f}x"


def _span(values: list[float], fmt: Callable) -> str:
    low, high = values
    return fmt(low) if abs(high - low) < 1e-12 else f"{fmt(low)} to {fmt(high)}"


def save_outputs(result: dict, json_path: str | None, markdown_path: str | None) -> None:
    """Write the result as JSON and/or Markdown (each only where a path is given)."""
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
