#!/usr/bin/env python
"""Train SeqGAN's generator with a policy-gradient agent: on the paper's oracle benchmark, or on real text.

    python scripts/train_agent.py --algo reinforce              # preset 'auto': paper on CUDA, cpu on a CPU
    python scripts/train_agent.py --preset paper --device cuda  # the reference hyperparameters exactly
    python scripts/train_agent.py --preset strong               # a strong generator: dropout, early-stopped MLE
    python scripts/train_agent.py --out runs/x --resume         # continue a killed run
    python scripts/train_agent.py --algo ppo                    # SB3 PPO from the same MLE checkpoint (sb3 extra)
    python scripts/train_agent.py --algo a2c                    # SB3 A2C, likewise
    python scripts/train_agent.py --dataset coco                # real text: COCO captions, scored by BLEU
    python scripts/train_agent.py --oracle random:0 --seq-len 40  # the length-40 benchmark (LeakGAN/RankGAN)
    torchrun --nproc_per_node 2 scripts/train_agent.py --threads 1  # one run, data-parallel over 2 processes

Pipeline: pre-training (MLE, then D; reused if the run folder already has it), then adversarial
iterations (sample 64 sequences, Q by Monte-Carlo rollouts scored by D, one update of the agent, retrain D),
evaluated every few updates (NLL-oracle and NLL-test; BLEU, Self-BLEU and NLL-test for text). --algo ppo
replaces the REINFORCE update by one SB3 PPO iteration on the batched env (64 sequences, reward mode q with
gamma 0); --algo a2c by one SB3 A2C update on the same rollouts. Writes config.json, pretrain/, metrics.csv
(+ TensorBoard events when tensorboard is installed), adversarial_checkpoint.pt, generator_final.pt,
summary.json and curves.png to the run folder.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from seqgan_rl import distributed
from seqgan_rl.agents import AGENTS
from seqgan_rl.cli import SEED, WEIGHT, Bars, Parser, check_fits, count, resume_hint, threads
from seqgan_rl.config import (
    BASELINES,
    GAMMA_FOR_MODE,
    OPTIMAL_REWARDS,
    REWARDS,
    ROLLOUT_REWARDS,
    SB3_ALGOS,
    TrainConfig,
)
from seqgan_rl.data.subword import check_same_tokenizer
from seqgan_rl.data.text import load_text_dataset
from seqgan_rl.models.transformer_discriminator import check_pretrained_discriminator
from seqgan_rl.presets import (
    MODEL_OPTIONS,
    PRESETS,
    add_model_arguments,
    expected_results,
    resolve_preset,
    train_preset,
    with_discriminator,
    with_options,
)
from seqgan_rl.training.pipeline import run_training
from seqgan_rl.training.pretrain import CHECKPOINT as PRETRAIN_CHECKPOINT
from seqgan_rl.training.pretrain import FINAL as PRETRAINED
from seqgan_rl.training.tasks import OracleTask, Task, TextTask, add_oracle_arguments, oracle_from_args
from seqgan_rl.training.tracking import check_report_to
from seqgan_rl.training.trainer import CHECKPOINT
from seqgan_rl.utils import NonFiniteError, get_device, keep_freed_memory, seed_everything


def build_parser() -> Parser:
    """Every option of this script (the tests try each with bad values)."""
    p = Parser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--algo", default="reinforce", choices=list(AGENTS), help="policy-gradient agent (ppo, a2c: the sb3 extra)"
    )
    p.add_argument(
        "--reward-mode", choices=list(GAMMA_FOR_MODE), default=None,
        help="--algo ppo/a2c: q (SeqGAN's Q, gamma 0; default) or shaped/terminal (gamma 1)",
    )  # fmt: skip
    p.add_argument("--preset", default="auto", choices=["auto", *PRESETS], help="hyperparameter preset")
    p.add_argument("--iterations", type=count(0), default=None, help="generator updates (preset: paper 200, cpu 50)")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--out", default=None, help="run folder (default runs/<algo>-<preset>-seed<seed>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoints")
    p.add_argument("--force", action="store_true", help="write into a non-empty --out that holds no run of this kind")
    p.add_argument("--threads", type=threads(), default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument(
        "--report-to", nargs="+", default=None, metavar="TRACKER",
        help="also send metrics and config to: tensorboard, wandb, trackio, or none (default: TensorBoard events "
        "of the adversarial phase when tensorboard is installed)",
    )  # fmt: skip
    p.add_argument(
        "--reward", choices=REWARDS, default="mc",
        help="mc: SeqGAN's Q; constant: the control; maligan/maligan_d: MaliGAN's sequence weight (odds/D); "
        "rankgan: MC Q of RankGAN's ranker; optimal / optimal_log: MC Q of the Bayes-optimal D* / of log D* "
        "(diagnostics with oracle access)",
    )  # fmt: skip
    p.add_argument("--num-rollouts", type=count(), default=None, help="N rollouts per Q (default 16)")
    p.add_argument(
        "--real-data",
        choices=["train", "oracle"],
        default=None,
        help="D's real class when retrained: the training sequences (default), or fresh oracle samples (a "
        "diagnostic with oracle access; the oracle benchmark only)",
    )
    p.add_argument(
        "--real-pool", type=count(), default=None,
        help="with --real-data oracle: draw a pool of N oracle samples once (default: fresh ones every round)",
    )  # fmt: skip
    p.add_argument("--baseline", choices=BASELINES, default=None, help="REINFORCE baseline (paper: none)")
    p.add_argument("--kl-coef", type=WEIGHT, default=None, help="--algo reinforce_kl, grpo: the KL weight")
    p.add_argument("--eval-every", type=count(), default=None, help="evaluate every N updates (default 5)")
    p.add_argument("--mle-epochs", type=count(), default=None, help="override the preset's MLE epochs")
    p.add_argument(
        "--d-pretrain-rounds", type=count(), default=None, help="override the preset's D pre-training rounds"
    )
    p.add_argument("--pretrain-dir", default=None, help="share a pre-training folder between runs (controls)")
    add_oracle_arguments(p)
    add_model_arguments(p)
    p.add_argument(
        "--eval-samples", "--bleu-samples", dest="eval_samples", type=count(), default=None,
        help="generator samples per evaluation (NLL-oracle: 9,984; BLEU: 1,000)",
    )  # fmt: skip
    p.add_argument(
        "--dataset",
        default=None,
        help="real text instead of the oracle: 'coco' (built in), a UTF-8 file of one sentence per line, a JSON "
        "lines / CSV / parquet file with --text-column, or hf:ID, a hub dataset with --text-column (the hf extra)",
    )
    p.add_argument("--test-file", default=None, help="with --dataset PATH: the test sentences (default: hold out 10%%)")
    p.add_argument(
        "--text-column", default=None, help="with a .jsonl/.json/.csv/.parquet --dataset: the column of the sentences"
    )
    p.add_argument(
        "--discriminator",
        default=None,
        choices=["paper", "light", "transformer"],
        help="D: the paper's or the light CNN, or a Hugging Face sequence classifier (GPT-2-style 1 x 64; the hf "
        "extra); default: the preset's",
    )
    p.add_argument(
        "--discriminator-from",
        default=None,
        metavar="PATH",
        help="D: a transformers AutoModelForSequenceClassification (2 labels) saved with save_pretrained; a "
        "tokenizer saved beside it must be the run's --tokenizer",
    )
    p.add_argument(
        "--tokenizer", default=None, metavar="bpe:SIZE|PATH",
        help="with --dataset: a byte-pair tokenizer of SIZE ids trained on the training sentences, or a tokenizer's "
        "save_pretrained folder (e.g. the model's of --generator-from); default: the word vocabulary (BLEU as Texygen)",
    )  # fmt: skip
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def make_task(args: argparse.Namespace) -> Task:
    """The data: real text with ``--dataset``, else the oracle (``--oracle``, default the paper's)."""
    if args.dataset is None:
        for flag, value in (
            ("--test-file", args.test_file),
            ("--text-column", args.text_column),
            ("--tokenizer", args.tokenizer),
        ):
            if value is not None:
                raise ValueError(f"{flag} needs --dataset")
        return OracleTask(oracle_from_args(args))
    for flag, value in (("--oracle", args.oracle), ("--seq-len", args.seq_len), ("--vocab-size", args.vocab_size)):
        if value is not None:
            raise ValueError(f"{flag} does not apply to --dataset runs (the sentences are the data)")
    return TextTask(
        load_text_dataset(args.dataset, args.test_file, text_column=args.text_column, tokenizer=args.tokenizer)
    )


def build_config(args: argparse.Namespace, task: Task, device: torch.device) -> TrainConfig:
    """The preset for this data and agent, with the options' overrides, validated before any work starts
    (raises ValueError with the fix)."""
    if args.reward not in ROLLOUT_REWARDS and args.num_rollouts is not None:
        raise ValueError(
            f"--num-rollouts only applies to --reward {'/'.join(ROLLOUT_REWARDS)} (--reward {args.reward} has no "
            "rollouts)"
        )
    if args.real_data == "oracle" and isinstance(task, TextTask):
        raise ValueError("--real-data oracle draws D's real data from the oracle: not for --dataset runs")
    if args.real_pool is not None and args.real_data != "oracle":
        raise ValueError("--real-pool is the size of --real-data oracle's pool: add --real-data oracle")
    if args.reward in OPTIMAL_REWARDS and isinstance(task, TextTask):
        raise ValueError(
            f"--reward {args.reward} is D* of the oracle benchmark (oracle access): not for --dataset runs"
        )
    if args.resume and args.out is None:
        raise ValueError("--resume needs --out: the run folder to continue")
    if args.resume and not distributed.broadcast_object(Path(args.out).is_dir()):  # as rank 0 sees it
        raise ValueError(f"--resume: {args.out} does not exist, nothing to resume (drop --resume to start it)")
    if args.resume and args.force:
        raise ValueError("--force starts a run in a folder that holds none: it does not go with --resume")
    sb3 = args.algo in SB3_ALGOS
    if sb3 and (args.reward != "mc" or args.baseline is not None):
        raise ValueError(
            f"--algo {args.algo} trains on SeqGAN's reward with a learned critic: no --reward constant/--baseline"
        )
    if sb3 and distributed.launched():
        raise ValueError(
            f"--algo {args.algo} runs in one process (SB3 has no data-parallel {args.algo.upper()}): start it without "
            "torchrun, or use --algo reinforce under torchrun"
        )
    if args.kl_coef is not None and args.algo not in ("reinforce_kl", "grpo"):
        raise ValueError("--kl-coef is the KL weight of --algo reinforce_kl or grpo")
    if not sb3 and args.reward_mode is not None:
        raise ValueError("--reward-mode applies to --algo ppo and a2c (REINFORCE consumes SeqGAN's Q)")
    preset = resolve_preset(args.preset, device.type, text=isinstance(task, TextTask))
    cfg = with_options(
        train_preset(preset, seed=args.seed, algo=args.algo, **task.dims()),
        **{k: getattr(args, k) for k in ("mle_epochs", "d_pretrain_rounds", "eval_samples", "iterations",
                                         "num_rollouts", "eval_every", "reward", "baseline", "reward_mode",
                                         "kl_coef", "real_data", "real_pool", *MODEL_OPTIONS)},
    )  # fmt: skip
    if args.discriminator_from is not None:
        if args.discriminator not in (None, "transformer"):
            raise ValueError(
                f"--discriminator-from loads a transformer: it does not go with --discriminator {args.discriminator}"
            )
        check_same_tokenizer(args.discriminator_from, task.vocab)
        check_pretrained_discriminator(args.discriminator_from, task.dims()["vocab_size"])
    cfg = with_discriminator(cfg, args.discriminator, args.discriminator_from)
    task.check(cfg.pretrain)
    check_fits(cfg, device.type)  # before any work: what cannot fit is refused by the option to lower
    return cfg


def display_name(key: str) -> str:
    """``eval/nll_oracle`` -> ``NLL-oracle``, ``eval/self_bleu2`` -> ``Self-BLEU-2``."""
    name = key.split("/", 1)[1]
    for short, full in (("self_bleu", "Self-BLEU-"), ("bleu", "BLEU-"), ("nll_", "NLL-")):
        if name.startswith(short):
            return full + name[len(short) :]
    return name


def error(message: str) -> None:
    """A user's mistake, on stderr: once (by rank 0) under torchrun, where every rank stops with it."""
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
    try:
        device = distributed.init_from_env(get_device(args.device))  # under torchrun: this rank's device
        distributed.quiet_other_ranks()
        task = make_task(args)
        config = build_config(args, task, device)
        report_to = None if args.report_to is None else check_report_to(args.report_to)
        default = f"text-{task.name}" if isinstance(task, TextTask) else f"{args.algo}-{config.preset}"
        if isinstance(task, OracleTask) and task.tag:
            default += f"-{task.tag}"
        out = Path(args.out or f"runs/{default}-seed{args.seed}")
    except (ValueError, FileNotFoundError) as exc:
        error(str(exc))
        return 2
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    print(
        f"SeqGAN {args.algo}: {task.describe()} preset={config.preset} reward={config.adversarial.reward} "
        f"device={device} threads={torch.get_num_threads()} iterations={config.adversarial.iterations} out={out}"
    )
    start = time.perf_counter()
    bars = Bars(tqdm)
    try:
        result = run_training(
            config, out, device, task, resume=args.resume, pretrain_dir=args.pretrain_dir,
            progress=bars if distributed.is_main() else None, force=args.force, report_to=report_to,
        )  # fmt: skip
    except NonFiniteError as exc:
        bars.close()
        pdir = Path(args.pretrain_dir) if args.pretrain_dir is not None else out / "pretrain"
        error(f"{exc}. {resume_hint([out / CHECKPOINT, pdir / PRETRAINED, pdir / PRETRAIN_CHECKPOINT])}")
        return 1
    except (FileExistsError, FileNotFoundError, ValueError) as exc:
        error(str(exc))
        return 2
    s = result.summary
    keys = result.evaluator.report
    print(f"\ndone in {time.perf_counter() - start:.1f} s (this invocation). Results ({out}):")
    expected = expected_results(config, isinstance(task, OracleTask) and task.paper)
    width = 16 if expected is not None else 12
    print("  " + " " * 28 + "".join(f"{display_name(k):>{width}s}" for k in keys))
    rows = [("after MLE", s["mle"])]
    if s["best"] is not None:
        rows.append((f"best (update {s['best']['iteration']})", s["best"]))
    rows.append((f"final (update {s['final']['iteration']})", s["final"]))
    for label, m in rows:
        print(f"  {label:28s}" + "".join(f"{m[k]:{width}.3f}" for k in keys))
    if expected is not None:
        print(f"  expected (mean ± std of {expected['source']}):")
        for label, key in (("after MLE", "mle"), ("best", "best"), ("final", "final")):
            cells = (f"{expected[key][k][0]:.3f} ± {expected[key][k][1]:.3f}" for k in keys)
            print(f"  {label:28s}" + "".join(f"{c:>{width}s}" for c in cells))
        print("  Each seed is a draw: within about two std of the mean is as expected; per-seed numbers match the")
        print("  table only on a machine of its type (docs/reproducing.md).")
    if task.references:
        print(f"  {task.references}")
    if task.vocab is not None:
        print(f"  Sample: python scripts/sample.py {out / 'generator_final.pt'} -n 10")
    return 0


if __name__ == "__main__":
    distributed.exit_process(main())
