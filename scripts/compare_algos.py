#!/usr/bin/env python
"""Compare policy-gradient algorithms on SeqGAN's reward: same oracle, same MLE checkpoint, same budget.

    python scripts/compare_algos.py --seeds 0 1 2 --threads 1 --resume     # cpu preset; reuses finished rows
    python scripts/compare_algos.py --tables-only                          # rebuild tables/plots from results
    python scripts/compare_algos.py --tables-only --out runs/a --merge runs/b   # rows run by two processes
    python scripts/compare_algos.py --oracle random:0 --seq-len 40 --algos mle reinforce  # the length-40 oracle

Rows (seqgan_rl/training/compare.py, ALGOS): MLE only, the REINFORCE family (paper, baselines, RLOO, KL,
ColdGAN, MaliGAN, RankGAN), GRPO, SB3 PPO and A2C, and REINFORCE with a constant reward; a row may set fields
of its agent (rloo@lr=0.003); every final model is then swept over sampling temperatures. Runs are kept under
--out (default runs/compare-<preset>: pretrain-s<seed>/ shared by the rows of a seed, <row>-s<seed>/ per row,
results.json); the tables and plots go to <out>/tables/<name>* (--results-dir benchmarks/results rewrites the
committed ones). With a validation split (--num-valid) <name>_tuning.md says which setting of each algorithm
is best against MLE + temperature at equal validation NLL (the tuning criterion: no test set):

    python scripts/compare_algos.py --seeds 100 101 --num-valid 500 --algos mle rloo rloo@lr=0.003 --threads 1
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path

import torch

from seqgan_rl.cli import SEED, TEMPERATURE, Parser, check_fits, count, threads
from seqgan_rl.models.oracle import OracleLSTM
from seqgan_rl.presets import MODEL_OPTIONS, add_model_arguments, train_preset, with_options
from seqgan_rl.training.compare import (
    ALGOS,
    PRESET_TEMPERATURES,
    TEMPERATURES,
    matched_rows,
    merge_results,
    parse_row,
    run_comparison,
    write_outputs,
)
from seqgan_rl.training.tasks import OracleTask, add_oracle_arguments, oracle_from_args
from seqgan_rl.training.tracking import check_report_to
from seqgan_rl.utils import NonFiniteError, get_device, keep_freed_memory, seed_everything


def build_parser() -> Parser:
    """Every option of this script (the tests try each with bad values)."""
    p = Parser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--preset", default="cpu", choices=["cpu", "paper", "strong", "transformer"])
    p.add_argument("--seeds", type=SEED, nargs="+", default=[0, 1, 2])
    p.add_argument(
        "--algos", nargs="+", default=None, metavar="ROW",
        help=f"rows (default all): {', '.join(ALGOS)}; a setting of the row's agent after @, e.g. rloo@lr=0.003,\n"
        "or of its adversarial phase: reward, real_data, real_pool, d_kind, d_warmup_rounds, d_lr;\n"
        "with --tables-only: the rows the tables keep (mle among them: the reference)",
    )  # fmt: skip
    p.add_argument("--out", default=None, help="runs folder (default runs/compare-<preset>)")
    p.add_argument(
        "--results-dir", default=None,
        help="where tables and plots go (default <out>/tables; the committed ones: --results-dir benchmarks/results)",
    )  # fmt: skip
    p.add_argument("--name", default=None, help="file name stem of the outputs (default compare_<preset>)")
    p.add_argument("--threads", type=threads(), default=None, help="torch CPU threads (use 1 on a shared machine)")
    p.add_argument(
        "--report-to", nargs="+", default=None, metavar="TRACKER",
        help="also send each run's metrics and config to: tensorboard, wandb, trackio, or none",
    )  # fmt: skip
    p.add_argument("--device", default="cpu")
    p.add_argument("--resume", action="store_true", help="reuse finished rows and continue unfinished runs")
    p.add_argument("--tables-only", action="store_true", help="rebuild tables and plots from <out>/results.json")
    p.add_argument(
        "--merge", nargs="+", default=[], metavar="OUT",
        help="with --tables-only: also the rows of these comparison folders (rows run by other processes)",
    )  # fmt: skip
    p.add_argument(
        "--temperatures", type=TEMPERATURE, nargs="+", default=None,
        help=f"sweep (default {' '.join(map(str, TEMPERATURES))}; strong: 0.45 to 1.2)",
    )  # fmt: skip
    p.add_argument(
        "--sweep-samples",
        type=count(),
        default=4992,
        help="samples per NLL-oracle in the sweeps (half the 9,984: cost)",
    )
    p.add_argument("--iterations", type=count(0), default=None, help="override the preset's generator updates")
    add_oracle_arguments(p)
    p.add_argument("--mle-epochs", type=count(), default=None)
    p.add_argument("--d-pretrain-rounds", type=count(), default=None)
    p.add_argument("--eval-samples", type=count(), default=None)
    p.add_argument("--num-rollouts", type=count(), default=None)
    p.add_argument("--eval-every", type=count(), default=None)
    add_model_arguments(p)
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def build_config(args: argparse.Namespace, oracle: OracleLSTM):
    """The preset with the oracle's sizes and the small overrides (tests use them for tiny runs)."""
    cfg = train_preset(args.preset, seed=args.seeds[0], vocab_size=oracle.vocab_size, seq_len=oracle.seq_len)
    keys = (
        "mle_epochs",
        "d_pretrain_rounds",
        "eval_samples",
        "iterations",
        "num_rollouts",
        "eval_every",
        *MODEL_OPTIONS,
    )
    return with_options(cfg, **{k: getattr(args, k) for k in keys})


