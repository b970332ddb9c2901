"""Per-epoch metrics: kept in memory, rewritten atomically as CSV, mirrored to TensorBoard."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from jointcodec.utils import atomic_write

# A fall of training top-1 this large from one epoch to the next is a collapse, not noise: the finite-loss
# failure of a too-high learning rate (epoch-to-epoch noise on augmented images is about a point).
COLLAPSE_DROP = 10.0


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

    def collapse_warning(self) -> str | None:
        """A warning when the last epoch's training top-1 fell by COLLAPSE_DROP points or more from the one
        before (the run goes on: some recover, most end far below a stable run); None otherwise."""
        if len(self.rows) < 2:
            return None
        before, last = self.rows[-2]["train_top1"], self.rows[-1]["train_top1"]
        if before - last < COLLAPSE_DROP:
            return None
        return (f"warning: training top-1 fell from {before:.2f} % to {last:.2f} % in epoch {self.rows[-1]['epoch']}: "
                "the run has likely collapsed; a lower --lr usually avoids it")

    @staticmethod
    def format_line(row: dict) -> str:
        parts = [f"epoch {row['epoch']:3d}", f"loss {row['train_loss']:.3f}", f"train {row['train_top1']:.2f}%",
                 f"bpp {row['train_bpp']:.3f}"]
        if "val_top1" in row:
            parts += [f"val {row['val_top1']:.2f}%", f"val bpp {row['val_bpp']:.3f}"]
        parts.append(f"{row['elapsed_s'] / 60:.1f} min")
        return " | ".join(parts)
