"""Shared fixtures: real CIFAR-10 data (npz), found through $JOINTCODEC_DATA or unpacked from shared/."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

# scripts/test.sh runs one pytest worker per core: one torch thread per test process keeps them from contending.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared"
PREPARE = SHARED / "data" / "prepare.py"
DATASET = "cifar10"


def _valid_data_dir(root: Path) -> bool:
    """``root/cifar10/{train,test}.npz`` as written by ``prepare.py --format npz``."""
    return all((root / DATASET / f"{split}.npz").is_file() for split in ("train", "test"))


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory holding real CIFAR-10 as npz: $JOINTCODEC_DATA, else unpacked by shared/data/prepare.py."""
    env = os.environ.get("JOINTCODEC_DATA")
    if env and _valid_data_dir(Path(env)):
        return Path(env)
    if not PREPARE.is_file():
        pytest.skip(f"no CIFAR-10 data: $JOINTCODEC_DATA is {'unset' if not env else f'{env!r}, not valid'} "
                    f"and {PREPARE} does not exist")
    out = tmp_path_factory.mktemp("data")
    proc = subprocess.run([sys.executable, str(PREPARE), "--out", str(out), "--format", "npz",
                           "--datasets", DATASET], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 or not _valid_data_dir(out):
        pytest.skip(f"no CIFAR-10 data: $JOINTCODEC_DATA is {'unset' if not env else f'{env!r}, not valid'} "
                    f"and {PREPARE} failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    return out


@pytest.fixture
def cli_env(data_dir: Path) -> dict[str, str]:
    """Environment for a ``python -m jointcodec.cli.main`` subprocess: real data, one thread, no GPU."""
    env = dict(os.environ)
    env.update(JOINTCODEC_DATA=str(data_dir), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               CUDA_VISIBLE_DEVICES="", PYTHONWARNINGS=env.get("PYTHONWARNINGS", ""))
    return env
