"""Agents: the policy-gradient algorithms the training loop runs (``Agent``); REINFORCE (the paper's update)
and its variants, SB3 PPO and A2C (behind the ``sb3`` extra)."""

from __future__ import annotations

import importlib
from typing import Any

import torch

from seqgan_rl.agents.base import Agent
from seqgan_rl.agents.reinforce import ReinforceAgent, RolloutBatch, compute_advantages, reinforce_loss
from seqgan_rl.config import AGENT_CONFIGS, BASELINES, PPOConfig, ReinforceConfig
from seqgan_rl.envs.rollout import Reward
from seqgan_rl.models.generator import Generator

AGENTS: dict[str, str] = {
    "reinforce": "seqgan_rl.agents.reinforce:ReinforceAgent",
    "reinforce_kl": "seqgan_rl.agents.reinforce:KLReinforceAgent",
    "coldgan": "seqgan_rl.agents.reinforce:ColdGANAgent",
    "grpo": "seqgan_rl.agents.reinforce:GRPOAgent",
    "ppo": "seqgan_rl.agents.sb3_ppo:PPOAgent",
    "a2c": "seqgan_rl.agents.sb3_ppo:A2CAgent",
}
"""Each algorithm's agent class (imported on demand: PPO and A2C need the ``sb3`` extra), by the names of
``seqgan_rl.config.AGENT_CONFIGS``."""


def make_agent(
    algo: str, config: Any, generator: Generator, reward: Reward, *, seed: int = 0, device: str | torch.device = "cpu",
    total_updates: int | None = None,
) -> Agent:  # fmt: skip
    """The agent of ``algo`` with its config, training ``generator`` on ``reward``.

    Args:
        seed: the agent's own seed, for agents whose randomness is not drawn from the loop's stream (PPO).
        total_updates: the planned number of updates (PPO's progress for its schedules).

    Raises:
        ValueError: for an unknown algorithm, a config of the wrong type, or a missing optional extra.
    """
    if algo not in AGENTS:
        raise ValueError(f"unknown algorithm {algo!r}: choose one of {tuple(AGENTS)}")
    if type(config) is not AGENT_CONFIGS[algo]:
        raise ValueError(f"algo {algo!r} needs a {AGENT_CONFIGS[algo].__name__}, got {type(config).__name__}")
    module, name = AGENTS[algo].split(":")
    try:
        cls = getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise ValueError(str(exc)) from exc
    return cls.build(generator, reward, config, seed=seed, device=device, total_updates=total_updates)


__all__ = [
    "AGENTS", "BASELINES", "Agent", "PPOConfig", "ReinforceAgent", "ReinforceConfig", "RolloutBatch",
    "compute_advantages", "make_agent", "reinforce_loss",
]  # fmt: skip
