#!/usr/bin/env python
"""How close the MC reward batch runs to its floor: the batch beside the irreducible work it contains.

One reward batch (``mc_q_values``: B 64, N 16, T 20, V 5000, generator 32/32, the paper's or the light CNN)
samples 194,560 rollout tokens. Whatever the implementation, it must at least

- run the LSTM cell once per generated token and once per prefix position (``lstm``);
- project each hidden state onto the vocabulary, 32 -> 5,000 (``projection``; the first token after a
  prefix is drawn N times from one projection);
- exponentiate those logits and sum them in blocks, the least a draw from ``softmax`` reads (``exp+sum``);
- score every completion with D (``D``: ``Discriminator.prob_real_rollouts`` on the same completions, D's
  own batched pass, taken as its floor).

Each part is timed here, in the same process as the batch and interleaved with it, on cache-sized chunks
(the best of 128, 256 and 512 rows), and scaled by the number of rows the batch computes. The floor is their
sum; the efficiency is floor / batch time. Medians over ``--repeats`` rounds. Usage:

    python benchmarks/bench_reward_floor.py --threads 1 --discriminator paper
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from seqgan_rl.config import DiscriminatorConfig, GeneratorConfig
from seqgan_rl.envs import mc_q_values
from seqgan_rl.envs.rollout import sample_prefix_completions
from seqgan_rl.models import Discriminator, Generator
from seqgan_rl.models.sampling import block_size_for
from seqgan_rl.utils import keep_freed_memory, make_rng

B, N = 64, 16
CHUNKS = (128, 256, 512)


def seconds(fn: Callable[[], object], inner: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - start) / inner


def work_counts(t_len: int) -> dict[str, int]:
    """Rows of each kind one batch computes (B sequences, N rollouts per proper prefix)."""
    rollout_tokens = N * B * t_len * (t_len - 1) // 2  # a prefix of length t needs T - t tokens, N times
    first = (t_len - 1) * B  # the first token after each prefix: one projection, N draws
    projected = rollout_tokens - (t_len - 1) * N * B + first
    return {
        "rollout tokens": rollout_tokens,
        "projected rows": projected,
        "lstm rows": projected + B * t_len,  # + the prefix states of the B sequences
    }


@torch.no_grad()
def per_row_parts(gen: Generator, rng: torch.Generator) -> dict[str, float]:
    """Seconds per row of each generator part at its best chunk size (cache-resident inputs)."""
    v, k = gen.vocab_size, block_size_for(gen.vocab_size)
    h_all = torch.tanh(torch.randn(4096, gen.config.hidden_dim, generator=rng))
    out: dict[str, float] = {}
    proj, expsum = [], []
    for rows in CHUNKS:
        h = h_all[:rows]
        logits = gen.output(h)
        reps = max(1, 8192 // rows)
        proj.append(seconds(lambda h=h: gen.output(h), reps) / rows)
        expsum.append(seconds(lambda x=logits: torch.exp(x).view(x.shape[0], -1, k).sum(-1), reps) / rows)
        assert logits.shape[1] == v
    out["projection"], out["exp+sum"] = min(proj), min(expsum)
    prev = torch.randint(0, v, (4096,), generator=rng)
    state = (h_all, h_all.clone())
    out["lstm"] = seconds(lambda: gen.advance(prev, state), 4) / 4096
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--discriminator", default="paper", choices=["paper", "light"])
    args = p.parse_args(argv)
    keep_freed_memory()
    torch.set_num_threads(args.threads)
    gen = Generator(GeneratorConfig()).eval()
    gen.reset_parameters(make_rng(0))
    disc = Discriminator(DiscriminatorConfig.preset(args.discriminator)).eval()
    disc.reset_parameters(make_rng(1))
    seqs = gen.sample(B, make_rng(2))
    completions = sample_prefix_completions(gen, seqs, N, make_rng(3))
    counts = work_counts(gen.seq_len)
    mc_q_values(seqs, gen, disc, N, make_rng(3))  # warm-up

    batch, d_part, parts = [], [], []
    for r in range(args.repeats):  # interleaved: the parts and the batch see the same machine state
        batch.append(seconds(lambda: mc_q_values(seqs, gen, disc, N, make_rng(3))))
        d_part.append(seconds(lambda: disc.prob_real_rollouts(seqs, completions)))
        parts.append(per_row_parts(gen, make_rng(10 + r)))
    t_batch, t_d = statistics.median(batch), statistics.median(d_part)
    per_row = {key: statistics.median(p[key] for p in parts) for key in parts[0]}
    floor = {
        "lstm": per_row["lstm"] * counts["lstm rows"],
        "projection": per_row["projection"] * counts["projected rows"],
        "exp+sum": per_row["exp+sum"] * counts["projected rows"],
        "D": t_d,
    }
    total = sum(floor.values())
    flops = 2 * gen.config.hidden_dim * gen.vocab_size
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, D={args.discriminator}, B={B}, N={N}, "
        f"T={gen.seq_len}, V={gen.vocab_size}; medians of {args.repeats} interleaved rounds"
    )
    print(", ".join(f"{k} {v:,}" for k, v in counts.items()))
    print(f"{'part':12s} {'per row':>12s} {'floor s':>9s}")
    for key in ("lstm", "projection", "exp+sum"):
        print(f"{key:12s} {per_row[key] * 1e6:9.3f} us {floor[key]:9.3f}")
    print(f"{'D':12s} {'':>12s} {floor['D']:9.3f}   (prob_real_rollouts of the batch's completions)")
    print(f"projection at {flops / per_row['projection'] / 1e9:.1f} GFLOP/s on its best chunk")
    print(f"floor {total:.3f} s; batch (mc_q_values) {t_batch:.3f} s; efficiency {total / t_batch:.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
