#!/usr/bin/env python
"""Which sequences does each reward push G towards? D* against the paper's D, on G's own samples (oracle access).

A policy-gradient step with a sequence reward r raises the probability of G's samples in proportion to r (minus a
baseline). To first order, for a G that could move each sequence's probability freely (exponentiated gradient on
p_G(y)), one step of size eta changes the mean of any score f over G's samples by eta * Cov_G(r, f). So the sign of

- ``Cov_G(r, log p_oracle)`` says whether the step lowers G's NLL-oracle (positive: it does), and
- ``Cov_G(r, log p_G)`` whether it sharpens G (positive) or spreads it (negative: entropy rises),

before any optimiser noise. This script samples ``--samples`` sequences from each seed's MLE generator (the
pre-training of ``--preset``, made in ``<pre-root>/pretrain-s<seed>`` when missing, as ``d_screen.py`` does) and
reports, for each reward: its mean, the fraction of samples above 0.5, the correlations of r with both
log-likelihoods (scale-free: the covariances divided by both standard deviations), and the mean oracle and G
log-likelihood of the 10% of samples the reward ranks highest beside all samples'. Rewards:

- ``pre-trained D``: the preset's pre-trained discriminator (what the adversarial phase starts from);
- ``D*``: sigmoid(log p_oracle - log p_G), the Bayes-optimal discriminator of this G (``seqgan_rl.models.optimal``;
  SeqGAN's reward form, ``--reward optimal``);
- ``log D*`` (the non-saturating generator objective, ``--reward optimal_log``) and ``log-ratio`` = log p_oracle -
  log p_G (its REINFORCE gradient is minus that of KL(p_G || p_oracle) = T x NLL-oracle - G's entropy; equal to
  log D* wherever D* is far below 1/2);
- ``oracle log-lik`` (the NLL-oracle metric itself, for scale).

    python benchmarks/dstar_diagnostic.py --preset cpu --seeds 0 1 --pre-root runs/dstar-pre

Each seed runs on one thread. Oracle access throughout: a diagnostic, never a benchmark row.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

REWARDS = ("pre-trained D", "D*", "log D*", "log-ratio", "oracle log-lik")


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-300))


def top1_share(r: torch.Tensor, batch: int = 64) -> float:
    """Mean over batches of ``batch`` samples of the largest reward's share of the batch's total (1/64 when every
    sample counts alike; near 1 when one sequence carries the whole batch's signal). For rewards >= 0."""
    n = len(r) // batch * batch
    rows = r[:n].view(-1, batch)
    return float((rows.max(dim=1).values / rows.sum(dim=1).clamp_min(1e-300)).mean())


def reward_stats(rewards: dict[str, torch.Tensor], log_o: torch.Tensor, log_g: torch.Tensor) -> dict[str, dict]:
    """Per reward: mean, P(r > 0.5), corr(r, log p_oracle), corr(r, log p_G), and the top decile's log-likelihoods."""
    top_n = max(1, len(log_o) // 10)
    out = {}
    for name, r in rewards.items():
        top = torch.topk(r, top_n).indices
        out[name] = {
            "mean": float(r.mean()),
            "above_half": float((r > 0.5).double().mean()),
            "corr_log_oracle": correlation(r, log_o),
            "corr_log_g": correlation(r, log_g),
            "top10_log_oracle": float(log_o[top].mean()),
            "top10_log_g": float(log_g[top].mean()),
            "top1_share_64": top1_share(r) if bool((r >= 0).all()) else None,
        }
    return out


def diagnose_seed(seed: int, preset: str, pre_root: str, samples: int) -> dict:
    """Sample from the seed's MLE G and score every reward on the samples (one thread)."""
    from seqgan_rl.models.optimal import OptimalDiscriminator
    from seqgan_rl.presets import train_preset
    from seqgan_rl.training.pretrain import run_pretraining
    from seqgan_rl.utils import derive_seed, eval_mode, make_rng

    torch.set_num_threads(1)
    cfg = train_preset(preset, seed)
    pre_dir = Path(pre_root, f"pretrain-s{seed}")
    started = (pre_dir / "pretrained.pt").exists() or (pre_dir / "pretrain_checkpoint.pt").exists()
    pre = run_pretraining(cfg.pretrain, pre_dir, torch.device("cpu"), resume=started)
    g, d = pre.generator, pre.discriminator
    oracle = pre.evaluator.inner.oracle if hasattr(pre.evaluator, "inner") else pre.evaluator.oracle
    with eval_mode(g), eval_mode(d), torch.no_grad():
        tokens = g.sample(samples, make_rng(derive_seed(seed, "dstar-diagnostic")))
        log_o = oracle.log_probs(tokens).double().sum(dim=1)
        log_g = g.log_probs(tokens).double().sum(dim=1)
        ratio = OptimalDiscriminator(oracle, g).log_ratio(tokens)
        rewards = {
            "pre-trained D": d.prob_real(tokens).double(),
            "D*": torch.sigmoid(ratio),
            "log D*": torch.nn.functional.logsigmoid(ratio),
            "log-ratio": ratio,
            "oracle log-lik": log_o,
        }
    t = tokens.shape[1]
    return {
        "seed": seed,
        "preset": preset,
        "samples": samples,
        "nll_oracle": float(-log_o.mean() / t),
        "g_entropy_per_token": float(-log_g.mean() / t),
        "log_ratio_quantiles": [float(q) for q in torch.quantile(ratio, torch.tensor([0.1, 0.5, 0.9, 0.99]).double())],
        "log_ratio_max": float(ratio.max()),
        "log_oracle_mean": float(log_o.mean()),
        "log_g_mean": float(log_g.mean()),
        "rewards": reward_stats(rewards, log_o, log_g),
    }


def table(records: list[dict]) -> str:
    lines = [
        "| seed | reward | mean | P(r > 0.5) | corr(r, log p_oracle) | corr(r, log p_G) | top 10%: log p_oracle "
        "(all) | top 10%: log p_G (all) | top-1 share of a batch of 64 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for rec in records:
        for name in REWARDS:
            s = rec["rewards"][name]
            lines.append(
                f"| {rec['seed']} | {name} | {s['mean']:.4g} | {s['above_half']:.3f} | {s['corr_log_oracle']:+.3f} | "
                f"{s['corr_log_g']:+.3f} | {s['top10_log_oracle']:.1f} ({rec['log_oracle_mean']:.1f}) | "
                f"{s['top10_log_g']:.1f} ({rec['log_g_mean']:.1f}) | "
                + ("–" if s["top1_share_64"] is None else f"{s['top1_share_64']:.3f}")
                + " |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=["cpu", "strong", "transformer"], default="cpu")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--pre-root", default="runs/dstar-pre", help="folder holding pretrain-s<seed>/ checkpoints")
    p.add_argument("--samples", type=int, default=5000, help="G samples per seed")
    p.add_argument("--out", default=None, help="write the records to OUT.json and the table to OUT.md")
    args = p.parse_args(argv)
    if args.samples < 10:
        p.error(f"--samples must be >= 10, got {args.samples}")
    records = []
    for seed in args.seeds:
        rec = diagnose_seed(seed, args.preset, args.pre_root, args.samples)
        records.append(rec)
        print(
            f"seed {seed}: NLL-oracle {rec['nll_oracle']:.3f}, G entropy {rec['g_entropy_per_token']:.3f} nats/token, "
            f"log-ratio quantiles 10/50/90/99% {[round(q, 1) for q in rec['log_ratio_quantiles']]}",
            flush=True,
        )
    command = "python benchmarks/dstar_diagnostic.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = "\n".join([
        f"# Rewards on G's own samples: {args.preset} preset's MLE generator, {args.samples} samples per seed",
        "",
        f"Command: `{command}`. Oracle access throughout (a diagnostic). r = the reward of a whole sequence; the",
        "correlations are Pearson's over the samples; the last two columns: mean log-likelihood (nats per sequence) of",
        "the 10% of samples the reward ranks highest, and of all samples in brackets.",
        "",
        *(f"- seed {r['seed']}: NLL-oracle {r['nll_oracle']:.3f}, G's entropy {r['g_entropy_per_token']:.3f} nats/token;"
          f" log p_oracle - log p_G per sequence, quantiles 10/50/90/99%: "
          f"{', '.join(f'{q:.1f}' for q in r['log_ratio_quantiles'])}, max {r['log_ratio_max']:.1f}" for r in records),
        "",
        table(records),
    ])  # fmt: skip
    print(text)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(records, indent=1) + "\n")
        out.with_suffix(".md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
