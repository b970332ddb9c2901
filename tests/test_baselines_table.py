"""experiments/baselines_table.py: the CPU budget counts a cached robust pool once, however many receivers use it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "baselines_table.py"


def _module():
    spec = importlib.util.spec_from_file_location("baselines_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _receiver(folder: Path, name: str, cpu_s: float, pool_cpu_s: float | None, init_from: str | None = None) -> None:
    pool = [{"codec": "jpeg420", "setting": 15, "n_images": 100}] if pool_cpu_s is not None else []
    record = {"cpu_s": cpu_s, "history": [{"val_top1": 50.0}, {"val_top1": 60.0}], "pool": pool,
              "pool_coding_cpu_s": pool_cpu_s, "init_from": init_from}
    (folder / "receivers").mkdir(parents=True, exist_ok=True)
    (folder / "receivers" / f"{name}.json").write_text(json.dumps(record))


def test_a_shared_pool_is_paid_once(tmp_path: Path) -> None:
    _receiver(tmp_path, "clean", 600.0, None)
    _receiver(tmp_path, "robust", 600.0, 120.0)
    _receiver(tmp_path, "robust-from-clean", 180.0, 120.0, init_from="runs/receivers/cifar10/clean")
    table, total = _module().receivers_table(tmp_path)
    assert total == 600.0 + 600.0 + 120.0 + 180.0
    rows = table.splitlines()[2:]
    assert "| robust | scratch | 2 | 60.00 | 10.0 | 2.0 |" in rows
    assert "| robust-from-clean | clean receiver | 2 | 60.00 | 3.0 | shared (cached) |" in rows
