"""Callbacks for the training loop, in Stable-Baselines3's template-method style.

The trainer calls the public hooks (``on_training_start``, ``on_step``, ``on_iteration_logged``,
``on_training_end``); subclasses override the underscored ones; ``_on_step`` returning False stops training.
Callbacks add the iteration's metrics (keys: ``metric_fields``) to ``trainer.pending_metrics``, keep their own
state (``state_dict``, saved in every checkpoint) and may show values on the progress bar (``progress``). They
read of the trainer: ``agent`` (``generator``, ``temperature``), ``rng``, ``seed``, ``device``, ``iteration``,
``total_iterations``, ``pending_metrics`` and ``save_checkpoint()``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import torch

from seqgan_rl import distributed
from seqgan_rl.config import DiscriminatorTrainConfig
from seqgan_rl.models.discriminator import Discriminator
from seqgan_rl.training.evaluators import Evaluator
from seqgan_rl.training.pretrain import discriminator_round, make_discriminator_optimizer
from seqgan_rl.utils import derive_seed, make_rng

if TYPE_CHECKING:
    from seqgan_rl.training.trainer import Trainer

log = logging.getLogger(__name__)


class Callback:
    """Base class. ``self.trainer`` is set by ``init_callback``; ``n_calls`` counts ``on_step`` calls."""

    metric_fields: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.trainer: Trainer | None = None
        self.n_calls = 0

    def init_callback(self, trainer: Trainer) -> None:
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

    def progress(self) -> dict[str, str]:
        """Values for the progress bar (none by default)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def _on_training_start(self) -> None: ...

    def _on_step(self) -> bool:
        return True

    def _on_iteration_logged(self) -> None: ...

    def _on_training_end(self) -> None: ...


