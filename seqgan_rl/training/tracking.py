"""Experiment tracking: a run's metrics and config to TensorBoard, Weights & Biases or Trackio (``--report-to``).

``metrics.csv`` is always written; the trackers get each row as it is written, keyed ``<phase>/<metric>``
(``pretrain/eval/nll_oracle``, ``adversarial/train/pg_loss``), with the phase's own step as ``<phase>/step``
(pre-training and the adversarial phase count steps separately), and the run's whole config once at the start.
Without ``--report-to`` a run keeps the default it always had: TensorBoard events of the adversarial phase in
``<run>/tb`` when ``tensorboard`` is installed. Only the process that writes the run folder reports (rank 0).

A resumed run is a new W&B / Trackio run that reports from its checkpoint on (TensorBoard appends to the same
folder); the CSV, which drops the rows logged after the checkpoint, is the record.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPORT_TO = ("tensorboard", "wandb", "trackio", "none")
"""The values of ``--report-to`` (several may be given; ``none`` alone: no tracker, not even TensorBoard)."""

PROJECT = "seqgan-rl"
"""The W&B and Trackio project runs report to (``WANDB_PROJECT`` / ``TRACKIO_PROJECT`` override it)."""

_MODULES = {"tensorboard": "torch.utils.tensorboard", "wandb": "wandb", "trackio": "trackio"}
_INSTALL = {"tensorboard": "pip install tensorboard", "wandb": "pip install wandb", "trackio": "pip install trackio"}


def check_report_to(names: Sequence[str]) -> list[str]:
    """The trackers of ``--report-to`` (``[]`` for ``none``), each importable.

    Raises:
        ValueError: an unknown name, ``none`` beside another, or a tracker that is not installed (naming the
            ``pip install`` that adds it).
    """
    names = list(dict.fromkeys(names))
    unknown = [n for n in names if n not in REPORT_TO]
    if unknown:
        raise ValueError(f"--report-to {unknown[0]!r} is not a tracker: choose from {', '.join(REPORT_TO)}")
    if "none" in names:
        if len(names) > 1:
            raise ValueError("--report-to none cannot be combined with a tracker")
        return []
    for name in names:
        try:
            importlib.import_module(_MODULES[name])
        except ImportError as exc:
            raise ValueError(f"--report-to {name} needs {name}: {_INSTALL[name]}") from exc
    return names


class Tracking:
    """The trackers of one run, started with the run's config; ``phase(name)`` gives what a ``MetricsLogger``
    reports a phase's rows to.

    Args:
        names: trackers (``check_report_to``'s result; ``[]``: none).
        run_dir: the run folder (TensorBoard events in ``<run_dir>/tb``, W&B's files in ``<run_dir>/wandb``).
        config: the run's config (what ``config.json`` holds).
        writes: ``False`` on a process that does not write the run folder: nothing is reported.
    """

    def __init__(self, names: Sequence[str], run_dir: str | os.PathLike, config: dict[str, Any], writes: bool = True):
        self.run_dir, self.names = Path(run_dir), list(names) if writes else []
        self._tb = self._wandb = self._trackio = None
        name = self.run_dir.resolve().name
        if "tensorboard" in self.names:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.run_dir / "tb"))
            self._tb.add_text("config", "```\n" + json.dumps(config, indent=2) + "\n```")
        if "wandb" in self.names:
            import wandb

            self.run_dir.mkdir(parents=True, exist_ok=True)
            project = os.environ.get("WANDB_PROJECT", PROJECT)
            self._wandb = wandb.init(project=project, name=name, dir=str(self.run_dir), config=config)
        if "trackio" in self.names:
            import trackio

            project = os.environ.get("TRACKIO_PROJECT", PROJECT)
            self._trackio = trackio.init(project=project, name=name, config=config)

    def phase(self, name: str) -> PhaseReporter:
        """What the ``MetricsLogger`` of phase ``name`` (``"pretrain"``, ``"adversarial"``) reports to."""
        if self._wandb is not None:
            self._wandb.define_metric(f"{name}/*", step_metric=f"{name}/step")
        return PhaseReporter(self, name)

    def log(self, phase: str, metrics: dict[str, float], step: int) -> None:
        keyed = {f"{phase}/{k}": v for k, v in metrics.items()}
        if self._tb is not None:
            for key, value in keyed.items():
                self._tb.add_scalar(key, value, step)
        if self._wandb is not None:
            self._wandb.log({**keyed, f"{phase}/step": step})
        if self._trackio is not None:
            self._trackio.log({**keyed, f"{phase}/step": step})

    def close(self) -> None:
        """Flush and finish every tracker (the run's end)."""
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
        if self._trackio is not None:
            self._trackio.finish()
        self._tb = self._wandb = self._trackio = None


class PhaseReporter:
    """One phase of a ``Tracking``: ``log(metrics, step)`` with the numbers of a metrics row."""

    def __init__(self, tracking: Tracking, phase: str) -> None:
        self.tracking, self.phase = tracking, phase

    def log(self, metrics: dict[str, Any], step: int) -> None:
        numbers = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        if numbers:
            self.tracking.log(self.phase, numbers, step)
