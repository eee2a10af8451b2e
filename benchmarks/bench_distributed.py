#!/usr/bin/env python
"""Data-parallel throughput: one process at 1 and 2 threads against ``torchrun --nproc_per_node 2`` at 1 thread
per rank, side by side, on the ``cpu`` preset's adversarial phase (paper oracle sizes: V 5000, T 20, generator
32/32, the light CNN, batch 64, N 16, one D round of 50 steps on 1,600 fresh negatives per update).

Measured per configuration, after one warm-up:
- the MC reward alone: Q of a batch of 64 sequences (each rank its share) on fixed random weights;
- one adversarial update as the loop runs it, in its three parts: collect (sample + Q), the REINFORCE update
  (gradients summed over the ranks), D retraining (data-parallel; one all-reduce per D step); evaluation excluded (measured once, separately: 9,984 samples
  for NLL-oracle and the 5,000 test sequences for NLL-test, sharded).
The ranks wait for each other at a barrier before and after each timed piece, so a time is the slowest rank's.
Then the projection for K GPUs: what is all-reduced per update, in bytes, against the rollout compute.

    python benchmarks/bench_distributed.py --out benchmarks/results/bench_distributed.txt
    python benchmarks/bench_distributed.py --quick            # a smoke run: 2 updates, 2 reward batches

Run it with nothing else busy on the machine: the three configurations share its cores one after another.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve()
CONFIGS = (("1 process, 1 thread", 1, 1), ("1 process, 2 threads", 1, 2), ("torchrun, 2 ranks x 1 thread", 2, 1))


# ---------------------------------------------------------------------------------------------- the worker
def worker(args: argparse.Namespace) -> None:
    """One configuration: times the pieces and prints one JSON line (rank 0)."""
    import torch.distributed as dist

    from seqgan_rl import distributed
    from seqgan_rl.data.oracle_data import make_oracle_data
    from seqgan_rl.models import Discriminator, Generator, OracleLSTM
    from seqgan_rl.presets import train_preset
    from seqgan_rl.training.evaluators import OracleEvaluator
    from seqgan_rl.training.pipeline import build_trainer
    from seqgan_rl.utils import derive_seed, make_rng, seed_everything

    torch.set_num_threads(args.threads)
    device = distributed.init_from_env(torch.device("cpu"))
    config = train_preset("cpu", seed=0)
    pre, adv = config.pretrain, config.adversarial
    oracle = OracleLSTM.paper()
    data = make_oracle_data(oracle, pre.data, pre.seed)
    g, d = Generator(pre.generator), Discriminator(pre.discriminator)
    g.reset_parameters(make_rng(1))
    d.reset_parameters(make_rng(2))
    seed_everything(distributed.rank_seed(3))
    evaluator = OracleEvaluator(oracle, data.test, pre.data.num_eval_samples)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = build_trainer(config, g, d, data, evaluator, device, tmp)
        agent, reward = trainer.agent, trainer.reward
        d_callback = trainer.callback.callbacks[0]

        def timed(fn) -> float:
            if distributed.enabled():
                dist.barrier()
            start = time.perf_counter()
            fn()
            if distributed.enabled():
                dist.barrier()
            return time.perf_counter() - start

        share = distributed.local_share(agent.config.batch_size)
        seqs = g.sample(share, make_rng(distributed.rank_seed(4)))
        rng = make_rng(distributed.rank_seed(5))
        reward_s = [timed(lambda: reward.sequence_q(seqs, rng)) for _ in range(args.reward_repeats + 1)][1:]

        def update() -> dict[str, float]:
            box = {}
            parts = {"collect": timed(lambda: box.setdefault("batch", agent.collect(trainer.rng)))}
            parts["g_update"] = timed(lambda: (agent.update(box["batch"]), reward.after_update()))
            trainer.iteration += 1
            parts["d_retrain"] = timed(d_callback.on_step)
            return parts

        updates = [update() for _ in range(args.updates + 1)][1:]
        eval_rng = make_rng(distributed.rank_seed(derive_seed(0, "eval")))
        eval_s = timed(lambda: evaluator.evaluate(g, eval_rng))
    result = {
        "world_size": distributed.world_size(), "threads": args.threads, "reward_s": reward_s, "updates": updates,
        "eval_s": eval_s, "batch": agent.config.batch_size, "g_params": sum(p.numel() for p in g.parameters()),
        "d_params": sum(p.numel() for p in d.parameters()), "num_rollouts": adv.num_rollouts,
        "d_steps": d_callback.schedule.rounds * (d_callback.schedule.max_steps_per_round or 0),
        "seq_len": pre.generator.seq_len,
    }  # fmt: skip
    if distributed.is_main():
        print("RESULT " + json.dumps(result), flush=True)
    distributed.shutdown(wait=True)
    distributed.exit_process(0)  # the job ends here (see exit_process)


# ---------------------------------------------------------------------------------------------- the driver
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(world: int, threads: int, args: argparse.Namespace) -> dict:
    flags = ["--worker", "--threads", str(threads), "--updates", str(args.updates)]
    flags += ["--reward-repeats", str(args.reward_repeats)]
    if world == 1:
        cmd = [sys.executable, str(HERE), *flags]
    else:
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(world), "--master_addr",
            "127.0.0.1", "--master_port", str(free_port()), str(HERE), *flags,
        ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def report(results: dict[str, list[dict]]) -> str:
    """The table (medians over the rounds' repeats) and the projection."""
    out = ["Data-parallel throughput, cpu preset (paper oracle sizes), side by side in one invocation", ""]
    head = ("Q batch s", "Q seq/s", "collect s", "G upd s", "D retr s", "update s", "upd seq/s", "eval s")
    out.append(f"{'configuration':30s}" + "".join(f"{h:>11s}" for h in head))
    med = {}
    for name, runs in results.items():
        r, ups = runs[0], [u for run in runs for u in run["updates"]]
        q = statistics.median(x for run in runs for x in run["reward_s"])
        parts = [statistics.median(u[k] for u in ups) for k in ("collect", "g_update", "d_retrain")]
        u = statistics.median(sum(x.values()) for x in ups)
        e = statistics.median(run["eval_s"] for run in runs)
        med[name] = (q, u, e)
        row = (q, r["batch"] / q, *parts, u, r["batch"] / u, e)
        out.append(f"{name:30s}" + "".join(f"{x:11.3f}" for x in row))
    out.append(
        f"(medians over {len(ups)} updates and {sum(len(run['reward_s']) for run in runs)} reward batches per "
        "configuration, interleaved rounds)"
    )
    (q1, u1, e1), (q2t, u2t, e2t), (qd, ud, ed) = (med[name] for name, _, _ in CONFIGS)
    out += [
        "",
        f"scaling efficiency of 2 ranks (time at 1 rank x 1 thread / (2 x time at 2 ranks)): MC reward "
        f"{q1 / (2 * qd):.2f}, update {u1 / (2 * ud):.2f}, evaluation {e1 / (2 * ed):.2f}",
        f"2 ranks x 1 thread against 1 process x 2 threads (time ratio, > 1: the ranks are faster): MC reward "
        f"{q2t / qd:.2f}, update {u2t / ud:.2f}, evaluation {e2t / ed:.2f}",
        "",
    ]
    out += projection(next(iter(results.values()))[0])
    return "\n".join(out)


def projection(r: dict, latency_s: float = 30e-6, bandwidth: float = 100e9) -> list[str]:
    """What the ranks exchange per update against what each computes, for K GPUs, on paper: one NCCL call costs
    ``latency_s`` + 2(K-1)/K x bytes / ``bandwidth`` (a ring all-reduce; the defaults are NVLink-class
    assumptions, not measurements)."""
    from seqgan_rl.config import DiscriminatorConfig
    from seqgan_rl.models import Discriminator

    b, n, t, gp, dp = r["batch"], r["num_rollouts"], r["seq_len"], r["g_params"], r["d_params"]
    paper_dp = sum(p.numel() for p in Discriminator(DiscriminatorConfig.paper()).parameters())
    g_calls, g_bytes = 6, 4 * (gp + 1)  # gradient (+ loss) once; 2 gathers and 3 metric sums are a few bytes
    d_bytes, paper_d_bytes = 4 * (dp + 2), 4 * (paper_dp + 2)
    tokens = n * b * t * (t - 1) // 2  # MC rollout tokens sampled per update
    flop_per_token = 2 * 4 * 32 * (32 + 32) + 2 * 32 * 5000  # an LSTM step and the 32 x 5000 projection

    def comm(calls: int, nbytes: int, k: int) -> float:
        return calls * latency_s + 2 * (k - 1) / k * nbytes / bandwidth

    lines = [
        f"Projection for K GPUs (on paper; one NCCL call = {latency_s * 1e6:.0f} us + ring 2(K-1)/K x bytes at "
        f"{bandwidth / 1e9:.0f} GB/s, assumed):",
        f"- per G update: the summed gradient, {g_bytes / 1e6:.2f} MB (generator {gp:,} parameters), + the "
        "returns/mask gathers and metric sums (a few kB): 6 calls",
        f"- per D step: {d_bytes / 1e6:.3f} MB (cpu preset's light CNN, {dp:,} parameters); "
        f"{paper_d_bytes / 1e6:.2f} MB for the paper CNN ({paper_dp:,}); the cpu preset takes {r['d_steps']} D steps "
        "per update, the paper 4,680",
        f"- compute per update, split K ways with no communication: {tokens:,} rollout tokens sampled "
        f"(N B T(T-1)/2, ~{flop_per_token / 1e6:.2f} MFLOP each: {tokens * flop_per_token / 1e9:.0f} GFLOP) and "
        f"{n * b * (t - 1):,} D passes of completions",
    ]
    lines.append(
        f"{'K':>4s}{'cpu preset comm/update':>26s}{'paper schedule comm/update':>30s}{'rollout GFLOP per rank':>25s}"
    )
    for k in (2, 4, 8):
        cpu = comm(g_calls, g_bytes, k) + r["d_steps"] * comm(1, d_bytes, k)
        paper = comm(g_calls, g_bytes, k) + 4680 * comm(1, paper_d_bytes, k)
        lines.append(f"{k:4d}{cpu * 1e3:23.1f} ms{paper * 1e3:27.0f} ms{tokens * flop_per_token / 1e9 / k:25.1f}")
    lines.append(
        f"The cpu preset's communication is a few ms per update: at {g_bytes / 1e6:.1f} and {d_bytes / 1e6:.1f} MB a "
        "call costs about its latency. The paper schedule's 4,680 D all-reduces of its CNN's gradient "
        f"({paper_d_bytes / 1e6:.0f} MB each) are bandwidth-bound and cost seconds per update: there, D's "
        "minibatches would rather be accumulated locally (not done). The rollouts scale with K until a rank's "
        "share of the 64-sequence batch (B/K rows x N rollouts) no longer fills a GPU: beyond that, raise the "
        "batch, not K."
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--updates", type=int, default=4, help="timed adversarial updates per configuration and round")
    p.add_argument("--reward-repeats", type=int, default=4, help="timed MC reward batches per configuration and round")
    p.add_argument("--rounds", type=int, default=3, help="rounds over the three configurations (interleaved)")
    p.add_argument("--quick", action="store_true", help="2 updates, 2 reward batches, 1 round")
    p.add_argument("--out", default=None, help="also write the report to this file")
    args = p.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    if args.quick:
        args.updates, args.reward_repeats, args.rounds = 2, 2, 1
    results: dict[str, list[dict]] = {name: [] for name, _, _ in CONFIGS}
    start = time.perf_counter()
    for _ in range(args.rounds):
        for name, world, threads in CONFIGS:
            results[name].append(launch(world, threads, args))
            print(f"{name}: done ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    text = report(results)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