class CallbackList(Callback):
    def __init__(self, callbacks: list[Callback]) -> None:
        super().__init__()
        self.callbacks = list(callbacks)

    @property
    def metric_fields(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(f for cb in self.callbacks for f in cb.metric_fields)

    def init_callback(self, trainer: Trainer) -> None:
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

    def progress(self) -> dict[str, str]:
        return {k: v for cb in self.callbacks for k, v in cb.progress().items()}

    def state_dict(self) -> dict[str, Any]:
        return {f"{i}:{type(cb).__name__}": cb.state_dict() for i, cb in enumerate(self.callbacks)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        keys = [f"{i}:{type(cb).__name__}" for i, cb in enumerate(self.callbacks)]
        if sorted(state) != sorted(keys):
            raise ValueError(f"the checkpoint holds the state of callbacks {sorted(state)}, this run has {keys}")
        for key, cb in zip(keys, self.callbacks, strict=True):
            cb.load_state_dict(state[key])


class DiscriminatorRetrainCallback(Callback):
    """Every ``every`` generator updates: ``schedule.rounds`` x (fresh negatives from the agent's policy,
    ``schedule.epochs`` passes over real + generated) of D training (the paper: every update, 5 x 3). Owns
    D's optimizer (Adam at ``schedule.lr``), saved with its state.

    Args:
        discriminator: D, trained in place (the reward scores with the same object).
        real_data: ``(N, T)`` real sequences (the training set).
        heldout_data: ``(M, T)`` real sequences D never trains on, for the diagnostics.
        schedule: rounds, epochs, negatives, steps, learning rate.
        every: retrain after every this many updates.
        envs: more objects with ``set_discriminator`` (the user's environments holding another reference)
            to push D into after each retraining.
        real_source: where each round's real sequences come from instead of ``real_data`` (an object with
            ``sample(n)``, e.g. ``seqgan_rl.data.oracle_data.OracleFedReal``: a diagnostic with oracle access);
            ``real_data`` then only serves the diagnostics.
        warmup_rounds: rounds of ``schedule`` run once before the first generator update (their mean loss and
            accuracy and the diagnostics go into the first metrics row).
    """

    metric_fields = ("d/loss", "d/accuracy", "d/p_real_train", "d/p_real_heldout", "d/p_fake")

    def __init__(
        self, discriminator: Discriminator, real_data: torch.Tensor, heldout_data: torch.Tensor,
        schedule: DiscriminatorTrainConfig, every: int = 1, envs: list[Any] | None = None, real_source: Any = None,
        warmup_rounds: int = 0,
    ) -> None:  # fmt: skip
        super().__init__()
        if every < 1 or warmup_rounds < 0:
            raise ValueError(f"every must be >= 1 and warmup_rounds >= 0, got {every} and {warmup_rounds}")
        self.discriminator, self.real_data, self.heldout_data = discriminator, real_data, heldout_data
        self.schedule, self.every, self.envs = schedule, every, list(envs or [])
        self.real_source, self.warmup_rounds, self.warmed_up = real_source, warmup_rounds, False
        self.optimizer = make_discriminator_optimizer(discriminator, schedule.lr, schedule.weight_decay)

    def _on_training_start(self) -> None:
        if self.warmup_rounds and not self.warmed_up and self.trainer.iteration == 0:
            self._train(self.warmup_rounds)
        self.warmed_up = True

    def _on_step(self) -> bool:
        if self.trainer.iteration % self.every == 0:
            self._train(self.schedule.rounds)
        return True

    def _train(self, rounds: int) -> None:
        tr = self.trainer
        stats = [self._round(tr) for _ in range(rounds)]
        tr.pending_metrics["d/loss"] = sum(s["d/loss"] for s in stats) / len(stats)
        tr.pending_metrics["d/accuracy"] = sum(s["d/accuracy"] for s in stats) / len(stats)
        tr.pending_metrics.update(self._diagnostics())
        for env in self.envs:
            env.set_discriminator(self.discriminator)

    def _round(self, tr: Trainer) -> dict[str, float]:
        real = self.real_data
        if self.real_source is not None:  # as many fresh real sequences as the round's negatives
            real = self.real_source.sample(self.schedule.num_negatives or self.real_data.shape[0])
        args = (self.discriminator, self.optimizer, real, tr.agent.generator, self.schedule, tr.rng)
        return discriminator_round(*args, tr.agent.temperature)

    @torch.no_grad()
    def _diagnostics(self, n: int = 256) -> dict[str, float]:
        """Mean D on training real data, on held-out real data and on fresh samples: D's training accuracy
        alone cannot tell a discriminator that learned the data from one that memorised its training set."""
        tr = self.trainer
        rng = make_rng(derive_seed(tr.seed, "d-diagnostics", tr.iteration), tr.device)
        fake = tr.agent.generator.sample(n, rng, temperature=tr.agent.temperature)
        d = self.discriminator
        return {
            "d/p_real_train": float(d.prob_real(self.real_data[:n]).mean()),
            "d/p_real_heldout": float(d.prob_real(self.heldout_data[:n]).mean()),
            "d/p_fake": float(d.prob_real(fake).mean()),
        }

    def state_dict(self) -> dict[str, Any]:
        state = {"optimizer": self.optimizer.state_dict()}
        if self.warmup_rounds:
            state["warmed_up"] = self.warmed_up
        if self.real_source is not None:
            state["real_source"] = self.real_source.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.warmed_up = state.get("warmed_up", self.warmed_up)
        if self.real_source is not None:
            self.real_source.load_state_dict(state["real_source"])


class EvalCallback(Callback):
    """Evaluates the agent's policy (at its temperature) before the first update and every ``every``, keeping
    ``start``, ``last`` and ``best`` (lowest ``evaluator.select_key``; ``None`` without model selection). Each
    evaluation draws from its own seeded stream, so a resumed run evaluates on the same samples.

    Args:
        evaluator: what to measure (``OracleEvaluator``, ``TextEvaluator``).
        every: evaluate every this many updates (and at the last).
    """

    def __init__(self, evaluator: Evaluator, every: int = 5) -> None:
        super().__init__()
        self.evaluator, self.every = evaluator, every
        self.start: dict[str, float] | None = None
        self.last: dict[str, float] | None = None
        self.best: dict[str, float] | None = None

    @property
    def best_field(self) -> str | None:
        key = self.evaluator.select_key
        return None if key is None else f"eval/best_{key.split('/', 1)[1]}"

    @property
    def metric_fields(self) -> tuple[str, ...]:  # type: ignore[override]
        return (*self.evaluator.fields, *([self.best_field] if self.best_field else []))

    def _on_training_start(self) -> None:
        if self.trainer.iteration == 0 and self.last is None:
            self._evaluate()

    def _on_step(self) -> bool:
        tr = self.trainer
        if tr.iteration % self.every == 0 or tr.iteration == tr.total_iterations:
            self._evaluate()
        return True

    def _evaluate(self) -> None:
        tr, ev = self.trainer, self.evaluator
        rng = make_rng(distributed.rank_seed(derive_seed(tr.seed, ev.streams["adversarial"], tr.iteration)), tr.device)
        m = ev.checked(tr.agent.generator, rng, tr.agent.temperature)  # NaN or diverged: NonFiniteError
        self.last = {"iteration": tr.iteration, **m}
        key = ev.select_key
        if key is not None and (self.best is None or m[key] < self.best[key]):
            self.best = dict(self.last)
        tr.pending_metrics.update(m)
        if key is not None:
            tr.pending_metrics[self.best_field] = self.best[key]
        if tr.iteration == 0:
            self.start = dict(self.last)

    def progress(self) -> dict[str, str]:
        return {} if self.last is None else self.evaluator.postfix(self.last, self.best)

    def state_dict(self) -> dict[str, Any]:
        return {"start": self.start, "last": self.last, "best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.start, self.last, self.best = state["start"], state["last"], state["best"]


class CheckpointCallback(Callback):
    """Writes the trainer's full state atomically every ``every`` updates and at the end."""

    def __init__(self, every: int = 5) -> None:
        super().__init__()
        self.every = every

    def _on_iteration_logged(self) -> None:
        tr = self.trainer
        if tr.iteration % self.every == 0 or tr.iteration == tr.total_iterations:
            tr.save_checkpoint()
