#!/usr/bin/env python
"""The cost of one adversarial update of every leaderboard row, side by side in one process.

The leaderboard's ``wall s`` column is each run's own wall time, and its runs shared the two cores with up to
four other processes: its per-row figures are not comparable. This script measures what a row costs, on one
quiet machine, in one process: every row starts from the same pre-trained G and D (a finished pre-training
folder, e.g. ``runs/compare-cpu/pretrain-s0``), and the rows take turns (round 1 runs every row, then round 2
...), so a drift of the machine's speed spreads over all of them. An update is what the leaderboard's loop
runs: ``agent.collect`` (sampling and the reward: MC rollouts scored by D), ``agent.update``, and the D
retraining callback (rows that use D). Evaluation is left out (every row evaluates alike). Usage:

    python benchmarks/bench_algos.py --preset cpu --pretrain runs/compare-cpu/pretrain-s0 --threads 1 \
        --out benchmarks/results/bench_algos_cpu_1thread.txt
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from seqgan_rl.presets import train_preset, with_options
from seqgan_rl.training.callbacks import DiscriminatorRetrainCallback
from seqgan_rl.training.compare import algo_run, row_label
from seqgan_rl.training.pipeline import build_trainer
from seqgan_rl.training.pretrain import run_pretraining
from seqgan_rl.training.tasks import OracleTask, add_oracle_arguments, oracle_from_args
from seqgan_rl.utils import keep_freed_memory

ROWS = (
    "reinforce", "reinforce_baseline", "rollout_value", "rloo", "reinforce_kl", "coldgan", "grpo", "maligan",
    "rankgan", "ppo", "a2c", "constant",
)  # fmt: skip


def time_row(row: str, base, pre, updates: int, workdir: Path) -> dict[str, list[float]]:
    """``updates`` timed updates of ``row`` (after one untimed warm-up update) from copies of the pre-trained
    models; the seconds of each part of each update."""
    cfg = algo_run(row, base)
    gen, disc = copy.deepcopy(pre.generator), copy.deepcopy(pre.discriminator)
    out = Path(tempfile.mkdtemp(dir=workdir))
    trainer = build_trainer(cfg, gen, disc, pre.data, pre.evaluator, torch.device("cpu"), out)
    d_retrain = [cb for cb in trainer.callback.callbacks if isinstance(cb, DiscriminatorRetrainCallback)]
    parts: dict[str, list[float]] = {"collect": [], "update": [], "d": [], "total": []}
    for i in range(updates + 1):
        t0 = time.perf_counter()
        batch = trainer.agent.collect(trainer.rng)
        t1 = time.perf_counter()
        trainer.agent.update(batch)
        trainer.reward.after_update()
        t2 = time.perf_counter()
        trainer.iteration += 1
        for cb in d_retrain:
            cb.on_step()
        t3 = time.perf_counter()
        trainer.pending_metrics = {}
        if i:  # the first update warms caches and lazy set-ups
            for key, value in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t3 - t0), strict=True):
                parts[key].append(value)
    return parts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="cpu", choices=("cpu", "strong", "paper"))
    p.add_argument("--pretrain", required=True, help="a pre-training folder of this preset (made there if absent)")
    p.add_argument("--seed", type=int, default=0, help="the pre-training's seed")
    p.add_argument("--rows", nargs="+", default=list(ROWS), help="leaderboard rows (ALGO or ALGO@FIELD=VALUE)")
    p.add_argument("--updates", type=int, default=3, help="timed updates per row and round")
    p.add_argument("--rounds", type=int, default=2, help="turns every row takes")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="also write the table to this file")
    add_oracle_arguments(p)
    small = p.add_argument_group("smaller problems (tests)")
    for name in ("--mle-epochs", "--d-pretrain-rounds", "--eval-samples"):
        small.add_argument(name, type=int, default=None)
    args = p.parse_args(argv)
    if args.updates < 1 or args.rounds < 1 or args.threads < 1:
        print("error: --updates, --rounds and --threads must be >= 1", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    pdir = Path(args.pretrain)
    try:
        oracle = oracle_from_args(args)
        base = with_options(
            train_preset(args.preset, args.seed, vocab_size=oracle.vocab_size, seq_len=oracle.seq_len),
            mle_epochs=args.mle_epochs, d_pretrain_rounds=args.d_pretrain_rounds, eval_samples=args.eval_samples,
        )  # fmt: skip
        for row in args.rows:
            algo_run(row, base)
        pre = run_pretraining(base.pretrain, pdir, torch.device("cpu"), OracleTask(oracle), resume=pdir.exists())
    except ValueError as exc:  # a bad row or oracle, or a folder of another pre-training (RunFolderError)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    times: dict[str, dict[str, list[float]]] = {row: {} for row in args.rows}
    with tempfile.TemporaryDirectory() as work:
        for r in range(args.rounds):
            for row in args.rows:
                parts = time_row(row, base, pre, args.updates, Path(work))
                for key, values in parts.items():
                    times[row].setdefault(key, []).extend(values)
                print(f"round {r + 1} {row}: {statistics.median(parts['total']):.2f} s/update", flush=True)
    ref = statistics.median(times["reinforce"]["total"]) if "reinforce" in times else None
    lines = [
        f"# One adversarial update per row: preset {args.preset}, pre-training {pdir.name} (seed {args.seed}), "
        f"{args.threads} thread(s), {args.rounds} rounds x {args.updates} updates (medians, seconds)",
        f"# {torch.__version__}, {torch.get_num_threads()} threads",
        "",
        "| row | collect (sampling + reward) | update | D retraining | update total | sequences/s | × REINFORCE |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in args.rows:
        t = {k: statistics.median(v) for k, v in times[row].items()}
        seqs = algo_run(row, base).agent.sequences_per_update
        ratio = f"{t['total'] / ref:.2f}" if ref else "–"
        lines.append(
            f"| {row_label(row)} | {t['collect']:.3f} | {t['update']:.3f} | {t['d']:.3f} | {t['total']:.3f} | "
            f"{seqs / t['total']:.1f} | {ratio} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
