#!/usr/bin/env python
"""Our loop's CLI and TRL's GRPOTrainer on the same tiny G and D: updates per second, side by side.

The same on both sides: COCO captions with the project's word vocabulary (to TRL, a Hugging Face ``WordLevel``
tokenizer with the same ids), one GPT-2 of 2 x 64 (fine-tuned 1 epoch by our MLE, exported with
``save_pretrained``), the light CNN D, 64 sequences per update in 8 groups of 8, 4 Adam passes over each batch with
the clipped ratio and a KL of 0.04 to the starting model, D retrained after every update (ours: 50 steps of 64 on
1,600 fresh samples and as many real sentences; TRL's callback: up to 50 steps on the last 1,600 completions).
Different by design: ours scores every token with SeqGAN's MC Q (N rollouts per prefix), TRL one D(Y) per sequence.

    python benchmarks/bench_trl.py --threads 1          # alone on the machine (a few minutes)

An update = one batch of 64 new sequences and its 4 passes (TRL counts 4 optimizer steps); timed from the end of
the first update to the end of the last but one (our last update also runs the final evaluation).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def word_tokenizer(vocab):
    """A ``transformers`` tokenizer whose ids are ``vocab``'s (space-separated words; ``<unk>`` for the rest)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(vocab=vocab.stoi, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )


def ours(g_dir: Path, out: Path, updates: int, rollouts: int, threads: int, seed: int) -> list[float]:
    """Seconds per update of ``train_agent.py --algo grpo`` from ``g_dir`` (its metrics' ``time/update_s``)."""
    cmd = [
        sys.executable, str(ROOT / "scripts" / "train_agent.py"), "--dataset", "coco", "--generator-from", str(g_dir),
        "--algo", "grpo", "--mle-epochs", "1", "--d-pretrain-rounds", "1", "--iterations", str(updates),
        "--eval-every", str(updates), "--num-rollouts", str(rollouts), "--threads", str(threads), "--seed", str(seed),
        "--out", str(out),
    ]  # fmt: skip
    print("$", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with (out / "metrics.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["time/update_s"]]
    return [float(r["time/update_s"]) for r in rows][1:-1]  # the last one includes the final evaluation


def trl_grpo(g_dir: Path, out: Path, real_texts: list[str], seq_len: int, updates: int, seed: int) -> list[float]:
    """Seconds per update (64 new completions, 4 optimizer steps) of TRL's GRPOTrainer from ``g_dir``."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    from seqgan_rl.config import DiscriminatorConfig
    from seqgan_rl.integrations.trl import DiscriminatorCallback, DiscriminatorReward
    from seqgan_rl.models import Discriminator

    tokenizer = AutoTokenizer.from_pretrained(g_dir)
    torch.manual_seed(seed)
    d = Discriminator(DiscriminatorConfig.light(len(tokenizer), seq_len))
    reward = DiscriminatorReward.from_tokenizer(d, tokenizer, keep=1600)
    retrain = DiscriminatorCallback(reward, reward.encode_texts(real_texts, tokenizer), every=4, lr=3e-4, seed=seed)
    ends: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step % 4 == 0:
                ends.append(time.perf_counter())

    args = GRPOConfig(
        output_dir=str(out), per_device_train_batch_size=64, num_generations=8, max_completion_length=seq_len,
        num_iterations=4, beta=0.04, epsilon=0.2, learning_rate=0.01, max_grad_norm=5.0, max_steps=4 * updates,
        temperature=1.0, top_k=0, logging_steps=4, save_strategy="no", report_to="none", use_cpu=True, seed=seed,
        disable_tqdm=True,
    )  # fmt: skip
    trainer = GRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(g_dir), reward_funcs=[reward], args=args,
        train_dataset=Dataset.from_dict({"prompt": [tokenizer.bos_token] * (8 * updates)}),
        processing_class=tokenizer, callbacks=[retrain, Clock()],
    )  # fmt: skip
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    return [b - a for a, b in zip(ends[:-2], ends[1:-1], strict=True)]  # updates 2 .. U - 1, as ours


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--updates", type=int, default=8, help="updates per side (the first and last are not timed)")
    p.add_argument("--rollouts", type=int, nargs="+", default=[16, 4], help="our loop's N (MC rollouts per prefix)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=int, default=64, help="G's width (2 layers)")
    args = p.parse_args(argv)
    if args.updates < 3:
        p.error("--updates must be >= 3 (the first and the last are not timed)")
    torch.set_num_threads(args.threads)
    from transformers import GPT2Config, GPT2LMHeadModel

    from seqgan_rl.data.text import load_text_dataset
    from seqgan_rl.training.run_folder import load_generator

    data = load_text_dataset("coco")
    vocab, seq_len = data.vocab, data.seq_len
    tokenizer = word_tokenizer(vocab)
    print(f"torch {torch.__version__}, torch.get_num_threads() = {torch.get_num_threads()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        torch.manual_seed(args.seed)
        config = GPT2Config(
            vocab_size=len(vocab), n_positions=seq_len + 1, n_embd=args.width, n_layer=2, n_head=4,
            bos_token_id=vocab.bos_id, eos_token_id=vocab.eos_id, pad_token_id=vocab.pad_id,
        )  # fmt: skip
        GPT2LMHeadModel(config).save_pretrained(tmp / "g")
        tokenizer.save_pretrained(tmp / "g")
        for n in args.rollouts:
            times = ours(tmp / "g", tmp / f"ours-n{n}", args.updates, n, args.threads, args.seed)
            rows.append((f"ours: train_agent.py --algo grpo, MC Q with N {n}", times))
        # TRL starts from the generator our run trained by MLE (the same G as our adversarial phase's start)
        g_mle, _ = load_generator(tmp / f"ours-n{args.rollouts[0]}" / "pretrain" / "generator_mle.pt")
        g_mle.save_pretrained(tmp / "g-mle")
        tokenizer.save_pretrained(tmp / "g-mle")
        real = [" ".join(s) for s in data.train_sentences]
        times = trl_grpo(tmp / "g-mle", tmp / "trl", real, seq_len, args.updates, args.seed)
        rows.append(("TRL GRPOTrainer + DiscriminatorReward/Callback, D(Y) per sequence", times))
    params = sum(p.numel() for p in GPT2LMHeadModel(config).parameters())
    print(f"G: GPT-2 2 x {args.width} ({params / 1e6:.2f}M parameters), V {len(vocab)}, T {seq_len}; D: light CNN")
    print(f"{'':72s} {'s/update (median)':>18s} {'updates/s':>10s} {'timed':>6s}")
    base = None
    for name, times in rows:
        rate = len(times) / sum(times)
        base = base or rate
        print(
            f"{name:72s} {statistics.median(times):18.2f} {rate:10.3f} {len(times):6d}  ({rate / base:.2f}x the first)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
