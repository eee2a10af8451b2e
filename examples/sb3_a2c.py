#!/usr/bin/env python
"""Stable-Baselines3 A2C on SeqGAN's environment through SB3's own ``make_vec_env``: no adapter.

    python examples/sb3_a2c.py --tiny      # V 10, T 6: seconds (what the tests run)
    python examples/sb3_a2c.py             # paper sizes, untrained G and D (a demo, not a result)

``make_vec_env(ID, n_envs=N, env_kwargs=...)`` builds N single envs in a ``DummyVecEnv`` (one process, so
the envs score with the D the training loop updates; ``SubprocVecEnv`` is refused for that reason). The
reward mode fixes the discount: ``"q"`` rewards are already returns (Q_t), so ``gamma=0``;
``check_reward_gamma`` says so for any learner. A2C's policy here is SB3's MLP over the token ids, the
generic baseline; ``scripts/train_agent.py --algo ppo`` trains the generator's own architecture.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from stable_baselines3 import A2C
from stable_baselines3.common.env_util import make_vec_env

from seqgan_rl.config import DiscriminatorConfig, GeneratorConfig
from seqgan_rl.envs import ENV_ID, check_reward_gamma
from seqgan_rl.models import Discriminator, Generator
from seqgan_rl.utils import make_rng


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="V 10, T 6, small models")
    p.add_argument("--num-envs", type=int, default=4)
    p.add_argument("--updates", type=int, default=4, help="A2C updates (one sequence per env each)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    v, t = (10, 6) if args.tiny else (5000, 20)
    G = Generator(GeneratorConfig(vocab_size=v, seq_len=t, **({"embed_dim": 8, "hidden_dim": 8} if args.tiny else {})))
    D = Discriminator(DiscriminatorConfig.light(v, t))  # in real use: the MLE checkpoint and a pre-trained D
    G.reset_parameters(make_rng(args.seed))
    D.reset_parameters(make_rng(args.seed + 1))

    env_kwargs = {"generator": G, "discriminator": D, "reward_mode": "q", "num_rollouts": 4}
    venv = make_vec_env(ENV_ID, n_envs=args.num_envs, seed=args.seed, env_kwargs=env_kwargs)
    model = A2C("MlpPolicy", venv, n_steps=t, gamma=0.0, seed=args.seed, device="cpu")
    check_reward_gamma(venv, model.gamma)  # raises for, e.g., gamma 0.99 with "q" rewards
    model.learn(total_timesteps=args.updates * args.num_envs * t)

    obs = venv.reset()
    rewards = []
    for _ in range(t):
        action, _ = model.predict(obs, deterministic=False)
        obs, reward, _, _ = venv.step(action)
        rewards.append(reward)
    print(f"{args.updates} A2C updates of {args.num_envs} sequences; mean Q of a fresh batch {np.mean(rewards):.4f}")
    print(f"rendered (rgb_array, what SB3 records videos from): {venv.render().shape}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
