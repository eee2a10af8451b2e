#!/usr/bin/env python
"""SeqGAN's reward with a transformer generator: KV-cached rollouts vs recomputing prefixes vs ``model.generate()``.

The MC reward batch of the paper's benchmark (B 64, N 16, T 20, V 5000, the paper's CNN D) with a transformer G of
the strong LSTM's parameter count (GPT-2-style, 4 layers of 128: 1.44M parameters, the strong LSTM's 1.42M), 1 thread:

(a) ``mc_q_values`` with ``TransformerGenerator``: every rollout continues from its prefix's KV cache, repeated N
    times; the same with ``use_cache=False`` (every step re-runs the whole prefix; the same draws, so the same Q);
(b) the loop a user would write with ``transformers``: for each sequence and prefix, ``model.generate()`` 16
    completions (``do_sample``, ``top_k=0``: plain sampling), D on the completions; and a stronger baseline than that
    loop, one ``generate()`` per prefix length over all 64 prefixes repeated 16 times;
(c) the strong LSTM (``seqgan_rl.presets.STRONG_GENERATOR``) on the same batch with ``mc_q_values``, and the
    ``transformer`` preset's own generator (2 x 128).

Then where the time of (a) goes (the model's calls, the output layer with the sampler, D, the rest). Usage:

    python benchmarks/bench_transformer.py --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

import torch

from seqgan_rl.config import DiscriminatorConfig, GeneratorConfig, TransformerConfig
from seqgan_rl.envs import mc_q_values
from seqgan_rl.models import Discriminator, Generator, TransformerGenerator
from seqgan_rl.presets import STRONG_GENERATOR, TRANSFORMER_GENERATOR
from seqgan_rl.utils import keep_freed_memory, make_rng

B, N, T = 64, 16, 20
SIZE = {"architecture": "gpt2", "num_layers": 4, "hidden_dim": 128, "num_heads": 4, "dropout": 0.0}
"""The strong LSTM's parameter count (1.42M): 4 layers of 128 with the tied embedding of V 5000 (1.44M)."""


def generate(g: TransformerGenerator, prefix: torch.Tensor, new_tokens: int) -> torch.Tensor:
    """Plain sampling with ``model.generate()`` (no top-k, no top-p, exactly ``new_tokens`` tokens)."""
    return g.model.generate(
        input_ids=prefix, attention_mask=torch.ones_like(prefix), do_sample=True, top_k=0, top_p=1.0,
        max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=0, eos_token_id=None,
    )  # fmt: skip


@torch.no_grad()
def generate_q_per_prefix(g: TransformerGenerator, disc: Discriminator, seqs: torch.Tensor, n: int) -> torch.Tensor:
    """The loop a ``transformers`` user writes: for each sequence and each prefix of it, ``generate()`` N
    completions (1,216 calls of 16 rows); D scores each prefix length's completions in one batch."""
    b, t_len = seqs.shape
    q = torch.zeros(b, t_len, device=seqs.device)
    start = torch.full((1,), g.config.start_token, dtype=torch.long, device=seqs.device)
    for t in range(1, t_len):
        outs = [generate(g, torch.cat([start, seqs[i, :t]]).repeat(n, 1), t_len - t) for i in range(b)]
        q[:, t - 1] = disc.prob_real(torch.cat(outs)[:, 1:]).view(b, n).mean(dim=1)
    q[:, -1] = disc.prob_real(seqs)
    return q


@torch.no_grad()
def generate_q_batched(g: TransformerGenerator, disc: Discriminator, seqs: torch.Tensor, n: int) -> torch.Tensor:
    """A stronger baseline than the loop above: one ``generate()`` per prefix length over all 64 sequences' prefixes
    repeated N times (19 calls of 1,024 rows)."""
    b, t_len = seqs.shape
    q = torch.zeros(b, t_len, device=seqs.device)
    start = torch.full((b, 1), g.config.start_token, dtype=torch.long, device=seqs.device)
    for t in range(1, t_len):
        out = generate(g, torch.cat([start, seqs[:, :t]], dim=1).repeat(n, 1), t_len - t)  # rows ordered (n, b)
        q[:, t - 1] = disc.prob_real(out[:, 1:]).view(n, b).mean(dim=0)
    q[:, -1] = disc.prob_real(seqs)
    return q


