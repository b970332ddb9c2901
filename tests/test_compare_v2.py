"""``jointcodec compare`` on protocol-v2 baseline points (one JSON file per point): the table's protocol and
receiver columns, the best-of-protocols rule, BD-rate's sign, single-point numbers, no extrapolation, the
missing ladder settings, and the CLI. Tiny synthetic files only: no data, no training."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jointcodec.baselines import compare as cmp
from jointcodec.baselines.compare import COLUMNS, Point, codec_curve, compare, format_missing, format_summary
from jointcodec.baselines.compare import points as cmp_points
from jointcodec.baselines.compare import report as cmp_report
from jointcodec.codecs import CODECS

CLI = [sys.executable, "-m", "jointcodec.cli.main"]


def point_file(root: Path, system: str, setting: object, protocol: str, bpp: float, top1: float,
               dataset: str = "cifar10", receiver: str = "airnet-s") -> Path:
    """A v2 baseline point: ``root/<system>/<setting>-<protocol>.json`` with every key of the schema."""
    clean = protocol == "clean"
    record = {"system": system, "setting": "none" if clean else setting, "setting_name": "quality",
              "dataset": dataset, "protocol": protocol, "receiver": receiver, "payload_bpp": 24.0 if clean else bpp,
              "file_bpp": 24.0 if clean else bpp + 4.0, "psnr_db": None if clean else 30.0, "top1": top1,
              "top5": 99.0, "n_test": 10000, "cpu_s": 812.3, "wall_s": 420.0, "command": "test",
              "machine": {"cpus": 2}, "created": "2025-01-01T00:00:00"}
    path = root / system / f"{record['setting']}-{protocol}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def coded_eval(path: Path, levels: int, bpp: float, top1: float, checkpoint: str | None = None,
               dataset: str = "cifar10") -> Path:
    """A record shaped like `jointcodec evaluate --coded --json` output."""
    path.write_text(json.dumps({"dataset": dataset, "levels": levels, "bpp_payload": bpp, "bpp_file": bpp + 0.17,
                                "top1": top1 + 0.1, "top1_coded": top1, "top5": 99.0, "n_images": 10000,
                                "checkpoint": checkpoint or f"runs/L{levels}", "preset": "cifar-v2"}))
    return path


def webp_at_twice_the_rate(root: Path) -> None:
    """webp needs exactly twice jointcodec's rate for every accuracy (see ``three_systems``)."""
    for setting, bpp, top1 in ((4, 1.0, 70.0), (10, 2.0, 80.0), (25, 4.0, 85.0)):
        point_file(root, "webp", setting, "robust", bpp, top1)


def three_systems(folder: Path) -> list[Path]:
    folder.mkdir(exist_ok=True)
    return [coded_eval(folder / f"L{lv}.json", lv, bpp, top1)
            for lv, bpp, top1 in ((2, 0.5, 70.0), (3, 1.0, 80.0), (6, 2.0, 85.0))]


def test_csv_has_protocol_receiver_and_cpu_columns(tmp_path: Path) -> None:
    results = tmp_path / "baselines"
    point_file(results, "jpeg420", 15, "robust", 0.76, 80.0)
    point_file(results, "jpeg420", 15, "fine-tuned", 0.76, 82.0)
    point_file(results, "clean", None, "clean", 0, 93.5)
    point_file(results, "webp", 10, "robust", 0.8, 81.0, dataset="cifar100")  # another data set: left out
    joint = coded_eval(tmp_path / "L2.json", 2, 0.74, 86.3)
    compare("cifar10", results, [joint], tmp_path / "docs", command="test", draw=False)

    with (tmp_path / "docs" / "cifar10" / "rate_accuracy.csv").open() as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS and {"protocol", "receiver", "cpu_s"} <= set(COLUMNS)
        rows = list(reader)
    assert [(r["system"], r["protocol"], r["receiver"]) for r in rows] == [
        ("jointcodec-L2", "joint", "cifar-v2"), ("jpeg420", "robust", "airnet-s"),
        ("jpeg420", "fine-tuned", "airnet-s"), ("clean", "clean", "airnet-s")]
    assert rows[1]["cpu_s"] == "812.3" and rows[0]["cpu_s"] == ""
    assert rows[1]["setting"] == "15" and rows[3]["setting"] == "none"


