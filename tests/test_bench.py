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


def test_the_edge_client_rows_time_the_shipped_client(data_dir: Path, tmp_path: Path) -> None:
    """The torch-free client's rows, from an export with an int8 encoder: fp32 and int8, each the encoder alone and
    with entropy coding. They run the client itself (fp32: the torch path's bytes), and their ratio tables set them
    against JPEG and the torch path while the torch path's own table leaves them out."""
    pytest.importorskip("onnxscript")
    from jointcodec.api import Codec
    from jointcodec.data import load_split
    from jointcodec.edge.onnx_export import export_model, training_images
    from jointcodec.evaluation.bench.candidates import (
        classic_candidates,
        client_candidates,
        jointcodec_candidates,
        jointcodec_macs,
    )
    from jointcodec.evaluation.bench.measurement import candidate_row, client_ratios, time_candidate

    model, config = load_model("default")
    export_model(model, config, tmp_path, check_images=2, calibration=training_images(config, 32, data_dir))
    encoder_macs, context_macs, _ = jointcodec_macs(model, 32)
    clients = client_candidates(tmp_path, encoder_macs, context_macs)
    assert [(c.group, c.stage) for c in clients] == [("jointcodec client fp32", "transform"),
                                                     ("jointcodec client fp32", "full"),
                                                     ("jointcodec client int8", "transform"),
                                                     ("jointcodec client int8", "full")]
    images = load_split("cifar10", "test", data_dir).images[:4]
    codec = Codec(model)
    assert clients[1].run(images) == codec.compress(images)
    assert torch.equal(codec.decode_symbols(clients[3].run(images)), torch.from_numpy(clients[2].run(images)))

    candidates = [*jointcodec_candidates(model, 32)[:2], *clients, classic_candidates(14, 2)[0]]
    rows = []
    for candidate in candidates:
        if candidate.set_threads:
            candidate.set_threads(1)
        timing = {"threads_1": time_candidate(candidate, images, 1, 1, 0.05, [])}
        rows.append(candidate_row(candidate, timing, 1, None, 4.0, 4.6))
    by_name = {r["name"]: r for r in rows}
    assert by_name["jointcodec client encoder + entropy coding (fp32)"]["energy_per_image"]["macs_estimate_mj"] > 0
    assert by_name["jointcodec client encoder + entropy coding (int8)"]["energy_per_image"]["macs_estimate_mj"] is None
    assert [e["alternative"] for e in ratios(rows, [1])] == ["JPEG 4:2:0 q=14"]
    tables = client_ratios(rows, [1])
    assert sorted(tables) == ["jointcodec client fp32", "jointcodec client int8"]
    fp32 = {e["alternative"]: e for e in tables["jointcodec client fp32"]}
    assert sorted(fp32) == ["JPEG 4:2:0 q=14", "jointcodec encoder", "jointcodec encoder + entropy coding"]
    assert fp32["JPEG 4:2:0 q=14"]["compared_with"] == "jointcodec client encoder + entropy coding (fp32)"
    assert fp32["jointcodec encoder"]["compared_with"] == "jointcodec client encoder (fp32)"
    jpeg, client = by_name["JPEG 4:2:0 q=14"], by_name["jointcodec client encoder + entropy coding (fp32)"]
    assert fp32["JPEG 4:2:0 q=14"]["throughput_speedup_t1"] == pytest.approx(
        client["timings"]["threads_1"]["throughput_b64"] / jpeg["timings"]["threads_1"]["throughput_b64"])


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
    others = [r for r in result["candidates"] if not r["group"].startswith("jointcodec")]
    assert len(result["ratios"]) == len(others) and result["load_average_before"] is not None
    assert {"jointcodec client encoder + entropy coding (fp32)",
            "jointcodec client encoder + entropy coding (int8)"} <= set(names)  # exported for the run, with int8
    assert sorted(result["client_ratios"]) == ["jointcodec client fp32", "jointcodec client int8"]
    assert all(len(table) == len(others) + 2 for table in result["client_ratios"].values())
    markdown = out_md.read_text()
    assert "| jointcodec encoder |" in markdown and "## Ratios" in markdown
    assert "## Ratios of the edge client (int8)" in markdown
    assert "| candidate |" in proc.stdout  # the table is printed too
