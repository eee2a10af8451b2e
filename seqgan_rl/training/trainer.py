"""The training loop, written once for every agent, reward and dataset (as SB3's ``learn()`` is):

    for each iteration:
        batch = agent.collect(rng)           # sequences from the policy, scored by the reward
        metrics = agent.update(batch)        # one policy-gradient update
        reward.after_update()                # the rollout policy follows (EMA option)
        callbacks.on_step()                  # D retraining, evaluation, ... (False stops)
        log one metrics row; callbacks.on_iteration_logged()   # checkpoints

Everything a resumed run needs is in ``state_dict``: the agent's, the reward's (D's weights) and the
callbacks' states, the run's random stream and torch's global generator (D's dropout).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from seqgan_rl import distributed
from seqgan_rl.agents.base import Agent
from seqgan_rl.envs.rollout import Reward
from seqgan_rl.training.callbacks import Callback, CallbackList
from seqgan_rl.training.logger import MetricsLogger
from seqgan_rl.training.pretrain import progress_bar
from seqgan_rl.training.run_folder import Folder, PlainFolder, load_torch_file, open_folder
from seqgan_rl.utils import derive_seed, global_rng_state, located, make_rng, set_global_rng_state

log = logging.getLogger(__name__)

CHECKPOINT = "adversarial_checkpoint.pt"
TIME_FIELDS = ("time/update_s", "time/elapsed_s")


class Trainer:
    """Runs an agent for ``iterations`` updates with callbacks, writing ``metrics.csv`` and checkpoints.

    Args:
        agent: the algorithm (``seqgan_rl.agents``).
        reward: what the agent's batches are scored by (its ``after_update`` runs after every update).
        callbacks: e.g. ``[DiscriminatorRetrainCallback(...), EvalCallback(...), CheckpointCallback()]``.
        iterations: generator updates to run.
        seed: the run's seed: the loop's random stream (sampling, rollouts, D's data order) derives from it.
        device: where the stream lives.
        out_dir: where ``metrics.csv`` (and TensorBoard events, when installed) and the checkpoint go: a path
            (the files are written as they are) or an open ``Folder`` (``run_training`` passes its locked,
            verified run folder).

    A NaN or infinite value (a loss, a gradient, a reward, a metric) or a diverged model stops the run with a
    ``NonFiniteError`` naming the quantity and the update, before its row or checkpoint is written.
    """

    def __init__(
        self, agent: Agent, reward: Reward, callbacks: Sequence[Callback] = (), *, iterations: int, seed: int = 0,
        device: str | torch.device = "cpu", out_dir: str | os.PathLike | Folder = ".",
    ) -> None:  # fmt: skip
        self.agent, self.reward = agent, reward
        self.callback = CallbackList(list(callbacks))
        self.total_iterations = iterations
        # a path: a plain folder (under torchrun, written by rank 0 alone, as every run folder is)
        self.folder = out_dir if isinstance(out_dir, Folder) else open_folder(lambda: PlainFolder(out_dir), out_dir)
        self.seed, self.device, self.out_dir = seed, torch.device(device), self.folder.path
        self.rng = make_rng(distributed.rank_seed(derive_seed(seed, "adversarial")), self.device)
        self.iteration, self.elapsed = 0, 0.0
        self.pending_metrics: dict[str, Any] = {}
        self.reporter: Any = None
        """Where the metrics rows also go (``seqgan_rl.training.tracking``); ``None``: TensorBoard events in
        ``<out_dir>/tb`` when tensorboard is installed (the default without ``--report-to``)."""
        self.logger: MetricsLogger | None = None
        self.callback.init_callback(self)

    @property
    def generator(self):
        return self.agent.generator

    @property
    def metric_fields(self) -> list[str]:
        """Columns of ``metrics.csv``: the agent's, the callbacks', then the timings."""
        return [*self.agent.metric_fields, *self.callback.metric_fields, *TIME_FIELDS]

    def train(self, progress: Callable[..., Any] | None = None) -> None:
        """Run the remaining iterations (all of them, or those after a loaded checkpoint)."""
        out = self.out_dir
        if self.logger is None:
            self.logger = MetricsLogger(
                out / "metrics.csv", self.metric_fields, tensorboard_dir=self._tensorboard_dir, folder=self.folder,
                reporter=self.reporter,
            )  # fmt: skip
        started = time.perf_counter() - self.elapsed
        with located("the evaluation before the first update"):
            self.callback.on_training_start()
            if self.pending_metrics:  # the evaluation before the first update
                self.logger.log(self.iteration, {**self.pending_metrics, "time/elapsed_s": 0.0})
                self.pending_metrics = {}
        bar = progress_bar(progress, self.total_iterations, "adversarial", self.iteration)
        while self.iteration < self.total_iterations:
            t0 = time.perf_counter()
            with located(f"adversarial update {self.iteration + 1}"):
                batch = self.agent.collect(self.rng)
                self.pending_metrics.update(self.agent.update(batch))
                self.reward.after_update()
                self.iteration += 1
                keep_going = self.callback.on_step()
                self.elapsed = time.perf_counter() - started
                self.pending_metrics["time/update_s"] = round(time.perf_counter() - t0, 3)
                self.pending_metrics["time/elapsed_s"] = round(self.elapsed, 2)
                self.logger.log(self.iteration, self.pending_metrics)
                self.pending_metrics = {}
                self.callback.on_iteration_logged()
            bar.update(1)
            if postfix := self.callback.progress():
                bar.set_postfix(postfix)
            if not keep_going:
                break
        bar.close()
        self.callback.on_training_end()
        self.logger.close()

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            "iteration": self.iteration, "elapsed": self.elapsed, "agent": self.agent.state_dict(),
            "reward": self.reward.state_dict(), "callbacks": self.callback.state_dict(),
            "rng": distributed.per_rank(self.rng.get_state()), "global_rng": distributed.per_rank(global_rng_state()),
            "logged_steps": self.logger.steps if self.logger else [],
        }  # fmt: skip

    def save_checkpoint(self) -> None:
        """The whole state, atomically (refused when anything in it is not finite)."""
        self.folder.save_torch(CHECKPOINT, self.state_dict())

    @property
    def _tensorboard_dir(self) -> Path | None:
        return self.out_dir / "tb" if self.reporter is None else None

    def load_checkpoint(self, path: str | os.PathLike | None = None) -> None:
        """Restore a checkpoint written by ``save_checkpoint`` (default: the folder's); the metrics rows after
        it are dropped, and those before it must be the ones it logged."""
        state = self.folder.load_torch(CHECKPOINT, self.device) if path is None else load_torch_file(path, self.device)
        self.agent.load_state_dict(state["agent"])
        self.reward.load_state_dict(state["reward"])
        self.callback.load_state_dict(state["callbacks"])
        self.rng.set_state(distributed.own(state["rng"]))
        set_global_rng_state(distributed.own(state["global_rng"]))
        self.iteration, self.elapsed = state["iteration"], state["elapsed"]
        self.logger = MetricsLogger(
            self.out_dir / "metrics.csv", self.metric_fields, resume_step=self.iteration,
            tensorboard_dir=self._tensorboard_dir, expected_steps=state.get("logged_steps"), folder=self.folder,
            reporter=self.reporter,
        )  # fmt: skip
        log.info("resuming the adversarial phase at iteration %d", self.iteration)
