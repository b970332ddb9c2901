"""Data-parallel training: two CPU processes (gloo), launched by Lightning Fabric from the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from jointcodec.checkpoint import TRAINER_STATE, WEIGHTS, load_model


@pytest.mark.slow
def test_two_process_gloo_training_step(cli_env: dict[str, str], tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["train", "--devices", "2", "--device", "cpu", "--precision", "32-true", "--train-subset", "512",
            "--val-size", "128", "--batch-size", "64", "--epochs", "1", "--no-test", "--no-progress",
            "--out", str(run)]
    try:
        proc = subprocess.run([sys.executable, "-m", "jointcodec.cli.main", *args], env=cli_env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"2-process training did not finish in {err.timeout} s:\n{err.stderr}")

    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    assert "on cpu x2" in proc.stdout
    assert (run / WEIGHTS).is_file() and (run / TRAINER_STATE).is_file()
    model, config = load_model(run)
    assert config["run"]["devices"] == 2 and config["epoch"] == 1
    assert [row["epoch"] for row in config["history"]] == [1]
    # 384 training images, global batch 64 (32 per process): 6 optimizer steps.
    assert torch.load(run / TRAINER_STATE, weights_only=True)["scheduler"]["last_epoch"] == 6
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.bits).all()
    assert json.loads((run / "config.json").read_text())["epoch"] == 1
