#!/usr/bin/env python
"""Train SeqGAN's generator with a policy-gradient agent on the paper's oracle benchmark.

    python scripts/train_agent.py --algo reinforce              # preset 'auto': paper on CUDA, cpu on a CPU
    python scripts/train_agent.py --preset paper --device cuda  # the reference hyperparameters exactly
    python scripts/train_agent.py --out runs/x --resume         # continue a killed run
    python scripts/train_agent.py --algo ppo                    # SB3 PPO from the same MLE checkpoint (sb3 extra)

Pipeline: pre-training (MLE, then D; reused if the run folder already has it), then adversarial
iterations (sample 64 sequences, Q by Monte-Carlo rollouts scored by D, one REINFORCE update, retrain D),
with NLL-oracle and NLL-test every few updates. --algo ppo replaces the REINFORCE update by one SB3 PPO
iteration on the batched env (64 sequences, reward mode q with gamma 0), same D retraining and evaluation.
Writes config.json, pretrain/, metrics.csv (+ TensorBoard events when tensorboard is installed),
adversarial_checkpoint.pt, generator_final.pt, summary.json and curves.png to the run folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from seqgan_rl.config import BASELINES, REWARDS, resolve_preset, train_preset
from seqgan_rl.data.text import TextDataset, load_text_dataset
from seqgan_rl.models.oracle import OracleLSTM
from seqgan_rl.training.adversarial import CHECKPOINT, run_training
from seqgan_rl.training.text_training import run_text_training, text_preset
from seqgan_rl.utils import get_device, seed_everything


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--algo", default="reinforce", choices=["reinforce", "ppo"], help="policy-gradient agent (ppo: the sb3 extra)"
    )
    p.add_argument(
        "--reward-mode", choices=["q", "shaped", "terminal"], default=None,
        help="--algo ppo: q (SeqGAN's Q, gamma 0; default) or shaped/terminal (gamma 1)",
    )  # fmt: skip
    p.add_argument("--preset", default="auto", choices=["auto", "paper", "cpu"], help="hyperparameter preset")
    p.add_argument("--iterations", type=int, default=None, help="generator updates (preset: paper 200, cpu 50)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--out", default=None, help="run folder (default runs/<algo>-<preset>-seed<seed>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoints")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--reward", choices=REWARDS, default="mc", help="mc: SeqGAN's Q; constant: the control")
    p.add_argument("--num-rollouts", type=int, default=None, help="N rollouts per Q (default 16)")
    p.add_argument("--baseline", choices=BASELINES, default=None, help="REINFORCE baseline (paper: none)")
    p.add_argument("--eval-every", type=int, default=None, help="evaluate every N updates (default 5)")
    p.add_argument("--mle-epochs", type=int, default=None, help="override the preset's MLE epochs")
    p.add_argument("--d-pretrain-rounds", type=int, default=None, help="override the preset's D pre-training rounds")
    p.add_argument("--pretrain-dir", default=None, help="share a pre-training folder between runs (controls)")
    p.add_argument("--oracle-file", default=None, help=".npz of oracle parameters (default: the paper's)")
    p.add_argument("--eval-samples", type=int, default=None, help="generator samples for NLL-oracle (9,984)")
    p.add_argument(
        "--dataset",
        default=None,
        help="real text instead of the oracle: 'coco' (built in) or a UTF-8 file, one sentence per line",
    )
    p.add_argument("--test-file", default=None, help="with --dataset PATH: the test sentences (default: hold out 10%%)")
    p.add_argument("--bleu-samples", type=int, default=None, help="with --dataset: sentences sampled for BLEU (1,000)")
    return p.parse_args(argv)


def build_config(args: argparse.Namespace, device: torch.device, oracle: OracleLSTM):
    """Preset + overrides, validated before any work starts (raises ValueError with the fix)."""
    preset = resolve_preset(args.preset, device.type)
    cfg = train_preset(preset, seed=args.seed)
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    if args.reward == "constant" and args.num_rollouts is not None:
        raise ValueError("--num-rollouts only applies to --reward mc (the constant control has no rollouts)")
    if args.resume and args.out is None:
        raise ValueError("--resume needs --out: the run folder to continue")
    if args.algo == "ppo" and (args.reward != "mc" or args.baseline is not None):
        raise ValueError("--algo ppo trains on SeqGAN's reward with a learned critic: no --reward constant/--baseline")
    if args.algo != "ppo" and args.reward_mode is not None:
        raise ValueError("--reward-mode applies to --algo ppo (REINFORCE consumes SeqGAN's Q)")
    if args.resume and not Path(args.out).is_dir():
        raise ValueError(f"--resume: {args.out} does not exist, nothing to resume (drop --resume to start it)")
    pre = cfg.pretrain
    g = dataclasses.replace(pre.generator, vocab_size=oracle.vocab_size, seq_len=oracle.seq_len)
    d = dataclasses.replace(pre.discriminator, vocab_size=oracle.vocab_size, seq_len=oracle.seq_len)
    mle = pre.mle if args.mle_epochs is None else dataclasses.replace(pre.mle, epochs=args.mle_epochs)
    d_pre = pre.d_pretrain
    if args.d_pretrain_rounds is not None:
        d_pre = dataclasses.replace(d_pre, rounds=args.d_pretrain_rounds)
    data = pre.data if args.eval_samples is None else dataclasses.replace(pre.data, num_eval_samples=args.eval_samples)
    pre = dataclasses.replace(pre, generator=g, discriminator=d, mle=mle, d_pretrain=d_pre, data=data)
    adv = cfg.adversarial
    changes = {"reward": args.reward}
    for key, value in (
        ("iterations", args.iterations),
        ("num_rollouts", args.num_rollouts),
        ("eval_every", args.eval_every),
    ):
        if value is not None:
            changes[key] = value
    adv = dataclasses.replace(adv, **changes)
    agent = cfg.agent if args.baseline is None else dataclasses.replace(cfg.agent, baseline=args.baseline)
    return preset, dataclasses.replace(cfg, pretrain=pre, adversarial=adv, agent=agent)


def ppo_run_kwargs(args: argparse.Namespace) -> dict:
    """``run_training``'s arguments for ``--algo ppo`` (raises ValueError naming the extra if SB3 is missing)."""
    try:
        from seqgan_rl.agents.sb3_ppo import PPOConfig, PPOTrainer
    except ImportError as exc:
        raise ValueError(str(exc)) from exc
    ppo = PPOConfig(reward_mode=args.reward_mode or "q")
    return {
        "trainer_factory": functools.partial(PPOTrainer, ppo_config=ppo),
        "extra_config": {"algo": "ppo", "ppo": dataclasses.asdict(ppo)},
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.dataset is not None:
        return main_text(args)
    try:
        if args.test_file is not None or args.bleu_samples is not None:
            raise ValueError("--test-file and --bleu-samples need --dataset")
        device = get_device(args.device)
        oracle = OracleLSTM.from_npz(args.oracle_file) if args.oracle_file else OracleLSTM.paper()
        preset, config = build_config(args, device, oracle)
        ppo_kwargs = ppo_run_kwargs(args) if args.algo == "ppo" else {}
        out = Path(args.out or f"runs/{args.algo}-{preset}-seed{args.seed}")
        if not args.resume and (out / CHECKPOINT).exists():
            raise ValueError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    print(
        f"SeqGAN {args.algo}: preset={preset} reward={config.adversarial.reward} device={device} "
        f"threads={torch.get_num_threads()} iterations={config.adversarial.iterations} out={out}"
    )
    start = time.perf_counter()
    try:
        result = run_training(
            config, out, device, oracle=oracle, resume=args.resume, pretrain_dir=args.pretrain_dir, progress=tqdm,
            **ppo_kwargs,
        )  # fmt: skip
    except (FileExistsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    s = result.summary
    mle, best, final = s["mle"], s["best"], s["final"]
    print(f"\ndone in {time.perf_counter() - start:.1f} s (this invocation). Results ({out}):")
    print(f"  {'':28s} {'NLL-oracle':>10s} {'NLL-test':>9s}")
    for label, m in (
        ("after MLE", mle),
        (f"best (update {best['iteration']})", best),
        (f"final (update {final['iteration']})", final),
    ):
        print(f"  {label:28s} {m['eval/nll_oracle']:10.3f} {m['eval/nll_test']:9.3f}")
    print("  paper: MLE 9.038, SeqGAN 8.736; oracle floor 5.75. Lower NLL-test = more diverse (covers the data).")
    return 0


def build_text_config(args: argparse.Namespace, dataset: TextDataset):
    """The ``text`` preset for ``dataset`` + overrides, validated before any work starts."""
    if args.algo != "reinforce" or getattr(args, "reward_mode", None) is not None:
        raise ValueError(f"--dataset runs use --algo reinforce without --reward-mode (got --algo {args.algo})")
    if args.preset not in ("auto", "text"):
        raise ValueError(f"--dataset runs use the 'text' preset, not --preset {args.preset}")
    for flag, value in (("--oracle-file", args.oracle_file), ("--pretrain-dir", args.pretrain_dir),
                        ("--eval-samples", args.eval_samples)):  # fmt: skip
        if value is not None:
            raise ValueError(f"{flag} does not apply to --dataset runs")
    if args.reward == "constant" and args.num_rollouts is not None:
        raise ValueError("--num-rollouts only applies to --reward mc (the constant control has no rollouts)")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    if args.resume and (args.out is None or not Path(args.out).is_dir()):
        raise ValueError("--resume needs --out: an existing run folder to continue")
    cfg = text_preset(dataset.vocab, dataset.seq_len, seed=args.seed, bleu_samples=args.bleu_samples or 1000)
    pre = cfg.pretrain
    if args.mle_epochs is not None:
        pre = dataclasses.replace(pre, mle=dataclasses.replace(pre.mle, epochs=args.mle_epochs))
    if args.d_pretrain_rounds is not None:
        pre = dataclasses.replace(pre, d_pretrain=dataclasses.replace(pre.d_pretrain, rounds=args.d_pretrain_rounds))
    if args.bleu_samples is not None and args.bleu_samples < 2:
        raise ValueError(f"--bleu-samples must be >= 2 (Self-BLEU needs two sentences), got {args.bleu_samples}")
    changes = {"reward": args.reward}
    for key, value in (("iterations", args.iterations), ("num_rollouts", args.num_rollouts),
                       ("eval_every", args.eval_every)):  # fmt: skip
        if value is not None:
            changes[key] = value
    adv = dataclasses.replace(cfg.adversarial, **changes)
    agent = cfg.agent if args.baseline is None else dataclasses.replace(cfg.agent, baseline=args.baseline)
    return dataclasses.replace(cfg, pretrain=pre, adversarial=adv, agent=agent)


def main_text(args: argparse.Namespace) -> int:
    """``--dataset``: SeqGAN on real text, scored by BLEU, Self-BLEU and NLL-test."""
    try:
        device = get_device(args.device)
        dataset = load_text_dataset(args.dataset, args.test_file)
        config = build_text_config(args, dataset)
        out = Path(args.out or f"runs/text-{dataset.name}-seed{args.seed}")
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    print(
        f"SeqGAN on text: dataset={dataset.name} ({dataset.train.shape[0]} train / {len(dataset.test_sentences)} "
        f"test sentences, V={len(dataset.vocab)}, T={dataset.seq_len}) reward={config.adversarial.reward} "
        f"device={device} threads={torch.get_num_threads()} iterations={config.adversarial.iterations} out={out}"
    )
    start = time.perf_counter()
    try:
        result = run_text_training(config, dataset, out, device, resume=args.resume, progress=tqdm)
    except (FileExistsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    s = result.summary
    keys = ["eval/bleu2", "eval/bleu3", "eval/bleu4", "eval/bleu5", "eval/self_bleu2", "eval/self_bleu3",
            "eval/self_bleu4", "eval/nll_test"]  # fmt: skip
    print(f"\ndone in {time.perf_counter() - start:.1f} s (this invocation). Results ({out}):")
    print("  " + " " * 24 + "".join(f"{k.split('/')[1]:>11s}" for k in keys))
    for label, m in (("after MLE", s["mle"]), (f"final (update {s['final']['iteration']})", s["final"])):
        print(f"  {label:24s}" + "".join(f"{m[k]:11.3f}" for k in keys))
    print("  Texygen (COCO): MLE BLEU-2/3 0.731/0.497, SeqGAN 0.745/0.498. Sample: python scripts/sample.py "
          f"{out / 'generator_final.pt'} -n 10")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
