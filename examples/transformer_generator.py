#!/usr/bin/env python
"""A Hugging Face transformer as SeqGAN's generator: the env's policy, its per-token Q, a few REINFORCE updates.

    python examples/transformer_generator.py            # V 5000, T 20, a GPT-2 of 4 x 128, untrained
    python examples/transformer_generator.py --tiny     # V 20, T 8: runs in seconds (the tests run it)
    python examples/transformer_generator.py --from DIR # any causal LM saved with save_pretrained

Needs the ``hf`` extra (``pip install -e ".[hf]"``). Any ``transformers`` causal LM works: wrap it in
``TransformerGenerator(model, seq_len=T)``; the Q of every token comes from Monte-Carlo rollouts that continue from
the prefix's KV cache (``docs/transformers.md``).
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import torch
from transformers import AutoModelForCausalLM, GPT2Config

import seqgan_rl  # noqa: F401  (registers seqgan_rl/TokenGeneration-v0)
from seqgan_rl.agents.reinforce import ReinforceAgent
from seqgan_rl.config import DiscriminatorConfig, ReinforceConfig
from seqgan_rl.envs import SeqGANReward, mc_q_values
from seqgan_rl.models import Discriminator, TransformerGenerator


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="a tiny vocabulary, length and model (tests)")
    p.add_argument("--from", dest="path", default=None, help="a save_pretrained folder (or hub id) to start from")
    p.add_argument("--updates", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    v, t = (20, 8) if args.tiny else (5000, 20)
    if args.path is not None:
        G = TransformerGenerator.from_pretrained(args.path, seq_len=t)
        v = G.vocab_size
    else:  # the user's own model, built with transformers as usual
        size = {"n_embd": 16, "n_layer": 1, "n_head": 2} if args.tiny else {"n_embd": 128, "n_layer": 4, "n_head": 4}
        model = AutoModelForCausalLM.from_config(
            GPT2Config(vocab_size=v, n_positions=t + 1, bos_token_id=0, eos_token_id=None, **size)
        )
        G = TransformerGenerator(model, seq_len=t, start_token=0)  # token 0 is the first input of every sequence
    widths = (2, 3) if args.tiny else (2, 3, 4, 5)
    D = Discriminator(DiscriminatorConfig(vocab_size=v, seq_len=t, filter_sizes=widths, num_filters=(8,) * len(widths)))

    # 1. the Gymnasium env with the transformer as its rollout policy: the reward of each token is its Q
    env = gym.make("seqgan_rl/TokenGeneration-v0", generator=G, discriminator=D, reward_mode="q", num_rollouts=4)
    obs, _ = env.reset(seed=args.seed)
    state, prev, rng, rewards, done = G.initial_state(1), G.start_tokens(1), torch.Generator(), [], False
    rng.manual_seed(args.seed)
    while not done:
        prev, state = G.sample_step(prev, state, rng)  # the agent carries its own KV cache
        obs, reward, terminated, truncated, _ = env.step(int(prev))
        rewards.append(round(reward, 3))
        done = terminated or truncated
    print(f"episode: tokens {obs.tolist()}\n  Q per token {rewards}")

    # 2. the Q matrix of a batch, all prefixes' rollouts batched from their cached keys and values
    seqs = G.sample(8, rng)
    q = mc_q_values(seqs, G, D, num_rollouts=4, rng=rng)
    print(f"Q of 8 sampled sequences: shape {tuple(q.shape)}, mean {float(q.mean()):.3f}")

    # 3. SeqGAN's REINFORCE on the transformer (D fixed here; the training loop retrains it)
    agent = ReinforceAgent(G, SeqGANReward(G, D, num_rollouts=4), ReinforceConfig(lr=1e-3, batch_size=8))
    for update in range(args.updates):
        metrics = agent.update(agent.collect(rng))
        print(f"update {update}: mean Q {metrics['train/mean_q']:.3f}, loss {metrics['train/pg_loss']:.3f}")
    print(f"{args.updates} REINFORCE updates of a {type(G.model).__name__}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
