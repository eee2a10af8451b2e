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

from seqgan_rl.utils import atomic_write_text, check_finite

log = logging.getLogger(__name__)


class MetricsLogger:
    """Append metrics rows to ``path`` (CSV with a fixed header).

    Args:
        path: CSV file.
        fieldnames: columns after ``step``; keys outside them are an error (typos lose nothing silently).
        resume_step: when resuming, keep only existing rows with ``step <= resume_step``; ``None`` starts
            a fresh file.
        tensorboard_dir: also write TensorBoard events there, if the ``tensorboard`` package is installed.
        expected_steps: with ``resume_step``, the steps the checkpoint says were logged: the kept rows must
            hold exactly those, in order (else the file was changed, and ``ValueError`` names it).
        folder: the run folder (``seqgan_rl.training.run_folder``) whose manifest records the file's checksum;
            one that ``writes`` nothing (a torchrun rank other than 0) makes the logger check rows and write none.
        reporter: also hand each row's numbers to ``reporter.log(metrics, step)`` (``--report-to``'s trackers,
            ``seqgan_rl.training.tracking``), after the CSV has it.

    Raises:
        ValueError: a resumed file that is unreadable, not in step order, or without the expected rows.
    """

    def __init__(
        self, path: str | os.PathLike, fieldnames: list[str], resume_step: int | None = None,
        tensorboard_dir: str | os.PathLike | None = None, expected_steps: list[int] | None = None, folder: Any = None,
        reporter: Any = None,
    ) -> None:  # fmt: skip
        self.path, self.folder, self.reporter = Path(path), folder, reporter
        self.fieldnames = ["step", *fieldnames]
        self.rows: list[dict[str, str]] = []
        self._tb = None
        self.writes = getattr(folder, "writes", True)  # under torchrun, rank 0 alone writes
        if not self.writes:
            return
        kept: list[dict[str, str]] = []
        if resume_step is not None and self.path.exists():
            kept = [row for row in read_metrics(self.path) if int(row["step"]) <= resume_step]
            steps = [int(r["step"]) for r in kept]
            if steps != sorted(set(steps)) or (expected_steps is not None and steps != list(expected_steps)):
                want = "" if expected_steps is None else f" where its checkpoint logged {_steps(expected_steps)}"
                raise ValueError(
                    f"{self.path} holds the steps {_steps(steps)}{want}: it was changed or truncated; restore it, "
                    "or start the run in another folder"
                )
        buf = io.StringIO()
        writer = csv.DictWriter(buf, self.fieldnames, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(kept)
        if folder is not None:
            folder.save_text(self.path.name, buf.getvalue())
        else:
            atomic_write_text(buf.getvalue(), self.path)
        self.rows = [dict(r) for r in kept]
        if tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                log.info("tensorboard not installed: metrics go to the CSV only")
            else:
                self._tb = SummaryWriter(str(tensorboard_dir))

    @property
    def steps(self) -> list[int]:
        """The steps of the rows logged so far (what a checkpoint records)."""
        return [int(r["step"]) for r in self.rows]

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """Append one row. A key outside the columns, or a NaN or infinite value, is refused before anything
        is written (``KeyError``, ``NonFiniteError`` naming the key and the step)."""
        unknown = set(metrics) - set(self.fieldnames)
        if unknown:
            raise KeyError(f"metrics {sorted(unknown)} are not columns of {self.path.name}: {self.fieldnames}")
        for key, value in metrics.items():
            check_finite(f"{key} at step {step}", value)
        if not self.writes:
            return
        row = {"step": step, **metrics}
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, self.fieldnames, extrasaction="ignore").writerow(row)
            f.flush()
            os.fsync(f.fileno())
        if self.folder is not None:
            self.folder.record_append(self.path.name)
        self.rows.append({k: str(v) for k, v in row.items()})
        if self.reporter is not None:
            self.reporter.log(metrics, step)
        if self._tb is not None:
            for key, value in metrics.items():
                if isinstance(value, int | float):
                    self._tb.add_scalar(key, value, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_metrics(path: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of a metrics CSV as dicts of strings (an unreadable file raises ``ValueError`` naming it)."""
    path = Path(path)
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        for r in rows:
            int(r["step"])
    except (csv.Error, KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not a readable metrics file ({type(exc).__name__}: {exc})") from exc
    return rows


def _steps(steps: list[int]) -> str:
    return f"[{', '.join(map(str, steps[:8]))}{', ...' if len(steps) > 8 else ''}] ({len(steps)} rows)"