def time_it(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def where_the_time_goes(g: TransformerGenerator, disc: Discriminator, seqs: torch.Tensor) -> dict[str, float]:
    """One cached ``mc_q_values`` with the model's calls, the output layer + sampler and D timed (seconds)."""
    spent: dict[str, float] = defaultdict(float)
    inside = {"model": False}

    def timed(owner, name, label, outer=False):
        real = getattr(owner, name)

        def wrapper(*args, **kwargs):
            if inside["model"] and not outer:  # the base model called by the whole model: counted there
                return real(*args, **kwargs)
            inside["model"] |= outer
            start = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                spent[label] += time.perf_counter() - start
                inside["model"] &= not outer

        setattr(owner, name, wrapper)
        return real

    base = g.model.base_model
    real_forward = timed(g.model, "forward", "the whole model: the prefix pass and the first steps", outer=True)
    real_base = timed(base, "forward", "transformer layers of the rollout steps")
    real_head = timed(g, "_sample_hidden", "output layer fused with the exact sampler")
    real_prob = timed(disc, "prob_real_rollouts", "D on the completions")
    start = time.perf_counter()
    mc_q_values(seqs, g, disc, N, make_rng(3))
    total = time.perf_counter() - start
    g.model.forward, base.forward, g._sample_hidden, disc.prob_real_rollouts = (
        real_forward,
        real_base,
        real_head,
        real_prob,
    )
    spent["the rest (cache rows: select, copy; bookkeeping)"] = total - sum(spent.values())
    spent["total"] = total
    return dict(spent)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3, help="timed repeats of (a) cached and (c); the others run once")
    args = p.parse_args(argv)
    keep_freed_memory()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    g = TransformerGenerator.from_config(TransformerConfig(**SIZE))
    g.reset_parameters(make_rng(0))
    g.eval()
    lstm = Generator(GeneratorConfig(**STRONG_GENERATOR)).eval()
    lstm.reset_parameters(make_rng(0))
    disc = Discriminator(DiscriminatorConfig.paper()).eval()
    disc.reset_parameters(make_rng(1))
    seqs = g.sample(B, make_rng(2))
    params = sum(p.numel() for p in g.parameters())
    lstm_params = sum(p.numel() for p in lstm.parameters())
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, B={B}, N={N}, T={T}, V=5000, paper D")
    print(f"transformer G: {SIZE} ({params:,} parameters); strong LSTM: {lstm_params:,}")

    mc_q_values(seqs, g, disc, N, make_rng(3))  # warm-up
    cached = time_it(lambda: mc_q_values(seqs, g, disc, N, make_rng(3)), args.repeats)
    q_cached = mc_q_values(seqs, g, disc, N, make_rng(3))
    g.use_cache = False
    start = time.perf_counter()
    q_recomputed = mc_q_values(seqs, g, disc, N, make_rng(3))
    recomputed = time.perf_counter() - start
    g.use_cache = True
    diff = (q_cached - q_recomputed).abs()
    print(f"(a) KV-cached rollouts:            {cached:7.2f} s (median of {args.repeats})")
    print(f"    recomputing every prefix:      {recomputed:7.2f} s  ({recomputed / cached:.1f}x the cached time)")
    print(f"    same draws: |dQ| mean {float(diff.mean()):.1e}, max {float(diff.max()):.1e}; Q entries equal to 1e-5: "
          f"{float((diff < 1e-5).float().mean()):.1%} (near-uniform 5,000-way draws flip where the logits differ in "
          "the last bits)")  # fmt: skip
    torch.manual_seed(4)
    per_prefix = time_it(lambda: generate_q_per_prefix(g, disc, seqs, N), 1)
    print(f"(b) model.generate() per prefix:   {per_prefix:7.2f} s  ({per_prefix / cached:.1f}x the cached time)")
    batched = time_it(lambda: generate_q_batched(g, disc, seqs, N), 1)
    print(f"    ... batched per prefix length: {batched:7.2f} s  ({batched / cached:.1f}x the cached time)")
    lstm_seqs = seqs.clone()
    lstm_time = time_it(lambda: mc_q_values(lstm_seqs, lstm, disc, N, make_rng(3)), args.repeats)
    print(f"(c) strong LSTM, same batch:       {lstm_time:7.2f} s  (the transformer takes {cached / lstm_time:.2f}x)")
    preset = TransformerGenerator.from_config(TransformerConfig(**TRANSFORMER_GENERATOR)).eval()
    preset.reset_parameters(make_rng(0))
    preset_time = time_it(lambda: mc_q_values(seqs, preset, disc, N, make_rng(3)), args.repeats)
    preset_params = sum(p.numel() for p in preset.parameters())
    print(f"    the transformer preset's G (2 x 128, {preset_params:,} parameters): {preset_time:.2f} s")
    print("where the time of (a) goes (one call):")
    for label, seconds in where_the_time_goes(g, disc, seqs).items():
        print(f"    {label:55s} {seconds:6.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