def warn_if_the_curve_is_short(records: list[dict]) -> None:
    """Say so when the MLE generator's temperature sweep does not reach a row's NLL-test (its Δ is then
    missing): long sequences move NLL-test further than the default temperatures cool."""
    short = sorted({r["algo"] for r in matched_rows(records) if r["algo"] != "mle" and math.isnan(r["minus_mle_temp"])})
    if short:
        print(
            f"note: the MLE + temperature curve does not reach the NLL-test of {', '.join(short)}: sweep the MLE "
            "row colder, e.g. --resume --algos mle --temperatures 0.6 0.65 0.7 0.75 0.8 0.85 0.9 0.95 1.0 1.1",
            file=sys.stderr,
        )


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # --help (0), or a bad option: argparse printed one line (2)
        return int(exc.code or 0)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    keep_freed_memory()  # 10-20% of an MLE epoch on CPU goes to page faults otherwise
    try:
        oracle = oracle_from_args(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tag, published = OracleTask(oracle).tag, OracleTask(oracle).paper  # "" for the paper's benchmark
    temperatures = args.temperatures or list(PRESET_TEMPERATURES.get(args.preset, TEMPERATURES))
    out = Path(args.out or f"runs/compare-{args.preset}" + (f"-{tag}" if tag else ""))
    name = args.name or f"compare_{args.preset}" + (f"_{tag}" if tag else "")
    results_dir = Path(args.results_dir) if args.results_dir is not None else out / "tables"
    if args.tables_only:
        try:
            records = merge_results([out, *args.merge])
            for row in args.algos or []:
                parse_row(row)
        except (ValueError, FileNotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if args.algos:
            records = [r for r in records if r["algo"] in args.algos]
            if not records:
                print(f"error: no record of {' '.join(args.algos)} in {out} {' '.join(args.merge)}", file=sys.stderr)
                return 2
        for p in write_outputs(records, results_dir, name, published):
            print(f"written: {p}")
        warn_if_the_curve_is_short(records)
        return 0
    try:
        device = get_device(args.device)
        base = build_config(args, oracle)
        check_fits(base, device.type)  # before any work: what cannot fit is refused by the option to lower
        report_to = None if args.report_to is None else check_report_to(args.report_to)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    seed_everything(args.seeds[0])
    start = time.perf_counter()

    def report(r: dict) -> None:
        f = r["final"]
        print(
            f"[{time.perf_counter() - start:7.0f} s] {r['algo']:18s} seed {r['seed']}: final NLL-oracle "
            f"{f['eval/nll_oracle']:.3f} NLL-test {f['eval/nll_test']:.3f} ({r['sequences']} sequences, "
            f"{r['wall_s']:.0f} s)",
            flush=True,
        )

    try:
        records = run_comparison(
            base, args.seeds, out, device, oracle, args.algos or list(ALGOS), temperatures, args.sweep_samples,
            resume=args.resume, on_record=report, report_to=report_to,
        )  # fmt: skip
    except NonFiniteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (FileExistsError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for p in write_outputs(records, results_dir, name, published):
        print(f"written: {p}")
    warn_if_the_curve_is_short(records)
    print((results_dir / f"{name}.md").read_text())
    print((results_dir / f"{name}_frontier.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
