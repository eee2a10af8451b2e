"""Agents: REINFORCE (the paper's update); the SB3 PPO adapter lives behind the ``sb3`` extra."""

from seqgan_rl.agents.reinforce import (
    BASELINES,
    ReinforceAgent,
    ReinforceConfig,
    RolloutBatch,
    compute_advantages,
    reinforce_loss,
)

__all__ = ["BASELINES", "ReinforceAgent", "ReinforceConfig", "RolloutBatch", "compute_advantages", "reinforce_loss"]
