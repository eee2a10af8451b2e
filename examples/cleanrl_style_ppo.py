#!/usr/bin/env python
"""A CleanRL-style PPO (one file, phases top to bottom) written against the Gymnasium 1.x vector API.

    python examples/cleanrl_style_ppo.py --tiny        # V 20, T 8, a few updates: seconds
    python examples/cleanrl_style_ppo.py               # paper sizes, untrained G and D (a demo, not a result)

``gym.make_vec("seqgan_rl/TokenGeneration-v0", num_envs=N, ...)`` returns the natively batched env. Its
autoreset is Gymnasium 1.x ``NEXT_STEP``: the step *after* an episode ends resets that sub-env, ignores the
action and returns reward 0. That step is not a transition, so it is masked out of the loss (CleanRL's
gymnasium-0.29 ``final_info`` idiom would silently train on it). Reward mode ``"q"`` with gamma 0: each
reward is SeqGAN's Q_t, the advantage is Q_t - V(s_t).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from torch import nn

import seqgan_rl  # noqa: F401  (registers seqgan_rl/TokenGeneration-v0)
from seqgan_rl.config import DiscriminatorConfig, GeneratorConfig
from seqgan_rl.models import Discriminator, Generator


@dataclass
class Args:
    num_envs: int = 16
    """parallel sequences"""
    num_updates: int = 3
    """PPO iterations"""
    update_epochs: int = 2
    num_minibatches: int = 4
    lr: float = 1e-3
    clip_coef: float = 0.2
    vf_coef: float = 0.5
    num_rollouts: int = 4
    """N Monte-Carlo rollouts per Q"""
    seed: int = 0


class Agent(nn.Module):
    """Actor and critic over the observed prefix: the generator's layers (embedding -> LSTM -> logits)."""

    def __init__(self, g: Generator) -> None:
        super().__init__()
        c = g.config
        self.vocab_size, self.start_token = c.vocab_size, c.start_token
        self.embedding = nn.Embedding(c.vocab_size, c.embed_dim)
        self.lstm = nn.LSTM(c.embed_dim, c.hidden_dim, num_layers=c.num_layers, batch_first=True)
        self.actor = nn.Linear(c.hidden_dim, c.vocab_size)
        self.critic = nn.Linear(c.hidden_dim, 1)
        self.embedding.load_state_dict(g.embedding.state_dict())  # start from the generator
        self.lstm.load_state_dict(g.lstm.state_dict())
        self.actor.load_state_dict(g.output.state_dict())

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        is_pad = obs == self.vocab_size  # the env pads the prefix with V
        lengths = (~is_pad).long().cumprod(1).sum(1).clamp(max=obs.shape[1] - 1)  # (B,)
        start = torch.full_like(obs[:, :1], self.start_token)
        inputs = torch.cat([start, obs[:, :-1].masked_fill(is_pad[:, :-1], 0)], dim=1)  # (B, T)
        hidden, _ = self.lstm(self.embedding(inputs))  # (B, T, H)
        return hidden[torch.arange(obs.shape[0]), lengths]  # (B, H): state after the prefix

    def get_action_and_value(self, obs: torch.Tensor, action: torch.Tensor | None = None):
        h = self.features(obs)
        dist = torch.distributions.Categorical(logits=self.actor(h))
        if action is None:
            action = dist.sample()
        return action, dist.log_prob(action), dist.entropy(), self.critic(h).squeeze(-1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--num-updates", type=int, default=Args.num_updates)
    p.add_argument("--num-envs", type=int, default=Args.num_envs)
    ns = p.parse_args(argv)
    args = Args(num_envs=ns.num_envs, num_updates=ns.num_updates)
    torch.manual_seed(args.seed)
    if ns.tiny:
        G = Generator(GeneratorConfig(vocab_size=20, seq_len=8, embed_dim=8, hidden_dim=8))
        D = Discriminator(DiscriminatorConfig(vocab_size=20, seq_len=8, filter_sizes=(2, 3), num_filters=(4, 4)))
    else:
        G, D = Generator(), Discriminator()

    # env setup: the natively batched vector env through the standard Gymnasium entry point
    envs = gym.make_vec("seqgan_rl/TokenGeneration-v0", num_envs=args.num_envs, generator=G, discriminator=D,
                        reward_mode="q", num_rollouts=args.num_rollouts)  # fmt: skip
    assert isinstance(envs.single_action_space, gym.spaces.Discrete)
    agent = Agent(G)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.lr, eps=1e-5)
    num_steps = G.seq_len + 1  # one whole sequence per sub-env, plus the autoreset step
    obs_buf = torch.zeros((num_steps, args.num_envs, G.seq_len), dtype=torch.long)
    act_buf = torch.zeros((num_steps, args.num_envs), dtype=torch.long)
    logp_buf, rew_buf, val_buf = (torch.zeros((num_steps, args.num_envs)) for _ in range(3))
    valid_buf = torch.zeros((num_steps, args.num_envs), dtype=torch.bool)

    next_obs, _ = envs.reset(seed=args.seed)
    next_obs = torch.as_tensor(next_obs)
    autoreset = np.zeros(args.num_envs, dtype=bool)  # NEXT_STEP: this step only resets these sub-envs
    for update in range(1, args.num_updates + 1):
        # rollout
        for step in range(num_steps):
            obs_buf[step], valid_buf[step] = next_obs, torch.as_tensor(~autoreset)
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(next_obs)
            act_buf[step], logp_buf[step], val_buf[step] = action, logprob, value
            next_obs, reward, terminations, truncations, _ = envs.step(action.numpy())
            rew_buf[step] = torch.as_tensor(reward, dtype=torch.float32)
            next_obs = torch.as_tensor(next_obs)
            autoreset = terminations | truncations

        # advantages: gamma 0, so the return of each step is its own Q
        returns = rew_buf
        advantages = returns - val_buf

        # PPO update on the valid transitions only
        valid = valid_buf.flatten()
        b_obs, b_act = obs_buf.flatten(0, 1)[valid], act_buf.flatten()[valid]
        b_logp, b_adv, b_ret = logp_buf.flatten()[valid], advantages.flatten()[valid], returns.flatten()[valid]
        n = b_obs.shape[0]
        mb = max(1, n // args.num_minibatches)
        for _ in range(args.update_epochs):
            for idx in torch.randperm(n).split(mb):
                _, newlogp, entropy, newv = agent.get_action_and_value(b_obs[idx], b_act[idx])
                ratio = (newlogp - b_logp[idx]).exp()
                adv = (b_adv[idx] - b_adv[idx].mean()) / (b_adv[idx].std() + 1e-8) if len(idx) > 1 else b_adv[idx]
                pg_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - args.clip_coef, 1 + args.clip_coef)).mean()
                v_loss = 0.5 * (newv - b_ret[idx]).square().mean()
                loss = pg_loss + args.vf_coef * v_loss
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), 0.5)
                optimizer.step()
        print(f"update {update}: {int(valid.sum())} transitions, mean Q {b_ret.mean():.4f}, "
              f"pg_loss {pg_loss.item():.4f}, v_loss {v_loss.item():.4f}")  # fmt: skip
    envs.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