def test_best_of_protocols_per_setting(tmp_path: Path) -> None:
    results = tmp_path / "baselines"
    point_file(results, "hevc", 22, "robust", 1.0, 80.0)
    point_file(results, "hevc", 22, "fine-tuned", 1.0, 83.0)  # better: hevc's number at 22
    point_file(results, "hevc", 27, "robust", 1.4, 86.0)  # better than the scratch one
    point_file(results, "hevc", 27, "scratch", 1.4, 84.0)
    point_file(results, "hevc", 35, "robust", 2.0, 88.0)
    point_file(results, "hevc", 35, "scratch", 2.0, 88.0)  # a tie goes to robust
    point_file(results, "hevc", 40, "robust", 2.4, 88.5)
    point_file(results, "hevc", 40, "clean-receiver", 2.4, 90.0)  # the clean receiver reads mild coding better
    points = cmp.codec_points(results, "cifar10")
    curve = codec_curve(points, "hevc")
    assert [(p.setting, p.protocol, p.top1) for p in curve] == [
        ("22", "fine-tuned", 83.0), ("27", "robust", 86.0), ("35", "robust", 88.0), ("40", "clean-receiver", 90.0)]

    joint = coded_eval(tmp_path / "L2.json", 2, 1.0, 85.0)
    (row,) = compare("cifar10", results, [joint], tmp_path / "docs", draw=False)["summary"]
    assert [c["protocol"] for c in row["curve"]] == ["fine-tuned", "robust", "robust", "clean-receiver"]
    assert row["at_default"]["codec_top1"] == pytest.approx(83.0)  # the fine-tuned point, not robust's 80
    assert row["at_default"]["lead_points"] == pytest.approx(2.0)


def test_bd_rate_sign_and_bits_saved(tmp_path: Path) -> None:
    results = tmp_path / "baselines"
    webp_at_twice_the_rate(results)
    (row,) = compare("cifar10", results, three_systems(tmp_path / "joint"), tmp_path / "docs", draw=False)["summary"]
    assert row["bd_rate_percent"] == pytest.approx(-50.0)  # negative: jointcodec needs fewer bits
    assert row["bpp_saving_percent"] == pytest.approx(50.0)  # bits saved = -BD-rate
    assert row["rate_kind"] == row["accuracy_kind"] == "mean over range"
    # BD-accuracy: the mean gain over the shared log-bpp range [1, 2], integrated exactly (the gain is 10 points
    # at 1 bpp and 5 at 2, linear in log bpp between them).
    assert row["accuracy_gain_points"] == pytest.approx(7.5)
    text = format_summary([row])
    assert "-50.0%" in text and "50.0% fewer bits" in text and "BD-accuracy" in text


def test_bd_rate_of_a_costlier_system_is_positive() -> None:
    ours = [Point("jointcodec-L2", "a", 2.0, None, 70.0), Point("jointcodec-L3", "b", 4.0, None, 80.0)]
    theirs = [Point("avif", "1", 1.0, None, 70.0, protocol="robust"), Point("avif", "2", 2.0, None, 80.0,
                                                                           protocol="robust")]
    row = cmp.bd_row(ours, theirs, "avif")
    assert row["bd_rate_percent"] == pytest.approx(100.0) and row["bpp_saving_percent"] == pytest.approx(-100.0)
    assert "100.0% more bits" in cmp_report._bits_saved(row["bpp_saving_percent"])


def test_single_point_jointcodec_gives_its_lead_and_bits_saved(tmp_path: Path) -> None:
    results = tmp_path / "baselines"
    webp_at_twice_the_rate(results)
    joint = coded_eval(tmp_path / "L2.json", 2, 1.5, 84.0)
    (row,) = compare("cifar10", results, [joint], tmp_path / "docs", draw=False)["summary"]
    webp_at_1_5 = 70.0 + 10.0 * math.log(1.5) / math.log(2.0)  # linear in log bpp between 1 and 2 bpp
    webp_rate_at_84 = 2.0 * 2.0 ** (4.0 / 5.0)  # 80 % at 2 bpp, 85 % at 4 bpp
    assert row["accuracy_kind"] == row["rate_kind"] == "at one value"
    assert row["accuracy_gain_points"] == pytest.approx(84.0 - webp_at_1_5)
    assert row["bpp_saving_percent"] == pytest.approx(100 * (1 - 1.5 / webp_rate_at_84))
    assert row["bd_rate_percent"] == pytest.approx(-row["bpp_saving_percent"])
    assert row["at_default"]["lead_points"] == pytest.approx(84.0 - webp_at_1_5)
    (system,) = row["systems"]
    assert system["system"] == "jointcodec-L2" and system["accuracy_gain_points"] == row["accuracy_gain_points"]


