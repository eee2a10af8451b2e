"""What the training loop needs of a policy-gradient algorithm.

The loop (``seqgan_rl.training.trainer.Trainer``, written once as SB3's ``learn()`` is) asks the agent for a
batch (``collect``) and hands it back for one update (``update``). An algorithm implements only those two steps
and its checkpoint state: one ``Agent`` subclass, its config in ``seqgan_rl.config`` and a line in
``seqgan_rl.agents.AGENTS``. An agent never imports the loop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch

from seqgan_rl.models.generator import Generator


class Agent(ABC):
    """A policy-gradient algorithm training SeqGAN's generator.

    Attributes:
        generator: the policy as a live ``Generator`` (sampling it is sampling the policy): the rollouts,
            D's negatives, the evaluation and ``generator_final.pt`` all use it.
        temperature: the policy's sampling temperature (its logits are divided by it).
        sequences_per_update: sequences generated for one update (the comparison's budget).
        metric_fields: the ``train/...`` keys ``update`` returns: columns of ``metrics.csv``.
    """

    metric_fields: ClassVar[tuple[str, ...]] = ()
    generator: Generator
    temperature: float = 1.0
    sequences_per_update: int = 0

    @classmethod
    def build(
        cls, generator: Generator, reward: Any, config: Any, *, seed: int = 0, device: str | torch.device = "cpu",
        total_updates: int | None = None,
    ) -> Agent:  # fmt: skip
        """How the pipeline constructs an agent (``seqgan_rl.agents.make_agent``); by default
        ``cls(generator, reward, config)``. An agent with its own random streams or schedules takes the
        seed, device and planned number of updates here."""
        return cls(generator, reward, config)

    @abstractmethod
    def collect(self, rng: torch.Generator | None = None) -> Any:
        """Generate sequences with the policy and score them: one batch for ``update``.

        Args:
            rng: the run's random stream (agents that sample with torch draw from it).
        """

    @abstractmethod
    def update(self, batch: Any) -> dict[str, float]:
        """One update of the policy from ``batch``; returns ``train/...`` metrics."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs: weights, optimizer state, counters."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None: ...
