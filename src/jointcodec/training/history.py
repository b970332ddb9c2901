"""Per-epoch metrics: kept in memory, rewritten atomically as CSV, mirrored to TensorBoard."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from jointcodec.utils import atomic_write


class History:
    def __init__(self, csv_path: Path) -> None:
        self.csv_path = csv_path
        self.rows: list[dict] = []
        self._writer = None

    def append(self, row: dict) -> None:
        self.rows.append(row)
        self._write_csv()
        self._tensorboard(row)

    def _write_csv(self) -> None:
        columns = list(dict.fromkeys(k for row in self.rows for k in row))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write(self.csv_path, lambda tmp: Path(tmp).write_text(buffer.getvalue()))

    def _tensorboard(self, row: dict) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional at run time; the CSV always exists
            return
        if self._writer is None:
            self._writer = SummaryWriter(str(self.csv_path.parent / "tensorboard"))
        for key, value in row.items():
            if key != "epoch" and isinstance(value, int | float):
                self._writer.add_scalar(key, value, row["epoch"])
        self._writer.flush()

    @staticmethod
    def format_line(row: dict) -> str:
        parts = [f"epoch {row['epoch']:3d}", f"loss {row['train_loss']:.3f}", f"train {row['train_top1']:.2f}%",
                 f"bpp {row['train_bpp']:.3f}"]
        if "val_top1" in row:
            parts += [f"val {row['val_top1']:.2f}%", f"val bpp {row['val_bpp']:.3f}"]
        parts.append(f"{row['elapsed_s'] / 60:.1f} min")
        return " | ".join(parts)
