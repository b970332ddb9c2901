"""The baseline protocol end to end on real CIFAR-10 (two settings, a few hundred images, one epoch),
the comparison's table, plot and BD-style numbers, and one-line CLI errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from jointcodec.baselines.compare import COLUMNS, Point, bd_compare, compare

CLI = [sys.executable, "-m", "jointcodec.cli.main"]
RESULT_KEYS = {"system", "setting", "dataset", "top1", "top5", "payload_bpp", "file_bpp", "psnr_db",
               "encode_ms_median", "decode_ms_median", "epochs", "train_wall_clock_s", "command", "protocol"}


def run_cli(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def coded_eval(path: Path, levels: int, bpp: float, top1: float) -> Path:
    """A record shaped like `jointcodec evaluate --coded --json` output."""
    path.write_text(json.dumps({"dataset": "cifar10", "levels": levels, "bpp_payload": bpp, "bpp_file": bpp + 0.17,
                                "top1": top1 + 0.1, "top1_coded": top1, "top5": 99.0, "n_images": 10000,
                                "checkpoint": f"runs/L{levels}", "preset": "cifar-v1"}))
    return path


@pytest.mark.slow
def test_protocol_end_to_end(cli_env: dict[str, str], tmp_path: Path) -> None:
    results, cache = tmp_path / "results", tmp_path / "cache"
    args = ["baseline", "--dataset", "cifar10", "--codec", "jpeg420", "--setting", "10", "50", "--train-subset", "300",
            "--test-subset", "200", "--val-size", "50", "--epochs", "1", "--batch-size", "64", "--workers", "1",
            "--device", "cpu", "--precision", "32-true", "--results", str(results), "--cache-dir", str(cache),
            "--no-progress"]
    first = run_cli(args, cli_env, tmp_path)
    assert first.returncode == 0, first.stderr

    records = {s: json.loads((results / "cifar10" / "jpeg420" / s / "result.json").read_text()) for s in ("10", "50")}
    for record in records.values():
        assert not RESULT_KEYS - set(record), RESULT_KEYS - set(record)
        assert record["n_test"] == 200 and record["epochs"] == 1 and record["dataset"] == "cifar10"
        assert 0 <= record["top1"] <= record["top5"] <= 100
        assert 0 < record["payload_bpp"] < record["file_bpp"]
    assert records["10"]["payload_bpp"] < records["50"]["payload_bpp"]
    assert records["10"]["psnr_db"] < records["50"]["psnr_db"]
    assert len(list(cache.glob("jpeg420-*.npz"))) == 4  # train and test at each setting

    # A finished point is skipped; a point whose result is missing resumes its finished training.
    (results / "cifar10" / "jpeg420" / "10" / "result.json").unlink()
    again = run_cli(args, cli_env, tmp_path)
    assert again.returncode == 0, again.stderr
    assert "quality 50: done already" in again.stdout
    assert "(cached:" in again.stdout and "(coded:" not in again.stdout
    assert "epoch   1" not in again.stdout  # resumed after its last epoch: no epoch trained again
    resumed = json.loads((results / "cifar10" / "jpeg420" / "10" / "result.json").read_text())
    assert resumed["top1"] == pytest.approx(records["10"]["top1"])

    # The comparison from these results and a jointcodec coded evaluation.
    joint = coded_eval(tmp_path / "L2.json", 2, 0.74, 86.3)
    shown = run_cli(["compare", "--dataset", "cifar10", "--results", str(results), "--jointcodec", str(joint),
                     "--out", str(tmp_path / "docs")], cli_env, tmp_path, timeout=60)
    assert shown.returncode == 0, shown.stderr
    out = tmp_path / "docs" / "cifar10"
    rows = list(csv.DictReader((out / "rate_accuracy.csv").open()))
    assert {r["system"] for r in rows} == {"jointcodec-L2", "jpeg420"} and len(rows) == 3
    for suffix in ("json", "png", "svg"):
        assert (out / f"rate_accuracy.{suffix}").stat().st_size > 0


def test_compare_writes_table_plot_and_bd_numbers(tmp_path: Path) -> None:
    results = tmp_path / "results"
    # A codec that needs exactly twice jointcodec's rate for every accuracy: a 50 % saving.
    for setting, (bpp, top1) in enumerate([(1.0, 70.0), (2.0, 80.0), (4.0, 85.0)]):
        folder = results / "cifar10" / "webp" / str(setting)
        folder.mkdir(parents=True)
        (folder / "result.json").write_text(json.dumps({"system": "webp", "setting": setting, "dataset": "cifar10",
                                                        "payload_bpp": bpp, "file_bpp": bpp + 0.2, "top1": top1}))
    joint = [coded_eval(tmp_path / f"L{lv}.json", lv, bpp, top1)
             for lv, bpp, top1 in ((2, 0.5, 70.0), (3, 1.0, 80.0), (6, 2.0, 85.0))]
    outcome = compare("cifar10", results, joint, tmp_path / "docs", command="test")
    (row,) = outcome["summary"]
    assert row["codec"] == "webp" and row["bpp_saving_percent"] == pytest.approx(50.0)
    assert row["accuracy_gain_points"] > 0
    gains = {p["system"]: p["gain_points"] for p in row["at_or_below_1bpp"]}
    assert gains == {"jointcodec-L2": None, "jointcodec-L3": pytest.approx(10.0)}  # webp starts at 1.0 bpp

    out = tmp_path / "docs" / "cifar10"
    with (out / "rate_accuracy.csv").open() as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS
        rows = list(reader)
    assert [r["system"] for r in rows] == ["jointcodec-L2", "jointcodec-L3", "jointcodec-L6", "webp", "webp", "webp"]
    twin = json.loads((out / "rate_accuracy.json").read_text())
    assert len(twin["points"]) == 6 and twin["paper"] and twin["summary"][0]["codec"] == "webp"
    assert (out / "rate_accuracy.png").read_bytes()[:4] == b"\x89PNG"
    assert b"paper: JPEG 4:2:0" in (out / "rate_accuracy.svg").read_bytes()


def test_bd_numbers_without_overlap_are_absent() -> None:
    ours = [Point("jointcodec-L2", "a", 0.5, None, 80.0), Point("jointcodec-L3", "b", 0.7, None, 82.0)]
    theirs = [Point("jpegxl", "1", 1.0, None, 83.0), Point("jpegxl", "2", 2.0, None, 85.0)]
    assert bd_compare(ours, theirs) == {"bpp_saving_percent": None, "accuracy_gain_points": None,
                                        "rate_overlap_bpp": None, "accuracy_overlap": None}


BAD = {  # case: (arguments, what the one line must say)
    "unknown-codec": (["baseline", "--codec", "bpg", "--results", "{tmp}/r"], "unknown codec 'bpg'"),
    "bad-setting": (["baseline", "--codec", "jpeg420", "--setting", "150", "--results", "{tmp}/r"],
                    "quality must be an integer in [1, 100]"),
    "setting-for-two": (["baseline", "--codec", "jpeg420", "webp", "--setting", "20", "--results", "{tmp}/r"],
                        "--setting applies to one"),
    "nothing-to-compare": (["compare", "--results", "{tmp}/none", "--out", "{tmp}/r"], "no results for cifar10"),
    "ladder-bad-codec": (["ladder", "--codec", "png", "--json", "{tmp}/r/x.json"], "unknown codec 'png'"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_error_line(case: str, cli_env: dict[str, str], tmp_path: Path) -> None:
    args, message = BAD[case]
    proc = run_cli([a.format(tmp=tmp_path) for a in args], cli_env, tmp_path)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "r").exists()  # nothing written
