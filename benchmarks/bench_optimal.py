#!/usr/bin/env python
"""The optimal discriminator's reward batch (``OptimalDiscriminator.prob_real_rollouts``) against scoring every
completion whole, side by side.

One update's rollouts of SeqGAN's reward: B sequences, N completions of each of their T-1 proper prefixes (the paper
oracle, V 5000, T 20; G the paper's size, E 32 / H 32, or the strong preset's, E 128 / H 128). Three ways to get
D* of every completion, alternated over ``--repeats`` rounds so the machine's drifts hit all alike:

- ``log_probs``: each model's ``log_probs`` on whole completions, in chunks of 1,024 rows (D*'s first version);
- ``whole``: ``prob_real`` on the completions flattened (the output layer in reused buffers, every position);
- ``rollouts``: ``prob_real_rollouts`` (the shared prefix's terms from the sequences, only completed positions).

Prints the median seconds of each, the ratios, and the largest difference from ``log_probs`` in log D* (float32; D*
itself is below float32's range for a G far from the oracle)::

    python benchmarks/bench_optimal.py --threads 1 --generator strong
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from seqgan_rl.config import GeneratorConfig
from seqgan_rl.envs.rollout import sample_prefix_completions
from seqgan_rl.models import Generator, OracleLSTM
from seqgan_rl.models.optimal import OptimalDiscriminator
from seqgan_rl.presets import STRONG_GENERATOR
from seqgan_rl.utils import make_rng


def by_log_probs(d: OptimalDiscriminator, completions: torch.Tensor) -> torch.Tensor:
    """log D* of every completion from each model's ``log_probs`` on whole rows (chunks of 1,024)."""
    rows, ratios = completions.reshape(-1, completions.shape[-1]), []
    with torch.no_grad():
        for i in range(0, len(rows), 1024):
            part = rows[i : i + 1024]
            lo = d.oracle.log_probs(part).double().sum(dim=1)
            ratios.append(lo - d.generator.log_probs(part, d.temperature).double().sum(dim=1))
    return torch.nn.functional.logsigmoid(torch.cat(ratios)).float().view(completions.shape[:3])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--generator", choices=("paper", "strong"), default="strong", help="G's size (default strong)")
    p.add_argument("--batch", type=int, default=64, help="sequences per update (64)")
    p.add_argument("--rollouts", type=int, default=16, help="N completions per prefix (16)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if min(args.batch, args.rollouts, args.repeats, args.threads) < 1:
        p.error("--batch, --rollouts, --repeats and --threads must be >= 1")
    torch.set_num_threads(args.threads)
    oracle = OracleLSTM.paper()
    dims = STRONG_GENERATOR if args.generator == "strong" else {}
    config = GeneratorConfig(**{**dims, "dropout": 0.0})
    g = Generator(config).eval()
    g.reset_parameters(make_rng(0))
    rng = make_rng(1)
    sequences = g.sample(args.batch, rng)
    completions = sample_prefix_completions(g, sequences, args.rollouts, rng)
    d = OptimalDiscriminator(oracle, g, log=True)
    ways = {
        "log_probs": lambda: by_log_probs(d, completions),
        "whole": lambda: d.prob_real(completions.reshape(-1, completions.shape[-1])).view(completions.shape[:3]),
        "rollouts": lambda: d.prob_real_rollouts(sequences, completions)[0],
    }
    seconds: dict[str, list[float]] = {k: [] for k in ways}
    values: dict[str, torch.Tensor] = {}
    for _ in range(args.repeats):
        for name, way in ways.items():
            start = time.perf_counter()
            values[name] = way()
            seconds[name].append(time.perf_counter() - start)
    n = completions.shape[0] * completions.shape[1] * completions.shape[2]
    print(f"G {args.generator} (E {config.embed_dim}, H {config.hidden_dim}), {n:,} completions of length "
          f"{sequences.shape[1]}, {args.threads} thread(s), median of {args.repeats}:")  # fmt: skip
    base = statistics.median(seconds["log_probs"])
    for name in ways:
        med = statistics.median(seconds[name])
        diff = float((values[name] - values["log_probs"]).abs().max())
        print(f"  {name:10s} {med:7.2f} s   {base / med:5.2f}x   max |log D* - log_probs'| {diff:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
