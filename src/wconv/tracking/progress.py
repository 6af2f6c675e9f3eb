"""Signs of life that work off a terminal (SLURM): one log line per epoch and a ``metrics.csv`` per training."""

from __future__ import annotations

import csv
import logging
import math
import time
from pathlib import Path

log = logging.getLogger("wconv.train")


def duration(seconds: float) -> str:
    """``1h02m``, ``3m20s`` or ``12s``."""
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class EpochLog:
    """Called with each epoch's row: logs epoch/total, training loss, the validation metric, lr, seconds per epoch
    and the training's ETA, and appends the row to ``path`` (CSV; a resumed training appends after its last row)."""

    def __init__(self, name: str, epochs: int, path: Path, metric: str) -> None:
        self.name, self.epochs, self.path, self.metric = name, epochs, Path(path), metric
        self.started, self.done_here = time.perf_counter(), 0

    def __call__(self, row: dict) -> None:
        self.done_here += 1
        epoch = int(row["epoch"])
        eta = (time.perf_counter() - self.started) / self.done_here * (self.epochs - epoch)
        val = row.get(self.metric, row.get("val_loss"))
        shown = self.metric if self.metric in row else "val_loss"
        log.info(
            f"{self.name} epoch {epoch}/{self.epochs} train_loss {row['train_loss']:.4g} "
            f"{shown} {val if val is None else f'{val:.4g}'} lr {row['lr']:.3g} "
            f"{row['seconds']:.1f} s/epoch ETA {duration(eta)}"
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists() or epoch == 1
        with open(self.path, "w" if epoch == 1 else "a", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(row), extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)
