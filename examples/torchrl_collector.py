#!/usr/bin/env python
"""TorchRL on SeqGAN's environment, with no adapter: ``GymEnv`` on the single env, ``GymWrapper`` on the
native vector env, a collector over a few hundred frames, and D retrained mid-way.

    python examples/torchrl_collector.py --tiny      # V 10, T 6: seconds (what the tests run)
    python examples/torchrl_collector.py             # paper sizes (V 5000, T 20), untrained G and D: a demo

Needs the ``torchrl`` extra (``pip install -e ".[torchrl]"``). What to know:

- Build the vector env with ``autoreset_mode="Disabled"``: TorchRL resets finished sub-envs itself
  (``reset_mask``); ``"SameStep"`` works too. ``GymEnv(ID, num_envs=N)`` would run the envs in worker
  processes holding copies of G and D that never see the training loop's updates: the env refuses that.
- ``categorical_action_encoding=True``: actions are token ids, not one-hot vectors.
- The env holds D itself, so retraining D in place (``optimizer.step()``) changes the rewards of the
  very next collected batch: no re-wrapping.
"""

from __future__ import annotations

import argparse
import inspect

import gymnasium as gym
import torch
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.envs import GymEnv, GymWrapper
from torchrl.envs.utils import check_env_specs
from torchrl.modules import ProbabilisticActor

try:
    from torchrl.collectors import Collector
except ImportError:  # torchrl < 0.12 names it SyncDataCollector
    from torchrl.collectors import SyncDataCollector as Collector

from seqgan_rl.config import DiscriminatorConfig, GeneratorConfig
from seqgan_rl.envs import ENV_ID
from seqgan_rl.models import Discriminator, Generator
from seqgan_rl.utils import make_rng


class NextTokenLogits(nn.Module):
    """The generator as a TorchRL policy network: next-token logits from the observed (padded) prefix."""

    def __init__(self, g: Generator) -> None:
        super().__init__()
        self.g = g

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        tokens = observation.long()  # (B, T), padded with V after the prefix
        is_pad = tokens == self.g.vocab_size
        lengths = (~is_pad).long().cumprod(-1).sum(-1).clamp(max=tokens.shape[-1] - 1)  # (B,)
        logits = self.g(tokens.masked_fill(is_pad, 0))  # (B, T, V): position k predicts y_{k+1}
        return logits[torch.arange(tokens.shape[0]), lengths]  # (B, V)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="V 10, T 6, small models")
    p.add_argument("--num-envs", type=int, default=4)
    p.add_argument("--frames", type=int, default=None, help="frames to collect (default: 16 sequences per env)")
    p.add_argument("--num-rollouts", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)

    v, t = (10, 6) if args.tiny else (5000, 20)
    g_cfg = GeneratorConfig(vocab_size=v, seq_len=t, **({"embed_dim": 8, "hidden_dim": 8} if args.tiny else {}))
    d_cfg = DiscriminatorConfig.light(v, t)
    G, D = Generator(g_cfg), Discriminator(d_cfg)  # in real use: the MLE checkpoint and a pre-trained D
    G.reset_parameters(make_rng(args.seed))
    D.reset_parameters(make_rng(args.seed + 1))
    env_kwargs = {"generator": G, "discriminator": D, "reward_mode": "q", "num_rollouts": args.num_rollouts}

    # 1. the single env, through TorchRL's GymEnv
    single = GymEnv(ENV_ID, categorical_action_encoding=True, **env_kwargs)
    check_env_specs(single, seed=args.seed)
    spec, obs_shape = single.action_spec, tuple(single.observation_spec["observation"].shape)
    print(f"GymEnv: specs check; actions {type(spec).__name__}({spec.n}), observations {obs_shape}")

    # 2. the native vector env, through GymWrapper
    venv = gym.make_vec(ENV_ID, num_envs=args.num_envs, autoreset_mode="Disabled", **env_kwargs)
    env = GymWrapper(venv, categorical_action_encoding=True)
    check_env_specs(env, seed=args.seed)
    print(f"GymWrapper(gym.make_vec(..., num_envs={args.num_envs})): specs check, batch size {tuple(env.batch_size)}")

    # 3. a collector with the generator as the policy; D retrained mid-way
    policy = ProbabilisticActor(
        TensorDictModule(NextTokenLogits(G), in_keys=["observation"], out_keys=["logits"]),
        in_keys=["logits"], distribution_class=torch.distributions.Categorical, return_log_prob=True,
        spec=env.action_spec,
    )  # fmt: skip
    frames_per_batch = args.num_envs * t
    frames = args.frames or 16 * frames_per_batch
    extra = {}
    if "auto_register_policy_transforms" in inspect.signature(Collector).parameters:  # torchrl >= 0.14
        extra = {"auto_register_policy_transforms": False}  # the policy needs no InitTracker
    collector = Collector(env, policy, frames_per_batch=frames_per_batch, total_frames=frames, **extra)
    d_optim = torch.optim.Adam(D.parameters(), lr=1e-4)
    batches = frames // frames_per_batch
    for i, batch in enumerate(collector):
        reward = batch["next", "reward"]
        print(f"batch {i}: {batch.numel()} frames, mean reward (Q) {reward.mean().item():.4f}")
        if i == batches // 2 - 1:  # D retrained in place: every reward from here on uses the new D
            D.train()
            for _ in range(3):  # a caricature of D training: "every sequence is fake"
                fake = G.sample(64, make_rng(i))
                loss = D.loss(fake, torch.zeros(64, dtype=torch.long))
                d_optim.zero_grad()
                loss.backward()
                d_optim.step()
            D.eval()
            print(f"D retrained (loss {loss.item():.3f}): the rewards from batch {i + 1} on use it")
    collector.shutdown()
    print(f"collected {frames} frames in {batches} batches")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
