#!/usr/bin/env python
"""Stable-Baselines3 PPO on the batched env, starting from a generator's weights (the ``sb3`` extra).

    python examples/sb3_ppo.py --tiny      # V 20, T 8: seconds
    python examples/sb3_ppo.py             # paper sizes, untrained G and D (a demo, not a result)

The whole SeqGAN pipeline with PPO (pre-training, D retraining, evaluation) is
``python scripts/train_agent.py --algo ppo``; this shows the pieces.
"""

from __future__ import annotations

import argparse

import torch

from seqgan_rl.agents.sb3_ppo import PPOConfig, make_ppo
from seqgan_rl.config import DiscriminatorConfig, GeneratorConfig
from seqgan_rl.envs import TokenGenerationVectorEnv
from seqgan_rl.models import Discriminator, Generator


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--updates", type=int, default=3)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    if args.tiny:
        G = Generator(GeneratorConfig(vocab_size=20, seq_len=8, embed_dim=8, hidden_dim=8))
        D = Discriminator(DiscriminatorConfig(vocab_size=20, seq_len=8, filter_sizes=(2, 3), num_filters=(4, 4)))
    else:
        G, D = Generator(), Discriminator()  # load the MLE checkpoint here: G.load_state_dict(...)
    num_envs = 16
    venv = TokenGenerationVectorEnv(
        num_envs, generator=G, discriminator=D, reward_mode="q", num_rollouts=4, autoreset_mode="SameStep"
    )
    model = make_ppo(venv, G, PPOConfig(num_envs=num_envs, batch_size=64), seed=0)  # gamma 0 for "q"
    policy_as_g = venv.generator  # the policy's actor as a Generator: the env's rollouts follow it
    before = policy_as_g.nll(G.sample(256, torch.Generator().manual_seed(1)))
    model.learn(total_timesteps=args.updates * num_envs * G.seq_len)  # one sequence per sub-env per update
    after = policy_as_g.nll(G.sample(256, torch.Generator().manual_seed(1)))
    print(f"{args.updates} PPO updates of {num_envs} sequences; NLL of the start generator's samples "
          f"under the policy: {before:.3f} -> {after:.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
