#!/usr/bin/env python
"""SeqGAN reward speed: the batched whole-sequence Q vs. the reference code's loop, and env steps/s.

Paper sizes: V 5000, T 20, generator 32/32, the paper's CNN discriminator, batch 64, N 16.

(a) ``seqgan_rl.envs.mc_q_values``: one batched computation (rollouts continue from cached prefix
    states, the first step shared by the N rollouts of a prefix, D reusing the prefix's convolution
    windows, D(Y) once).
(b) a baseline written here that follows the reference code (LantaoYu/SeqGAN ``rollout.py``): for each
    of N rollouts and each prefix length 1..T-1, recompute the prefix from the start token, sample the
    rest with ``torch.multinomial``, score the 64 completions with D; plus D(Y) once per rollout (16x):
    304 rollouts of a 64-batch and 320 D calls.

Then env steps/s of ``TokenGenerationVectorEnv`` at 1, 64 and 1024 sub-envs, with ``"terminal"`` and
``"q"`` rewards (random actions). Usage:

    python benchmarks/bench_reward.py --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from seqgan_rl.config import DiscriminatorConfig, GeneratorConfig
from seqgan_rl.envs import TokenGenerationVectorEnv, mc_q_values
from seqgan_rl.models import Discriminator, Generator
from seqgan_rl.utils import keep_freed_memory, make_rng


@torch.no_grad()
def reference_q(gen: Generator, disc: Discriminator, seqs: torch.Tensor, n: int) -> torch.Tensor:
    """The reference code's loop: per rollout, per prefix length, prefix recomputed, multinomial sampling."""
    b, t_len = seqs.shape
    rewards = torch.zeros(t_len, b)
    for _ in range(n):
        for given in range(1, t_len):
            state = gen.initial_state(b)
            prev = gen.start_tokens(b)
            out = seqs.clone()
            for k in range(t_len):  # the prefix is re-read from the start token every time
                logits, state = gen.step(prev, state)
                if k < given:
                    prev = seqs[:, k]
                else:
                    prev = torch.multinomial(torch.softmax(logits, dim=-1), 1).squeeze(1)
                    out[:, k] = prev
            rewards[given - 1] += disc.prob_real(out)
        rewards[t_len - 1] += disc.prob_real(seqs)  # D(Y), evaluated once per rollout as in the reference
    return (rewards / n).T  # (B, T)


def time_it(fn, repeats: int) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def env_steps_per_second(gen, disc, num_envs: int, mode: str, steps: int, seed: int = 0) -> float:
    env = TokenGenerationVectorEnv(num_envs, generator=gen, discriminator=disc, reward_mode=mode, num_rollouts=16)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for _ in range(steps):
        env.step(rng.integers(0, env.vocab_size, size=num_envs))
    return num_envs * steps / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3, help="timed repeats of (a); (b) runs once")
    p.add_argument("--skip-baseline", action="store_true")
    p.add_argument("--skip-env", action="store_true")
    p.add_argument("--env-sizes", default="1,64,1024")
    p.add_argument("--discriminator", default="paper", choices=["paper", "light"])
    args = p.parse_args(argv)
    keep_freed_memory()  # as the scripts do
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    gen = Generator(GeneratorConfig()).eval()
    gen.reset_parameters(make_rng(0))
    disc = Discriminator(DiscriminatorConfig.preset(args.discriminator)).eval()
    disc.reset_parameters(make_rng(1))
    seqs = gen.sample(64, make_rng(2))
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, D={args.discriminator}, B=64, N=16, T=20")

    best_a, med_a = time_it(lambda: mc_q_values(seqs, gen, disc, 16, make_rng(3)), args.repeats)
    print(f"(a) batched mc_q_values:   best {best_a:.2f} s, median {med_a:.2f} s over {args.repeats}")
    if not args.skip_baseline:
        t_b, _ = time_it(lambda: reference_q(gen, disc, seqs, 16), 1)
        print(f"(b) reference-style loop:  {t_b:.2f} s")
        print(f"ratio (b)/(a): {t_b / med_a:.1f}x (median of a)")
    if not args.skip_env:
        for n in (int(x) for x in args.env_sizes.split(",")):
            for mode in ("terminal", "q"):
                steps = 20  # one whole episode: early steps need long rollouts, late ones short
                sps = env_steps_per_second(gen, disc, n, mode, steps)
                print(f"vector env: {n:5d} sub-envs, reward {mode:8s}: {sps:10.1f} env steps/s ({steps} steps)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
