#!/usr/bin/env python
"""Pre-train SeqGAN's generator (MLE) and discriminator on the paper's oracle benchmark (or another oracle).

    python scripts/pretrain.py                       # preset 'auto': paper on CUDA, cpu on a CPU
    python scripts/pretrain.py --preset paper --out runs/pretrain-paper
    python scripts/pretrain.py --preset strong --hidden-dim 256   # a strong generator, another size
    python scripts/pretrain.py --out runs/x --resume # continue a killed run
    python scripts/pretrain.py --oracle random:0 --seq-len 40   # the length-40 benchmark's oracle

Writes to the run folder: config.json, data.pt (train/test oracle samples) with oracle.json, metrics.csv (NLL-oracle and
NLL-test every --eval-every epochs, D loss/accuracy per round), pretrain_checkpoint.pt (atomic, resumable)
and pretrained.pt (final G and D).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from seqgan_rl import distributed
from seqgan_rl.cli import SEED, Bars, Parser, check_fits, count, resume_hint, threads
from seqgan_rl.config import DISCRIMINATOR_PRESETS, DiscriminatorConfig
from seqgan_rl.presets import MODEL_OPTIONS, PRESETS, add_model_arguments, resolve_preset, train_preset, with_options
from seqgan_rl.training.pretrain import CHECKPOINT, FINAL, run_pretraining
from seqgan_rl.training.tasks import OracleTask, add_oracle_arguments, oracle_from_args
from seqgan_rl.training.tracking import check_report_to
from seqgan_rl.utils import NonFiniteError, get_device, keep_freed_memory, seed_everything


def build_parser() -> Parser:
    """Every option of this script (the tests try each with bad values)."""
    p = Parser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--preset", default="auto", choices=["auto", *PRESETS[:-1]], help="hyperparameter preset")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--out", default=None, help="run folder (default runs/pretrain-<preset>-seed<seed>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--force", action="store_true", help="write into a non-empty --out that holds no pre-training")
    p.add_argument("--threads", type=threads(), default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument(
        "--report-to", nargs="+", default=None, metavar="TRACKER",
        help="also send metrics and config to: tensorboard, wandb, trackio, or none (default: TensorBoard events "
        "of the adversarial phase when tensorboard is installed)",
    )  # fmt: skip
    p.add_argument("--mle-epochs", type=count(), default=None, help="override the preset's MLE epochs")
    p.add_argument("--eval-every", type=count(0), default=None, help="evaluate every N MLE epochs (0: the final only)")
    p.add_argument("--d-rounds", type=count(), default=None, help="override the preset's D pre-training rounds")
    p.add_argument("--discriminator", choices=DISCRIMINATOR_PRESETS, default=None, help="override D preset")
    add_oracle_arguments(p)
    add_model_arguments(p)
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def error(message: str) -> None:
    """A user's mistake, on stderr: once (by rank 0) under torchrun."""
    if distributed.is_main():
        print(f"error: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # --help (0), or a bad option: argparse printed one line (2)
        return int(exc.code or 0)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    keep_freed_memory()  # 10-20% of an MLE epoch on CPU goes to page faults otherwise
    return distributed.run_main(lambda: _main(args))


def _main(args: argparse.Namespace) -> int:
    bars = Bars(tqdm)
    try:
        device = distributed.init_from_env(get_device(args.device))  # under torchrun: this rank's device
        distributed.quiet_other_ranks()
        preset = resolve_preset(args.preset, device.type)
        task = OracleTask(oracle_from_args(args))
        options = {"mle_epochs": args.mle_epochs, "mle_eval_every": args.eval_every, "d_pretrain_rounds": args.d_rounds}
        options.update({k: getattr(args, k) for k in MODEL_OPTIONS})
        config = with_options(train_preset(preset, seed=args.seed, **task.dims()), **options).pretrain
        if args.discriminator is not None:
            d = DiscriminatorConfig.preset(args.discriminator, config.generator.vocab_size, config.generator.seq_len)
            config = dataclasses.replace(config, discriminator=d)
        check_fits(config, device.type)  # before any work: what cannot fit is refused by the option to lower
        report_to = None if args.report_to is None else check_report_to(args.report_to)
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        seed_everything(args.seed)
        out = args.out or f"runs/pretrain-{preset}" + (f"-{task.tag}" if task.tag else "") + f"-seed{args.seed}"
        print(
            f"pre-training: {task.describe()} preset={preset} device={device} threads={torch.get_num_threads()} "
            f"out={out}"
        )
        start = time.perf_counter()
        progress = bars if distributed.is_main() else None
        result = run_pretraining(
            config, out, device, task, resume=args.resume, progress=progress, force=args.force, report_to=report_to
        )
    except NonFiniteError as exc:  # raised by run_pretraining only: out is set
        bars.close()
        error(f"{exc}. {resume_hint([Path(out) / FINAL, Path(out) / CHECKPOINT])}")
        return 1
    except (FileExistsError, FileNotFoundError, ValueError) as exc:
        error(str(exc))
        return 2
    m = result.mle_metrics
    print(
        f"done in {time.perf_counter() - start:.1f} s: MLE NLL-oracle {m['eval/nll_oracle']:.3f}, "
        f"NLL-test {m['eval/nll_test']:.3f}"
        + (" (oracle floor 5.75; paper MLE 9.038)" if task.paper else "")
        + f". Outputs in {out}"
    )
    return 0


if __name__ == "__main__":
    distributed.exit_process(main())
