"""The edge efficiency benchmark: MAC counts against hand counts, and a real (tiny) run with one thread."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from jointcodec.checkpoint import load_model
from jointcodec.data import normalize
from jointcodec.evaluation.bench import macs_of, ratios
from jointcodec.evaluation.complexity import count_macs, count_params

CLI = [sys.executable, "-m", "jointcodec.cli.main"]


@pytest.mark.parametrize("stride", [1, 2])
def test_mac_count_matches_a_hand_count_for_one_conv(stride: int) -> None:
    conv = nn.Conv2d(3, 8, kernel_size=3, stride=stride, padding=1, bias=False)
    out = 32 // stride
    hand = 8 * out * out * (3 * 3 * 3)  # outputs x (input channels x kernel taps)
    assert count_macs(conv, torch.zeros(1, 3, 32, 32)) == hand
    assert macs_of(conv, torch.zeros(1, 3, 32, 32)) == hand  # the path the bench uses for pipelines


def test_ratios_are_against_the_matching_jointcodec_stage() -> None:
    def row(name, group, stage, size, macs, latency, throughput, cpu_ms):
        timing = {"latency_ms_b1": latency, "throughput_b64": throughput, "cpu_ms_b1": latency,
                  "cpu_ms_per_image_b64": cpu_ms}
        return {"name": name, "group": group, "stage": stage, "size_fp32_bytes": size, "macs": macs,
                "timings": {"threads_1": timing},
                "energy_per_image": {"cpu_estimate_mj": cpu_ms * 4.0, "macs_estimate_mj": macs and macs * 4.6e-9}}

    rows = [row("enc", "jointcodec", "transform", 100, 10, 1.0, 1000, 1.0),
            row("enc+coding", "jointcodec", "full", 150, 12, 2.0, 500, 2.0),
            row("g_a", "learned codec", "transform", 400, 40, 3.0, 250, 3.0),
            row("jpeg", "classic codec", "full", None, None, 1.0, 1000, 1.0)]
    by_name = {e["alternative"]: e for e in ratios(rows, [1])}
    g_a, jpeg = by_name["g_a"], by_name["jpeg"]
    assert g_a["compared_with"] == "enc" and jpeg["compared_with"] == "enc+coding"
    assert g_a["size_reduction"] == pytest.approx(0.75) and g_a["mac_ratio"] == pytest.approx(4.0)
    assert g_a["latency_speedup_t1"] == pytest.approx(3.0) and g_a["throughput_speedup_t1"] == pytest.approx(4.0)
    assert g_a["energy_saving_cpu_estimate"] == pytest.approx(2 / 3)
    assert "size_reduction" not in jpeg and jpeg["latency_speedup_t1"] == pytest.approx(0.5)


@pytest.mark.slow
def test_bench_runs_with_one_thread(cli_env: dict, tmp_path: Path) -> None:
    out_json, out_md = tmp_path / "bench.json", tmp_path / "bench.md"
    proc = subprocess.run(CLI + ["bench", "--checkpoint", "default", "--threads", "1", "--repeats", "1",
                                 "--batch-size", "4", "--json", str(out_json), "--markdown", str(out_md),
                                 "--no-progress"], env=cli_env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out_json.read_text())
    assert result["settings"]["threads"] == [1]
    names = [r["name"] for r in result["candidates"]]
    assert names[:2] == ["jointcodec encoder", "jointcodec encoder + entropy coding"]
    assert any(n.startswith("JPEG") for n in names) and any(n.startswith("WebP") for n in names)
    assert "ResNet-18 on device" in names
    compressai_rows = [n for n in names if n.startswith("bmshj2018")]
    assert compressai_rows or result["compressai"]  # present, or the reason it is missing is stated
    encoder = result["candidates"][0]
    model, _ = load_model("default")
    example = normalize(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    assert encoder["macs"] == count_macs(model.encoder, example)  # what `evaluate` reports as encoder_macs
    params = count_params(model.encoder)
    assert encoder["params"] == params and encoder["size_fp32_bytes"] > 4 * params
    for row in result["candidates"]:
        timing = row["timings"]["threads_1"]
        assert timing["latency_ms_b1"] > 0 and timing["throughput_b64"] > 0
        assert row["energy_per_image"]["cpu_estimate_mj"] > 0
    assert "estimated" in result["settings"]["energy"] or "measured" in result["settings"]["energy"]
    assert len(result["ratios"]) == len(names) - 2 and result["load_average_before"] is not None
    markdown = out_md.read_text()
    assert "| jointcodec encoder |" in markdown and "## Ratios" in markdown
    assert "| candidate |" in proc.stdout  # the table is printed too
