"""One metrics logger for every run: a CSV file (always) and TensorBoard events (when installed).

Metric keys are namespaced (``train/…``, ``eval/…``, ``d/…``, ``time/…``). Each row carries a global,
monotone ``step``; a resumed run drops the rows logged after its checkpoint, so an interrupted and a
straight run end with the same file.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path
from typing import Any

from seqgan_rl.utils import atomic_write_text

log = logging.getLogger(__name__)


class MetricsLogger:
    """Append metrics rows to ``path`` (CSV with a fixed header).

    Args:
        path: CSV file.
        fieldnames: columns after ``step``; keys outside them are an error (typos lose nothing silently).
        resume_step: when resuming, keep only existing rows with ``step <= resume_step``; ``None`` starts
            a fresh file.
        tensorboard_dir: also write TensorBoard events there, if the ``tensorboard`` package is installed.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fieldnames: list[str],
        resume_step: int | None = None,
        tensorboard_dir: str | os.PathLike | None = None,
    ) -> None:
        self.path = Path(path)
        self.fieldnames = ["step", *fieldnames]
        kept: list[dict[str, str]] = []
        if resume_step is not None and self.path.exists():
            with self.path.open(newline="") as f:
                kept = [row for row in csv.DictReader(f) if int(row["step"]) <= resume_step]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, self.fieldnames, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(kept)
        atomic_write_text(buf.getvalue(), self.path)
        self.rows = [dict(r) for r in kept]
        self._tb = _make_tensorboard_writer(tensorboard_dir) if tensorboard_dir is not None else None

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        unknown = set(metrics) - set(self.fieldnames)
        if unknown:
            raise KeyError(f"metrics {sorted(unknown)} are not columns of {self.path.name}: {self.fieldnames}")
        row = {"step": step, **metrics}
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, self.fieldnames, extrasaction="ignore").writerow(row)
            f.flush()
            os.fsync(f.fileno())
        self.rows.append({k: str(v) for k, v in row.items()})
        if self._tb is not None:
            for key, value in metrics.items():
                if isinstance(value, int | float):
                    self._tb.add_scalar(key, value, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def _make_tensorboard_writer(logdir: str | os.PathLike):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except (ImportError, ModuleNotFoundError):  # tensorboard is optional
        log.info("tensorboard not installed: metrics go to the CSV only")
        return None
    return SummaryWriter(str(logdir))


def read_metrics(path: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of a metrics CSV as dicts of strings."""
    with Path(path).open(newline="") as f:
        return list(csv.DictReader(f))