def test_no_overlap_is_absent_not_extrapolated(tmp_path: Path) -> None:
    results = tmp_path / "baselines"
    webp_at_twice_the_rate(results)  # 1-4 bpp, 70-85 %
    joint = coded_eval(tmp_path / "L2.json", 2, 0.5, 60.0)  # cheaper and worse than every webp point
    (row,) = compare("cifar10", results, [joint], tmp_path / "docs", draw=False)["summary"]
    assert row["accuracy_gain_points"] is None and row["bd_rate_percent"] is None
    assert row["bpp_saving_percent"] is None and row["at_default"]["codec_top1"] is None
    assert any("no shared rate" in n and "0.50 bpp only" in n and "1.00-4.00 bpp" in n for n in row["notes"])
    assert any("no shared accuracy" in n for n in row["notes"])
    text = format_summary([row])
    assert "n/a" in text and "no shared rate" in text and "starts at 1.000 bpp" in text

    # Two curves side by side, no shared range either way.
    ours = [Point("jointcodec-L2", "a", 0.5, None, 80.0), Point("jointcodec-L3", "b", 0.7, None, 82.0)]
    theirs = [Point("jpegxl", "1", 1.0, None, 83.0), Point("jpegxl", "2", 2.0, None, 85.0)]
    assert cmp.bd_row(ours, theirs, "jpegxl")["accuracy_kind"] is None


def test_missing_ladder_settings_are_listed(tmp_path: Path) -> None:
    results = tmp_path / "baselines"
    point_file(results, "jpeg420", 15, "robust", 0.76, 80.0)
    point_file(results, "jpeg420", 35, "robust", 1.1, 84.0)
    point_file(results, "jpeg420", 5, "fine-tuned", 0.4, 60.0)  # not robust: 5 is still missing
    point_file(results, "jpegxl", 25.0, "robust", 0.5, 70.0)  # the ladder's 25.0 is this "25"
    outcome = compare("cifar10", results, [], tmp_path / "docs", draw=False)
    missing = {(m["system"], m["setting"]) for m in outcome["missing"]}
    assert {s for c, s in missing if c == "jpeg420"} == {"5", "10", "22", "60"}
    assert ("jpegxl", "25") not in missing and ("jpegxl", "11") in missing
    for name, codec in CODECS.items():
        if name not in ("jpeg420", "jpegxl"):
            assert {s for c, s in missing if c == name} == {cmp_points.setting_key(s) for s in codec.ladder}
    assert all(m["protocol"] == "robust" for m in outcome["missing"])
    twin = json.loads((tmp_path / "docs" / "cifar10" / "rate_accuracy.json").read_text())
    assert twin["missing"] == outcome["missing"] and twin["summary"] == []  # no jointcodec points: no BD rows
    text = format_missing(outcome["missing"])
    assert "jpeg420   quality 5, 10, 22, 60\n" in text and "webp" in text and "(all)" in text
    # Only the codecs a data set's sweep covers.
    only = compare("cifar10", results, [], tmp_path / "docs", draw=False, codecs=["jpeg420", "hevc"])
    assert {m["system"] for m in only["missing"]} == {"jpeg420", "hevc"}


def test_v1_results_are_read_beside_v2(tmp_path: Path) -> None:
    results = tmp_path / "results"
    folder = results / "cifar10" / "webp" / "10"
    folder.mkdir(parents=True)
    v1 = {"system": "webp", "setting": 10, "dataset": "cifar10", "payload_bpp": 1.0, "top1": 75.0,
          "protocol": {"preset": "cifar-v1"}}  # v1's "protocol" is the recipe, its receiver the preset
    (folder / "result.json").write_text(json.dumps(v1))
    point_file(results, "webp", 10, "robust", 1.0, 74.0)
    points = cmp.codec_points(results, "cifar10")
    assert sorted((p.protocol, p.receiver) for p in points) == [("robust", "airnet-s"), ("v1-scratch", "cifar-v1")]
    assert [p.protocol for p in codec_curve(points, "webp")] == ["v1-scratch"]  # the better one counts


