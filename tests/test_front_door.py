"""What a new user meets first: a quick `--help`, every command's flags, `classify --labels`, a failed download
that says what to do, and the presets list."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest

from jointcodec.cli.main import COMMANDS, build_parser, main
from jointcodec.data import load_split
from jointcodec.errors import DataError

REPO = Path(__file__).resolve().parents[1]

# Runs in a fresh interpreter: each argv through main(), then which heavy modules got imported.
PROBE = """
import sys
from jointcodec.cli.main import main
for argv in {argvs!r}:
    try:
        main(argv)
    except SystemExit as exit_:
        assert exit_.code == 0, (argv, exit_.code)
print(sorted(m for m in ("torch", "torchvision", "numpy", "lightning", "PIL") if m in sys.modules))
"""


def test_help_and_version_import_no_torch() -> None:
    argvs = [["--help"], ["--version"], *([name, "--help"] for name in ("evaluate", "presets", "encode", "classify"))]
    proc = subprocess.run([sys.executable, "-c", PROBE.format(argvs=argvs)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "jointcodec 0.1.0" in proc.stdout and "classify" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout[-300:]


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_builds_its_flags(name: str, capsys) -> None:
    parser = build_parser([name])
    summary = COMMANDS[name][1]
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args([name, "--help"])
    assert exit_.value.code == 0
    page = capsys.readouterr().out
    assert page.startswith(f"usage: jointcodec {name}") and summary[:40] in " ".join(page.split())
    # The flags were built: the top-level listing alone knows only the name.
    assert parser.parse_args([name, *_required(name)]).run.__name__.startswith("run")


def _required(name: str) -> list[str]:
    """The fewest words each command parses with (its required arguments)."""
    return {"encode": ["x.png", "-o", "x.jcc"], "classify": ["x.jcc"], "export-edge": ["--out", "d"],
            "reconstruct": ["x.jcc", "-o", "x.png"], "train-decoder": ["--out", "d"], "export": ["--onnx", "d"],
            "baseline": ["--codec", "jpeg420"], "sweep": ["clean"]}.get(name, [])


def test_top_level_help_lists_every_command(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    listing = capsys.readouterr().out
    for name in COMMANDS:
        assert re.search(rf"^\s+{re.escape(name)}\b", listing, re.M), name


def test_classify_with_labels_reports_top1(data_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("JOINTCODEC_DATA", str(data_dir))
    spec = "cifar10:test[10:40]"
    bitstream, report = tmp_path / "x.jcc", tmp_path / "p.json"
    assert main(["encode", spec, "-o", str(bitstream)]) == 0
    assert main(["classify", str(bitstream), "--labels", spec, "--json", str(report)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(report.read_text())
    labels = load_split("cifar10", "test", data_dir).labels[10:40].tolist()
    correct = sum(p["label"] == y for p, y in zip(result["predictions"], labels, strict=True))
    assert result["labels"] == spec and result["correct"] == correct
    assert result["top1"] == pytest.approx(100 * correct / 30)
    assert f"top-1 {result['top1']:.2f}% ({correct} of 30) against the labels of {spec}" in printed
    assert correct >= 20  # the shipped model: about 89 % on the test split

    # Labels of another slice than the files hold, or the split typed where a file belongs: one line saying why;
    # the label count is checked before anything is decoded.
    from jointcodec.api import Codec

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded before the labels were checked")

    monkeypatch.setattr(Codec, "predict", no_decoding)
    assert main(["classify", str(bitstream), "--labels", "cifar10:test[:10]"]) == 1
    assert "has 10 labels but the files hold 30 images" in capsys.readouterr().err
    assert main(["classify", spec]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"encode it first (jointcodec encode {spec} -o x.jcc)" in err


def test_failed_download_says_what_to_do_and_leaves_no_folder(tmp_path: Path, monkeypatch) -> None:
    import torchvision.datasets.utils

    def offline(url, root, filename=None, md5=None, **kwargs):  # like the real one: folder, partial file, error
        Path(root).mkdir(parents=True, exist_ok=True)
        (Path(root) / filename).write_bytes(b"partial")
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.datasets.utils, "download_url", offline)
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as err:
        load_split("cifar10", "test", cache / "jointcodec" / "data", download=True)
    message = str(err.value)
    assert "\n" not in message and "no network" in message
    for way in ("--data-dir DIR", "JOINTCODEC_DATA=DIR", "DIR/cifar-10-batches-py/", "DIR/cifar10/{train,test}.npz"):
        assert way in message, way
    assert not cache.exists()

    # A folder that was there before stays, with what it held.
    kept = tmp_path / "mine"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    with pytest.raises(DataError):
        load_split("cifar100", "test", kept, download=True)
    assert (kept / "notes.txt").read_text() == "mine"

    with pytest.raises(DataError, match=r"not found under .*pass --download to fetch it, or point --data-dir DIR"):
        load_split("cifar10", "test", tmp_path / "empty")
    assert not (tmp_path / "empty").exists()


def test_presets_in_aligned_columns_and_all_in_the_readme(capsys) -> None:
    from jointcodec.models import PRESETS

    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == list(PRESETS)
    assert len({line.index("{") for line in lines}) == 1
    for line in lines:
        json.loads(line[line.index("{"):])
    readme = (REPO / "README.md").read_text()
    assert [name for name in PRESETS if f"`{name}`" not in readme] == []
