#!/usr/bin/env python
"""The GPU check: one unattended run that proves the CUDA path and measures it, in under 8 minutes on one GPU.

    python benchmarks/gpu_check.py --out "$OUT"                 # on a GPU machine (the device tool's $OUT)
    python benchmarks/gpu_check.py --device cpu --quick --out runs/gpu_check_dry   # the dry run on a CPU

Steps, each timed and written to ``<out>/gpu_check.json`` and ``<out>/gpu_check.md`` as it finishes (a run
cut off by a time limit keeps what it measured):

1. ``tests/test_devices.py``: every device check (sampler, rollouts, Q, envs, REINFORCE, D step, PPO, a tiny
   run and its resume), with the CPU-vs-device agreements.
2. The MC reward of one batch (64 sequences, N 16, V 5000, T 20) with the paper's D and the light D.
3. One MLE epoch at paper sizes (9,984 oracle sequences, batch 64, Adam 0.01).
4. Discriminator steps per second, paper CNN, batch 64.
5. The ``paper`` preset for a few adversarial iterations (each: one G update, then 5 x (9,984 fresh
   negatives, 3 D epochs)), one evaluation and one D pre-training round, and from them the projected time
   of the whole paper run: 120 MLE epochs + 50 D rounds + 200 iterations + every fifth evaluation.
6. The transformer reward batch (``benchmarks/bench_transformer.py``'s, the ``hf`` extra): a GPT-2 of 4 x 128 as G,
   B 64, N 16, T 20, the paper's D: KV-cached rollouts, recomputing every prefix, one ``model.generate()`` per prefix
   length, and the strong LSTM on the same batch (skipped without ``transformers``).

``--quick`` shrinks every size (for the dry run: it checks the script, not the speed).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from seqgan_rl.config import DiscriminatorConfig, DiscriminatorTrainConfig, GeneratorConfig, MLEConfig
from seqgan_rl.envs import mc_q_values
from seqgan_rl.models import Discriminator, Generator, OracleLSTM
from seqgan_rl.presets import train_preset, with_options
from seqgan_rl.training.metrics import evaluate
from seqgan_rl.training.pipeline import run_training
from seqgan_rl.training.pretrain import (
    discriminator_round,
    discriminator_step,
    make_discriminator_optimizer,
    make_generator_optimizer,
    mle_epoch,
)
from seqgan_rl.training.tasks import OracleTask
from seqgan_rl.utils import get_device, make_rng

ROOT = Path(__file__).resolve().parents[1]
PAPER_RUN = {"mle_epochs": 120, "d_rounds": 50, "iterations": 200, "eval_every": 5}


def synced(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def timed(fn: Callable[[], Any], device: torch.device, repeats: int = 1) -> float:
    """Median seconds of ``repeats`` calls after one warm-up call."""
    sync = synced(device)
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


class Report:
    """Results written after every step (JSON for machines, markdown for people)."""

    def __init__(self, out: Path, device: torch.device) -> None:
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
        self.data: dict[str, Any] = {
            "device": str(device), "device_name": name, "torch": torch.__version__,
            "threads": torch.get_num_threads(), "steps": {},
        }  # fmt: skip

    def add(self, step: str, **values: Any) -> None:
        self.data["steps"][step] = values
        print(f"{step}: {json.dumps(values)}", flush=True)
        (self.out / "gpu_check.json").write_text(json.dumps(self.data, indent=2))
        lines = [f"# GPU check: {self.data['device_name']} ({self.data['device']}), torch {self.data['torch']}", ""]
        lines += ["| step | result |", "|---|---|"]
        for name, vals in self.data["steps"].items():
            lines.append(f"| {name} | " + ", ".join(f"{k} {v}" for k, v in vals.items()) + " |")
        (self.out / "gpu_check.md").write_text("\n".join(lines) + "\n")


def device_tests(report: Report, device: torch.device) -> None:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", str(ROOT / "tests" / "test_devices.py")],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    (report.out / "test_devices.log").write_text(proc.stdout + proc.stderr)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "no output"
    cuda_ran = "no CUDA device here" not in proc.stdout if device.type == "cuda" else None  # None: a CPU dry run
    report.add("1. device tests", result=summary, exit_code=proc.returncode, cuda_cases_ran=cuda_ran,
               wall_s=round(time.perf_counter() - t0, 1))  # fmt: skip


def reward_batch(report: Report, device: torch.device, quick: bool) -> None:
    v, t, b, n = (200, 10, 16, 4) if quick else (5000, 20, 64, 16)
    g = Generator(GeneratorConfig(vocab_size=v, seq_len=t)).to(device)
    g.reset_parameters(make_rng(0))
    seqs = g.sample(b, make_rng(1, device))
    for name in ("paper", "light"):
        d = Discriminator(DiscriminatorConfig.preset(name, v, t)).to(device).eval()
        d.reset_parameters(make_rng(2))
        rng = make_rng(3, device)
        s = timed(lambda d=d, rng=rng: mc_q_values(seqs, g, d, n, rng), device, repeats=3)
        report.add(f"2. MC reward batch, {name} D", batch=b, rollouts=n, seconds=round(s, 4),
                   sampled_tokens_per_s=round(b * n * t * (t - 1) / 2 / s))  # fmt: skip


def mle_and_d(report: Report, device: torch.device, quick: bool) -> dict[str, float]:
    oracle = OracleLSTM.paper(device) if not quick else OracleLSTM.random(200, 10, seed=0, device=device)
    num = 640 if quick else 9984
    train = oracle.sample(num, make_rng(0, device)).cpu()
    g = Generator(GeneratorConfig(vocab_size=oracle.vocab_size, seq_len=oracle.seq_len)).to(device)
    g.reset_parameters(make_rng(1))
    optim = make_generator_optimizer(g, MLEConfig().lr)
    sync = synced(device)
    t0 = time.perf_counter()
    mle_epoch(g, optim, train, MLEConfig(), make_rng(2, device))
    sync()
    epoch_s = time.perf_counter() - t0
    report.add("3. MLE epoch", sequences=num, seconds=round(epoch_s, 2))

    d = Discriminator(DiscriminatorConfig.paper(oracle.vocab_size, oracle.seq_len)).to(device)
    d.reset_parameters(make_rng(3))
    d_optim = make_discriminator_optimizer(d, DiscriminatorTrainConfig().lr)
    tokens = torch.cat([train[:32], g.sample(32, make_rng(4, device)).cpu()]).to(device)
    labels = torch.cat([torch.ones(32), torch.zeros(32)]).long().to(device)
    steps = 20 if quick else 200
    s = timed(lambda: [discriminator_step(d, d_optim, tokens, labels) for _ in range(steps)], device)
    report.add("4. D steps, paper CNN", batch=64, steps=steps, steps_per_s=round(steps / s, 1))

    round_cfg = DiscriminatorTrainConfig(rounds=1, max_steps_per_round=20 if quick else None)
    t0 = time.perf_counter()
    discriminator_round(d, d_optim, train, g, round_cfg, make_rng(5, device))
    sync()
    round_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    evaluate(g, oracle, train[: num // 4], 64 if quick else 9984, make_rng(6, device))
    sync()
    eval_s = time.perf_counter() - t0
    report.add("5a. D pre-training round and evaluation", d_round_s=round(round_s, 2), evaluation_s=round(eval_s, 2))
    return {"mle_epoch_s": epoch_s, "d_round_s": round_s, "eval_s": eval_s}


def paper_iterations(report: Report, device: torch.device, quick: bool, parts: dict[str, float], out: Path) -> None:
    iterations = 2 if quick else 3
    task_dims = {"vocab_size": 200, "seq_len": 10} if quick else {}
    cfg = train_preset("paper", seed=0, **task_dims)
    cfg = with_options(cfg, mle_epochs=1, d_pretrain_rounds=1, iterations=iterations, eval_every=1000,
                       eval_samples=64 if quick else None)  # fmt: skip
    if quick:  # a capped D schedule: the dry run checks the path, not the time
        capped = DiscriminatorTrainConfig(rounds=1, max_steps_per_round=5)
        cfg = dataclasses.replace(cfg, adversarial=dataclasses.replace(cfg.adversarial, d_train=capped))
    task = OracleTask(OracleLSTM.random(200, 10, seed=0) if quick else None)
    t0 = time.perf_counter()
    result = run_training(cfg, out / "paper_run", device, task, force=True)
    wall = time.perf_counter() - t0
    rows = (out / "paper_run" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    col = header.index("time/update_s")
    per_update = [float(r.split(",")[col]) for r in rows[2:] if r.split(",")[col]]  # rows after the start eval
    iter_s = sorted(per_update)[len(per_update) // 2]
    p = PAPER_RUN
    evals = p["mle_epochs"] // p["eval_every"] + p["iterations"] // p["eval_every"] + 2
    projected = (p["mle_epochs"] * parts["mle_epoch_s"] + p["d_rounds"] * parts["d_round_s"]
                 + p["iterations"] * iter_s + evals * parts["eval_s"])  # fmt: skip
    report.add(
        "5b. paper preset", iterations=iterations, seconds_per_iteration=round(iter_s, 2),
        final_nll_oracle=round(result.summary["final"]["eval/nll_oracle"], 3), wall_s=round(wall, 1),
        projected_paper_run_min=round(projected / 60, 1),
        projection=f"120 x {parts['mle_epoch_s']:.2f} s + 50 x {parts['d_round_s']:.2f} s + 200 x {iter_s:.2f} s "
        f"+ {evals} x {parts['eval_s']:.2f} s",
    )  # fmt: skip


def transformer_batch(report: Report, device: torch.device, quick: bool) -> None:
    try:
        import transformers  # noqa: F401
    except ImportError:
        report.add("6. transformer reward batch", skipped="transformers is not installed (the hf extra)")
        return
    from seqgan_rl.config import TransformerConfig
    from seqgan_rl.models import TransformerGenerator
    from seqgan_rl.presets import STRONG_GENERATOR

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_transformer as bench  # the CPU benchmark's baselines, on the device

    v, t, b, n = (200, 10, 16, 4) if quick else (5000, 20, 64, 16)
    size = {**bench.SIZE, **({"num_layers": 1, "hidden_dim": 32} if quick else {})}
    g = TransformerGenerator.from_config(TransformerConfig(vocab_size=v, seq_len=t, **size)).to(device).eval()
    g.reset_parameters(make_rng(0))
    d = Discriminator(DiscriminatorConfig.paper(v, t)).to(device).eval()
    d.reset_parameters(make_rng(1))
    seqs = g.sample(b, make_rng(2, device))
    cached = timed(lambda: mc_q_values(seqs, g, d, n, make_rng(3, device)), device, repeats=3)
    g.use_cache = False
    recomputed = timed(lambda: mc_q_values(seqs, g, d, n, make_rng(3, device)), device)
    g.use_cache = True
    batched = timed(lambda: bench.generate_q_batched(g, d, seqs, n), device)
    lstm = Generator(GeneratorConfig(vocab_size=v, seq_len=t, **STRONG_GENERATOR)).to(device).eval()
    lstm.reset_parameters(make_rng(0))
    lstm_s = timed(lambda: mc_q_values(seqs, lstm, d, n, make_rng(3, device)), device, repeats=3)
    report.add(
        "6. transformer reward batch", generator=f"gpt2 {size['num_layers']} x {size['hidden_dim']}", batch=b,
        rollouts=n, kv_cached_s=round(cached, 3), recomputed_s=round(recomputed, 3),
        generate_per_prefix_length_s=round(batched, 3), strong_lstm_s=round(lstm_s, 3),
        recomputed_over_cached=round(recomputed / cached, 2), generate_over_cached=round(batched / cached, 2),
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda (default) | cuda:N | cpu (the dry run)")
    p.add_argument("--out", default=os.environ.get("OUT", "runs/gpu_check"), help="results folder (default $OUT)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the script, not the speed")
    p.add_argument("--skip-tests", action="store_true", help="skip step 1")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    try:
        device = get_device(args.device)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    report = Report(out, device)
    if not args.skip_tests:
        device_tests(report, device)
    reward_batch(report, device, args.quick)
    parts = mle_and_d(report, device, args.quick)
    paper_iterations(report, device, args.quick, parts, out)
    transformer_batch(report, device, args.quick)
    print(f"written: {out / 'gpu_check.md'}, {out / 'gpu_check.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