def test_zoo_models_are_systems_of_their_own(monkeypatch: pytest.MonkeyPatch) -> None:
    zoo = {"default": "cifar10-v1deep-L2", "cifar10-v1deep-L2": "cifar10-v1deep-L2", "cifar10-air-L3": "air"}
    monkeypatch.setattr(cmp_points, "_zoo_models", lambda: zoo)
    assert cmp_points.jointcodec_system({"levels": 2, "checkpoint": "default"}) == "jointcodec-L2"
    assert cmp_points.jointcodec_system({"levels": 2, "checkpoint": "cifar10-v1deep-L2"}) == "jointcodec-L2"
    assert cmp_points.jointcodec_system({"levels": 6, "checkpoint": "runs/x"}) == "jointcodec-L6"
    assert cmp_points.jointcodec_system({"levels": 3, "checkpoint": "cifar10-air-L3"}) == "jointcodec-cifar10-air-L3"


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    return subprocess.run(CLI + args, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_cli_writes_the_four_files(tmp_path: Path) -> None:
    # The default --results follows --dataset: docs/results/<dataset>/baselines under the working directory.
    results = tmp_path / "docs" / "results" / "cifar100" / "baselines"
    for setting, bpp, top1 in ((5, 0.4, 40.0), (15, 0.76, 52.0), (35, 1.1, 58.0)):
        point_file(results, "jpeg420", setting, "robust", bpp, top1, dataset="cifar100")
    point_file(results, "jpeg420", 15, "scratch", 0.76, 50.0, dataset="cifar100")
    point_file(results, "clean", None, "clean", 0, 72.0, dataset="cifar100")
    joint = coded_eval(tmp_path / "L2.json", 2, 0.74, 64.0, dataset="cifar100")
    proc = _cli(["compare", "--dataset", "cifar100", "--jointcodec", str(joint)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "docs" / "results" / "cifar100"
    for suffix in ("csv", "json", "png", "svg"):
        assert (out / f"rate_accuracy.{suffix}").stat().st_size > 0
    assert "BD-rate" in proc.stdout and "without a robust point" in proc.stdout
    svg = (out / "rate_accuracy.svg").read_bytes()
    assert b"clean: 72.0%" in svg and b"paper: JPEG" in svg
    twin = json.loads((out / "rate_accuracy.json").read_text())
    assert {"points", "summary", "missing", "command"} <= set(twin) and twin["command"].startswith("jointcodec compare")


def test_cli_bad_results_path_is_one_error_line(tmp_path: Path) -> None:
    proc = _cli(["compare", "--results", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")], tmp_path)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "nowhere does not exist" in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "r").exists()


def test_bits_saved_bound_where_the_codec_never_reaches_our_accuracy(tmp_path: Path) -> None:
    """No shared accuracy: BD-rate stays absent, and the bound says the codec needs more than its top rate."""
    results = tmp_path / "baselines"
    point_file(results, "hevc", 35, "robust", 0.8, 83.0)
    point_file(results, "hevc", 25, "fine-tuned", 2.0, 87.5)
    point_file(results, "webp", 60, "robust", 2.0, 90.0)  # reaches 88 %: no bound, BD-rate can speak
    point_file(results, "webp", 10, "robust", 1.0, 82.0)
    joint = coded_eval(tmp_path / "L2.json", 2, 0.5, 88.0)
    rows = {r["codec"]: r for r in compare("cifar10", results, [joint], tmp_path / "docs", draw=False)["summary"]}
    bound = rows["hevc"]["saving_bound"]
    assert rows["hevc"]["bd_rate_percent"] is None
    assert bound["at_least_percent"] == pytest.approx(75.0) and bound["codec_bpp"] == pytest.approx(2.0)
    assert bound["codec_best_top1"] == pytest.approx(87.5)
    assert rows["webp"]["saving_bound"] is None
    assert "at least 75.0% fewer bits" in format_summary(list(rows.values()))
