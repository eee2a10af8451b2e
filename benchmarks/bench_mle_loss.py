#!/usr/bin/env python
"""The MLE step with the chunked loss (``Generator.mle_loss``) against autograd's ``cross_entropy``, side by side.

Two copies of a generator start equal; each minibatch is stepped by both, alternately (Adam, clip 5), so the machine's
drifts hit both alike. Since the chunked loss is autograd's bit for bit, the copies stay equal: the script checks it
at the end. Prints the median milliseconds per step of each, and the ratio, for the paper generator (E 32, H 32) and
the strong preset's (E 128, H 128, variational dropout 0.6), batch 64 of the paper oracle's sequences (V 5000, T 20)::

    python benchmarks/bench_mle_loss.py --threads 2
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time

import torch
from torch.nn import functional as F

from seqgan_rl.config import GeneratorConfig
from seqgan_rl.data.oracle_data import iterate_minibatches
from seqgan_rl.models import Generator, OracleLSTM, losses
from seqgan_rl.presets import STRONG_GENERATOR
from seqgan_rl.training.pretrain import make_generator_optimizer
from seqgan_rl.utils import keep_freed_memory, make_rng


def step(generator: Generator, optimizer: torch.optim.Optimizer, tokens: torch.Tensor, chunked: bool) -> float:
    """``pretrain.mle_step`` with either loss; seconds."""
    start = time.perf_counter()
    generator.train()
    loss = generator.mle_loss(tokens) if chunked else F.cross_entropy(generator(tokens).flatten(0, 1), tokens.flatten())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(generator.parameters(), 5.0)
    optimizer.step()
    return time.perf_counter() - start


def compare(config: GeneratorConfig, train: torch.Tensor, steps: int, lr: float) -> tuple[float, float, bool]:
    torch.manual_seed(0)
    a = Generator(config)
    b = copy.deepcopy(a)
    opt_a, opt_b = make_generator_optimizer(a, lr), make_generator_optimizer(b, lr)
    times_a, times_b = [], []
    for i, batch in enumerate(iterate_minibatches(train, 64, make_rng(0))):
        if i == steps:
            break
        torch.manual_seed(i)  # the same dropout masks for both
        times_a.append(step(a, opt_a, batch, chunked=False))
        torch.manual_seed(i)
        times_b.append(step(b, opt_b, batch, chunked=True))
    same = all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    return statistics.median(times_a[3:]) * 1e3, statistics.median(times_b[3:]) * 1e3, same


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=156, help="minibatches stepped by each copy (156: an epoch)")
    p.add_argument("--chunk-rows", type=int, nargs="+", default=[losses.CHUNK_ROWS], help="chunk sizes to compare")
    args = p.parse_args(argv)
    if args.threads < 1 or args.steps < 4 or min(args.chunk_rows) < 1:
        p.error("--threads and --chunk-rows must be >= 1, --steps >= 4")
    keep_freed_memory()
    torch.set_num_threads(args.threads)
    train = OracleLSTM.paper().sample(9984, make_rng(1))
    print(f"bench_mle_loss: torch {torch.__version__}, threads {args.threads}, batch 64, V 5000, T 20, "
          f"{args.steps} steps each, medians")  # fmt: skip
    models = {"paper G (E 32, H 32)": (GeneratorConfig(), 0.01),
              "strong G (E 128, H 128, dropout 0.6)": (GeneratorConfig(**STRONG_GENERATOR), 2e-3)}  # fmt: skip
    for chunk in args.chunk_rows:
        losses.CHUNK_ROWS = chunk
        for name, (config, lr) in models.items():
            ref, new, same = compare(config, train, args.steps, lr)
            print(f"{name:38s} chunk {chunk:4d}: autograd {ref:6.2f} ms/step, chunked {new:6.2f} ms/step, "
                  f"{ref / new:.2f}x; weights after the steps equal: {same}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
