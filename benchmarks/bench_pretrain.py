#!/usr/bin/env python
"""Time the pre-training phases on the paper's benchmark sizes (V 5000, T 20, batch 64).

    python benchmarks/bench_pretrain.py --threads 1
    python benchmarks/bench_pretrain.py --threads 2 --d-batches 40    # shorter: extrapolate D epochs

Prints, for one torch thread setting:
- seconds per MLE epoch: 9,984 oracle sequences, the paper generator (E 32, H 32), Adam, batch 64;
- seconds per D epoch for the ``paper`` and ``light`` CNNs: 9,984 real + 9,984 generated, batch 64, one pass;
- sequences per second when sampling 9,984 sequences with the generator's sampler and with the same step
  loop drawing through ``torch.multinomial(torch.softmax(logits, -1), 1)``, and their ratio.

``--mle-batches N`` / ``--d-batches N`` time N batches and extrapolate to a whole epoch (labelled so in
the output). Timings on a shared machine are noisy: run each setting more than once before comparing.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable

import torch

from seqgan_rl.config import DiscriminatorConfig, GeneratorConfig, MLEConfig
from seqgan_rl.data.oracle_data import iterate_minibatches, random_permutation
from seqgan_rl.models import Discriminator, Generator, OracleLSTM
from seqgan_rl.training.pretrain import (
    discriminator_step,
    make_discriminator_optimizer,
    make_generator_optimizer,
    mle_step,
)
from seqgan_rl.utils import derive_seed, keep_freed_memory, make_rng

BATCH = 64


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-train", type=int, default=9984, help="oracle sequences = generated negatives (9,984)")
    p.add_argument("--sample-num", type=int, default=9984, help="sequences drawn by each sampler (9,984)")
    p.add_argument("--mle-batches", type=int, default=None, help="time N MLE batches and extrapolate to an epoch")
    p.add_argument("--d-batches", type=int, default=None, help="time N D batches per preset and extrapolate")
    p.add_argument("--d-presets", nargs="+", default=["paper", "light"], choices=["paper", "light"])
    args = p.parse_args(argv)
    for name in ("threads", "num_train", "sample_num", "mle_batches", "d_batches"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    return args


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def epoch_label(timed_batches: int, epoch_batches: int) -> str:
    if timed_batches >= epoch_batches:
        return f"full epoch of {epoch_batches} batches"
    return f"EXTRAPOLATED from {timed_batches} of {epoch_batches} batches"


def bench_mle(generator: Generator, train: torch.Tensor, max_batches: int | None, seed: int) -> tuple[float, str]:
    """Seconds per MLE epoch over ``train`` (shuffled batches of 64, Adam 0.01, clip 5)."""
    cfg = MLEConfig()
    opt = make_generator_optimizer(generator, cfg.lr)
    batches = list(iterate_minibatches(train, BATCH, make_rng(seed)))
    mle_step(generator, opt, batches[0], cfg.grad_clip)  # warm-up (allocations, first-call overhead)
    todo = batches[: max_batches or len(batches)]
    seconds = timed(lambda: [mle_step(generator, opt, b, cfg.grad_clip) for b in todo])
    return seconds * len(batches) / len(todo), epoch_label(len(todo), len(batches))


def bench_d(
    preset: str, real: torch.Tensor, fake: torch.Tensor, max_batches: int | None, seed: int
) -> tuple[float, str, DiscriminatorConfig]:
    """Seconds per D epoch: one shuffled pass over real (label 1) + fake (label 0) in batches of 64."""
    cfg = DiscriminatorConfig.preset(preset)
    d = Discriminator(cfg)
    d.reset_parameters(make_rng(derive_seed(seed, "d-init", preset)))
    opt = make_discriminator_optimizer(d, 1e-4)
    tokens = torch.cat([real, fake])
    labels = torch.cat([torch.ones(len(real), dtype=torch.long), torch.zeros(len(fake), dtype=torch.long)])
    order = random_permutation(len(tokens), make_rng(seed))
    batches = [order[i : i + BATCH] for i in range(0, len(tokens), BATCH)]
    discriminator_step(d, opt, tokens[batches[0]], labels[batches[0]])  # warm-up
    todo = batches[: max_batches or len(batches)]
    seconds = timed(lambda: [discriminator_step(d, opt, tokens[i], labels[i]) for i in todo])
    return seconds * len(batches) / len(todo), epoch_label(len(todo), len(batches)), cfg


@torch.no_grad()
def sample_multinomial(generator: Generator, num: int, rng: torch.Generator, batch_size: int = 512) -> torch.Tensor:
    """``Generator.sample``'s step loop, drawing each token with ``torch.multinomial`` instead."""
    chunks = []
    for start in range(0, num, batch_size):
        b = min(batch_size, num - start)
        state, prev = generator.initial_state(b), generator.start_tokens(b)
        out = torch.empty(b, generator.seq_len, dtype=torch.long)
        for t in range(generator.seq_len):
            logits, state = generator.step(prev, state)  # (b, V)
            prev = torch.multinomial(torch.softmax(logits, -1), 1, generator=rng).squeeze(1)
            out[:, t] = prev
        chunks.append(out)
    return torch.cat(chunks)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    keep_freed_memory()  # as the scripts do
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(
        f"bench_pretrain: torch {torch.__version__}, torch.get_num_threads() = {torch.get_num_threads()}, "
        f"python {platform.python_version()}, {platform.machine()}, device cpu"
    )
    oracle = OracleLSTM.paper()
    start = time.perf_counter()
    train = oracle.sample(args.num_train, make_rng(derive_seed(args.seed, "train-data")))
    seconds = time.perf_counter() - start
    print(f"data: {len(train):,} sequences from the paper oracle (V 5000, T 20) in {seconds:.2f} s (not timed below)")

    generator = Generator(GeneratorConfig())
    generator.reset_parameters(make_rng(derive_seed(args.seed, "g-init")))
    per_epoch, label = bench_mle(generator, train, args.mle_batches, args.seed)
    print(f"MLE epoch   paper G (E 32, H 32), batch {BATCH}: {per_epoch:8.2f} s/epoch  ({label})")

    generator.eval()
    fake = generator.sample(args.num_train, make_rng(derive_seed(args.seed, "negatives")))
    for preset in args.d_presets:
        per_epoch, label, cfg = bench_d(preset, train, fake, args.d_batches, args.seed)
        what = f"{preset:5s} D ({cfg.total_filters:,} filters), {len(train):,} real + {len(fake):,} generated"
        print(f"D epoch     {what}, batch {BATCH}: {per_epoch:8.2f} s/epoch  ({label})")

    with torch.no_grad():
        bound = generator.logit_bound()
    generator.sample(64, make_rng(1))  # warm-up
    sample_multinomial(generator, 64, make_rng(1))
    n = args.sample_num
    t_ours = timed(lambda: generator.sample(n, make_rng(derive_seed(args.seed, "bench-sample"))))
    t_multi = timed(lambda: sample_multinomial(generator, n, make_rng(derive_seed(args.seed, "bench-sample"))))
    skip = "skipped" if bound <= 80 else "applied"
    print(
        f"sampling    {n:,} sequences x 20 tokens (chunks of 512; logit bound {bound:.1f}: max-subtraction {skip}):\n"
        f"            generator sampler  {n / t_ours:10,.0f} seq/s  ({t_ours:6.2f} s)\n"
        f"            torch.multinomial  {n / t_multi:10,.0f} seq/s  ({t_multi:6.2f} s)\n"
        f"            ratio              {t_multi / t_ours:10.1f}x faster"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
