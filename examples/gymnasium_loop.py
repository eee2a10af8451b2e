#!/usr/bin/env python
"""The environment in a plain Gymnasium loop: the generator acts, SeqGAN's Q is the reward.

    python examples/gymnasium_loop.py                # paper sizes (V 5000, T 20), untrained G and D
    python examples/gymnasium_loop.py --tiny         # V 20, T 8: runs in a blink

Any agent that speaks Gymnasium can do this: ``reset``, then ``step`` with the next token until
``terminated``. Here the agent is the generator itself (sampling its next token from the LSTM state it
carries), so the rewards are what SeqGAN's REINFORCE would see for this sequence.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import torch

import seqgan_rl  # noqa: F401  (registers seqgan_rl/TokenGeneration-v0)
from seqgan_rl.config import DiscriminatorConfig, GeneratorConfig
from seqgan_rl.models import Discriminator, Generator


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="a tiny vocabulary and length (tests)")
    p.add_argument("--episodes", type=int, default=2)
    p.add_argument("--num-rollouts", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    if args.tiny:
        G = Generator(GeneratorConfig(vocab_size=20, seq_len=8, embed_dim=8, hidden_dim=8))
        D = Discriminator(DiscriminatorConfig(vocab_size=20, seq_len=8, filter_sizes=(2, 3), num_filters=(4, 4)))
    else:
        G, D = Generator(), Discriminator()  # paper sizes; load trained weights with load_state_dict
    env = gym.make("seqgan_rl/TokenGeneration-v0", generator=G, discriminator=D, reward_mode="q",
                   num_rollouts=args.num_rollouts)  # fmt: skip
    rng = torch.Generator().manual_seed(args.seed)
    for episode in range(args.episodes):
        obs, info = env.reset(seed=args.seed + episode)
        state, prev = G.initial_state(1), G.start_tokens(1)  # the agent's own memory of the prefix
        rewards, terminated, truncated = [], False, False
        while not (terminated or truncated):
            with torch.no_grad():
                prev, state = G.sample_step(prev, state, rng)  # the next token, (1,)
            obs, reward, terminated, truncated, info = env.step(int(prev))
            rewards.append(reward)
        print(f"episode {episode}: tokens {obs.tolist()}")
        print(f"  Q per token {[round(r, 3) for r in rewards]}; D(Y) = {rewards[-1]:.3f}")
    env.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
