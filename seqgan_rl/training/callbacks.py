"""Callbacks for the adversarial loop, in Stable-Baselines3's template-method style.

The trainer calls the public hooks (``on_training_start``, ``on_step``, ``on_iteration_logged``,
``on_training_end``); subclasses override the underscored ones. ``_on_step`` returning False stops
training. Callbacks add metrics for the current iteration to ``trainer.pending_metrics``.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import torch

from seqgan_rl.config import DiscriminatorTrainConfig
from seqgan_rl.training.metrics import evaluate
from seqgan_rl.training.pretrain import discriminator_round
from seqgan_rl.utils import derive_seed, make_rng

if TYPE_CHECKING:
    from seqgan_rl.training.adversarial import AdversarialTrainer

log = logging.getLogger(__name__)


class Callback:
    """Base class. ``self.trainer`` is set by ``init_callback``; ``n_calls`` counts ``on_step`` calls."""

    def __init__(self) -> None:
        self.trainer: AdversarialTrainer | None = None
        self.n_calls = 0

    def init_callback(self, trainer: AdversarialTrainer) -> None:
        self.trainer = trainer

    def on_training_start(self) -> None:
        self._on_training_start()

    def on_step(self) -> bool:
        """After each generator update (``trainer.iteration`` already counts it)."""
        self.n_calls += 1
        return self._on_step()

    def on_iteration_logged(self) -> None:
        """After the iteration's metrics row is written."""
        self._on_iteration_logged()

    def on_training_end(self) -> None:
        self._on_training_end()

    def _on_training_start(self) -> None: ...

    def _on_step(self) -> bool:
        return True

    def _on_iteration_logged(self) -> None: ...

    def _on_training_end(self) -> None: ...


class CallbackList(Callback):
    def __init__(self, callbacks: list[Callback]) -> None:
        super().__init__()
        self.callbacks = callbacks

    def init_callback(self, trainer: AdversarialTrainer) -> None:
        super().init_callback(trainer)
        for cb in self.callbacks:
            cb.init_callback(trainer)

    def _on_training_start(self) -> None:
        for cb in self.callbacks:
            cb.on_training_start()

    def _on_step(self) -> bool:
        return all([cb.on_step() for cb in self.callbacks])  # every callback runs, then combine

    def _on_iteration_logged(self) -> None:
        for cb in self.callbacks:
            cb.on_iteration_logged()

    def _on_training_end(self) -> None:
        for cb in self.callbacks:
            cb.on_training_end()


class DiscriminatorRetrainCallback(Callback):
    """Every ``every`` generator updates: ``schedule.rounds`` x (fresh negatives, ``schedule.epochs``)
    of D training on the trainer's real data, then pushes D into ``envs`` (anything with
    ``set_discriminator``), so environments score with the new D. The paper: every update, 5 x 3.
    """

    def __init__(self, schedule: DiscriminatorTrainConfig, every: int = 1, envs: list[Any] | None = None) -> None:
        super().__init__()
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.schedule, self.every, self.envs = schedule, every, list(envs or [])

    def _on_step(self) -> bool:
        tr = self.trainer
        if tr.iteration % self.every:
            return True
        stats = [
            discriminator_round(tr.discriminator, tr.d_optimizer, tr.real_data, tr.generator, self.schedule, tr.rng)
            for _ in range(self.schedule.rounds)
        ]
        tr.pending_metrics["d/loss"] = sum(s["d/loss"] for s in stats) / len(stats)
        tr.pending_metrics["d/accuracy"] = sum(s["d/accuracy"] for s in stats) / len(stats)
        tr.pending_metrics.update(self._diagnostics())
        for env in self.envs:
            env.set_discriminator(tr.discriminator)
        return True

    @torch.no_grad()
    def _diagnostics(self, n: int = 256) -> dict[str, float]:
        """Mean D on training real data, on held-out real data and on fresh samples: D's training accuracy
        alone cannot tell a discriminator that learned the data from one that memorised its training set."""
        tr = self.trainer
        rng = make_rng(derive_seed(tr.seed, "d-diagnostics", tr.iteration), tr.device)
        fake = tr.generator.sample(n, rng)
        d = tr.discriminator
        return {
            "d/p_real_train": float(d.prob_real(tr.real_data[:n]).mean()),
            "d/p_real_heldout": float(d.prob_real(tr.test_data[:n]).mean()),
            "d/p_fake": float(d.prob_real(fake).mean()),
        }


class EvalCallback(Callback):
    """NLL-oracle and NLL-test every ``every`` updates (and before the first), tracking the best
    NLL-oracle and the NLL-test at that point. Each evaluation draws from its own seeded stream, so an
    interrupted and resumed run evaluates on the same samples."""

    def __init__(self, every: int = 5, num_samples: int = 9984) -> None:
        super().__init__()
        self.every, self.num_samples = every, num_samples

    def _on_training_start(self) -> None:
        if self.trainer.iteration == 0 and self.trainer.best is None:
            self._evaluate()

    def _on_step(self) -> bool:
        tr = self.trainer
        if tr.iteration % self.every == 0 or tr.iteration == tr.total_iterations:
            self._evaluate()
        return True

    def _evaluate(self) -> None:
        tr = self.trainer
        rng = make_rng(derive_seed(tr.seed, "adv-eval", tr.iteration), tr.device)
        m = evaluate(tr.generator, tr.oracle, tr.test_data, self.num_samples, rng)
        tr.last_eval = {"iteration": tr.iteration, **m}
        if tr.best is None or m["eval/nll_oracle"] < tr.best["eval/nll_oracle"]:
            tr.best = dict(tr.last_eval)
        tr.pending_metrics.update(m)
        tr.pending_metrics["eval/best_nll_oracle"] = tr.best["eval/nll_oracle"]
        if tr.iteration == 0:
            tr.start_eval = dict(tr.last_eval)
        if not math.isfinite(m["eval/nll_oracle"]):
            log.warning("NLL-oracle is not finite at iteration %d", tr.iteration)


class CheckpointCallback(Callback):
    """Writes the trainer's full state atomically every ``every`` updates and at the end."""

    def __init__(self, every: int = 5) -> None:
        super().__init__()
        self.every = every

    def _on_iteration_logged(self) -> None:
        tr = self.trainer
        if tr.iteration % self.every == 0 or tr.iteration == tr.total_iterations:
            tr.save_checkpoint()
