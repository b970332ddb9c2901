"""`jointcodec encode`, `classify`, `export --split` and `evaluate --coded` on real CIFAR-10 images."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from jointcodec.api import Codec
from jointcodec.checkpoint import model_config, save_model
from jointcodec.data import load_split, normalize
from jointcodec.models import create_model, get_preset

CLI = [sys.executable, "-m", "jointcodec.cli.main"]
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=300, env=env)


def one_error_line(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "error" in lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def run_in_process(args: list[str], capsys) -> subprocess.CompletedProcess:
    """``main(args)`` in this process (fast); SystemExit from argparse counts as the exit status."""
    from jointcodec.cli.main import main

    try:
        code = main([str(a) for a in args])
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, captured.out, captured.err)


def make_checkpoint(folder: Path, preset: str = "cifar-v1", seed: int = 0) -> Path:
    torch.manual_seed(seed)
    model = create_model(preset, 2, 10).eval()
    save_model(folder, model, model_config(model, get_preset(preset).to_dict(), CLASSES, "cifar10"))
    return folder


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("run"))


def test_encode_then_classify_matches_the_in_memory_model(checkpoint: Path, tmp_path: Path, cli_env,
                                                          data_dir: Path) -> None:
    test = load_split("cifar10", "test", data_dir)
    png, jpeg = tmp_path / "a.png", tmp_path / "b.jpg"
    Image.fromarray(test.images[10].permute(1, 2, 0).numpy()).save(png)
    Image.fromarray(np.zeros((40, 50, 3), dtype=np.uint8) + 128).save(jpeg)
    out = tmp_path / "x.jcc"
    proc = run(["encode", "--checkpoint", checkpoint, "cifar10:test[:6]", png, jpeg, "-o", out], cli_env)
    assert proc.returncode == 0, proc.stderr
    assert "resized and centre-cropped" in proc.stderr and "bpp payload" in proc.stdout
    report = tmp_path / "p.json"
    proc = run(["classify", "--checkpoint", checkpoint, out, out, "--top-k", "3", "--json", report], cli_env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(report.read_text())
    codec = Codec.load(checkpoint)
    assert result["model"] == codec.fingerprint.hex()
    predictions = result["predictions"]
    assert len(predictions) == 16 and [p["index"] for p in predictions[:8]] == list(range(8))
    first = predictions[0]
    assert set(first) >= {"label", "class", "probability", "top_k"} and len(first["top_k"]) == 3
    assert first["class"] == CLASSES[first["label"]]
    with torch.no_grad():
        expected = codec.model(normalize(test.images[:6])).logits.argmax(1).tolist()
    assert [p["label"] for p in predictions[:6]] == expected
    # Without --json: one line per image.
    proc = run(["classify", "--checkpoint", checkpoint, out], cli_env)
    assert proc.returncode == 0 and len(proc.stdout.strip().splitlines()) == 8


def test_a_folder_encodes_its_image_files_in_name_order(checkpoint: Path, tmp_path: Path, data_dir: Path,
                                                      capsys) -> None:
    test = load_split("cifar10", "test", data_dir)
    folder = tmp_path / "photos"
    folder.mkdir()
    for index, name in ((3, "b.png"), (7, "a.png")):
        Image.fromarray(test.images[index].permute(1, 2, 0).numpy()).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    from_folder, from_files = tmp_path / "folder.jcc", tmp_path / "files.jcc"
    for inputs, target in (([folder], from_folder), ([folder / "a.png", folder / "b.png"], from_files)):
        proc = run_in_process(["encode", "--checkpoint", checkpoint, *inputs, "-o", target], capsys)
        assert proc.returncode == 0, proc.stderr
    assert from_folder.read_bytes() == from_files.read_bytes()


def test_progress_bars_show_on_request_and_stay_out_of_pipes(checkpoint: Path, tmp_path: Path, data_dir: Path,
                                                             monkeypatch, capsys) -> None:
    from jointcodec.utils import image_bar

    for show, expected in ((True, True), (None, False), (False, False)):  # None: only on a terminal (capsys is not)
        with image_bar(5, "decode", show) as bar:
            bar.update(5)
        assert ("decode" in capsys.readouterr().err) is expected, show
    monkeypatch.setenv("JOINTCODEC_DATA", str(data_dir))
    files = []
    for flags in ([], ["--no-progress"]):
        target = tmp_path / f"{len(flags)}.jcc"
        encoded = run_in_process(["encode", "--checkpoint", checkpoint, "cifar10:test[:3]", "-o", target, *flags],
                                 capsys)
        assert encoded.returncode == 0 and not encoded.stderr, encoded.stderr
        classified = run_in_process(["classify", "--checkpoint", checkpoint, target, *flags], capsys)
        assert classified.returncode == 0 and not classified.stderr, classified.stderr
        files.append((target.read_bytes(), classified.stdout.replace(str(target), "F")))
    assert files[0] == files[1]


def test_split_deployment(checkpoint: Path, tmp_path: Path, data_dir: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("JOINTCODEC_DATA", str(data_dir))
    parts = tmp_path / "deploy"
    proc = run_in_process(["export", "--checkpoint", checkpoint, "--split", parts], capsys)
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    meta = json.loads((parts / "deployment.json").read_text())
    assert set(meta["parts"]) == {"edge", "server"}
    edge, server = parts / "edge.safetensors", parts / "server.safetensors"
    assert edge.stat().st_size < (checkpoint / "model.safetensors").stat().st_size
    edge_file, full_file = tmp_path / "e.jcc", tmp_path / "f.jcc"
    for source, target in ((edge, edge_file), (checkpoint, full_file)):
        proc = run_in_process(["encode", "--checkpoint", source, "cifar10:test[:4]", "-o", target], capsys)
        assert proc.returncode == 0, proc.stderr
    assert edge_file.read_bytes() == full_file.read_bytes()
    by_server = run_in_process(["classify", "--checkpoint", server, edge_file], capsys)
    by_full = run_in_process(["classify", "--checkpoint", checkpoint, edge_file], capsys)
    assert by_server.returncode == 0 and by_server.stdout == by_full.stdout
    encode_on_server = ["encode", "--checkpoint", server, "cifar10:test[:2]", "-o", tmp_path / "s.jcc"]
    one_error_line(run_in_process(encode_on_server, capsys), "server part", "no encoder")
    one_error_line(run_in_process(["classify", "--checkpoint", edge, edge_file], capsys), "edge part", "no classifier")


def test_export_edge_is_an_alias_of_export_split(checkpoint: Path, tmp_path: Path, capsys) -> None:
    new = run_in_process(["export", "--checkpoint", checkpoint, "--split", tmp_path / "new"], capsys)
    old = run_in_process(["export-edge", "--checkpoint", checkpoint, "--out", tmp_path / "old"], capsys)
    assert new.returncode == old.returncode == 0
    assert f"export --checkpoint {checkpoint} --split {tmp_path / 'old'}" in old.stderr  # where the new form is
    for name in ("edge.safetensors", "server.safetensors", "deployment.json"):
        assert (tmp_path / "new" / name).read_bytes() == (tmp_path / "old" / name).read_bytes()
    assert new.stdout.split(":")[0] == old.stdout.split(":")[0]  # "model <fingerprint>"


def test_export_takes_exactly_one_form(checkpoint: Path, tmp_path: Path, capsys) -> None:
    assert run_in_process(["export", "--checkpoint", checkpoint], capsys).returncode == 2
    both = ["export", "--checkpoint", checkpoint, "--split", tmp_path / "a", "--onnx", tmp_path / "b"]
    assert run_in_process(both, capsys).returncode == 2
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_bad_inputs_are_one_clear_line(checkpoint: Path, tmp_path: Path, data_dir: Path, monkeypatch,
                                       capsys) -> None:
    monkeypatch.setenv("JOINTCODEC_DATA", str(data_dir))
    good = tmp_path / "good.jcc"
    encoded = run_in_process(["encode", "--checkpoint", checkpoint, "cifar10:test[:2]", "-o", good], capsys)
    assert encoded.returncode == 0, encoded.stderr
    data = good.read_bytes()
    damaged, short, future, text = (tmp_path / n for n in ("damaged.jcc", "short.jcc", "future.jcc", "notes.txt"))
    damaged.write_bytes(data[:-8] + bytes([data[-8] ^ 1]) + data[-7:])
    short.write_bytes(data[:-3])
    future.write_bytes(data[:3] + b"\x09" + data[4:])
    text.write_text("hello")
    other = make_checkpoint(tmp_path / "other", seed=1)
    empty_folder = tmp_path / "empty"
    empty_folder.mkdir()
    (empty_folder / "notes.txt").write_text("not an image")
    cases = [
        (["classify", "--checkpoint", checkpoint, damaged], ["corrupt", "CRC32"]),
        (["classify", "--checkpoint", checkpoint, short], ["truncated"]),
        (["classify", "--checkpoint", checkpoint, future], ["version 9 is not supported"]),
        (["classify", "--checkpoint", other, good], ["written by model"]),
        (["classify", "--checkpoint", checkpoint, text], ["not a jointcodec bitstream"]),
        (["classify", "--checkpoint", checkpoint, tmp_path / "missing.jcc"], ["cannot read"]),
        # every file is read and checked before any is decoded: a bad last file fails at once
        (["classify", "--checkpoint", checkpoint, good, good, damaged], ["corrupt", "CRC32"]),
        (["classify", "--checkpoint", checkpoint, good, "--top-k", "0"], ["--top-k"]),
        (["encode", "--checkpoint", checkpoint, "nothing-here.png", "-o", tmp_path / "o.jcc"], ["no such file"]),
        (["encode", "--checkpoint", checkpoint, text, "-o", tmp_path / "o.jcc"], ["cannot read image"]),
        (["encode", "--checkpoint", checkpoint, "cifar10:test[5:5]", "-o", tmp_path / "o.jcc"], ["no images"]),
        (["encode", "--checkpoint", checkpoint, empty_folder, "-o", tmp_path / "o.jcc"], ["folder with no image"]),
        (["encode", "--checkpoint", checkpoint, "cifar10:test[:2]"], ["-o/--output"]),
        (["encode", "--checkpoint", tmp_path / "nope", "cifar10:test[:2]", "-o", tmp_path / "o.jcc"],
         ["no checkpoint"]),
    ]
    for args, fragments in cases:
        one_error_line(run_in_process(args, capsys), *fragments)


def test_evaluate_coded_reports_real_rates(tmp_path: Path, cli_env) -> None:
    checkpoint = make_checkpoint(tmp_path / "run", preset="cifar-v1-channel")
    report = tmp_path / "eval.json"
    proc = run(["evaluate", "--checkpoint", checkpoint, "--limit", "40", "--coded", "--json", report,
                "--no-progress"], cli_env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(report.read_text())
    for key in ("top1", "top5", "bpp_estimated", "n_images", "latent_shape", "levels", "dataset", "split",
                "bpp_payload", "bpp_file", "header_bytes", "rate_gap_relative"):
        assert key in result, key
    assert result["symbols_exact"] and result["labels_match_in_memory"] == 1.0
    assert result["top1_coded"] == result["top1"]
    assert result["bpp_file"] > result["bpp_payload"] > 0
    assert abs(result["bpp_payload"] / result["bpp_estimated"] - 1 - result["rate_gap_relative"]) < 1e-9
    assert "bpp payload" in proc.stdout
