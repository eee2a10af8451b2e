#!/usr/bin/env python
"""Row chunks side by side on torch's threads (``utils.parallel_map``) against the serial chunk loop, in one process.

Each part of the main command that runs in row chunks is timed both ways, interleaved (serial, parallel, serial,
...), with the paper's generator (V 5000, T 20, 32/32): a reward batch (B 64, N 16) with the light and the paper
CNN, drawing D's 1,600 negatives, an evaluation (9,984 samples, their NLL under the oracle, NLL-test of 9,984), and
an MLE step (which runs no chunks side by side: a control for the machine's noise). Serial is the loop as it ran before: each op split over torch's threads. The outputs of both ways are
compared, bit for bit, and the script stops if they differ. Prints the median of ``--repeats`` rounds per part (the
order alternating from round to round), their ratio, and in how many rounds the parallel chunks were faster. Usage:

    python benchmarks/bench_parallel.py --threads 2
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable, Iterator

import torch

from seqgan_rl.config import DiscriminatorConfig, GeneratorConfig
from seqgan_rl.envs import mc_q_values
from seqgan_rl.envs import rollout as rollout_module
from seqgan_rl.models import Discriminator, Generator, OracleLSTM
from seqgan_rl.models import discriminator as discriminator_module
from seqgan_rl.models import generator as generator_module
from seqgan_rl.models import sampling as sampling_module
from seqgan_rl.training.pretrain import make_generator_optimizer, mle_step
from seqgan_rl.utils import keep_freed_memory, make_rng

MODULES = (generator_module, sampling_module, discriminator_module, rollout_module)


@contextlib.contextmanager
def serial_chunks() -> Iterator[None]:
    """The chunk loops run in order on the calling thread, each op on all of torch's threads (as before)."""
    names = ("parallel_map", "worker_threads")
    saved = {(m, name): getattr(m, name) for m in MODULES for name in names if hasattr(m, name)}
    serial = {
        "parallel_map": lambda fn, items, device=None: [fn(x) for x in items],
        "worker_threads": contextlib.nullcontext,
    }
    for m, name in saved:
        setattr(m, name, serial[name])
    try:
        yield
    finally:
        for (m, name), fn in saved.items():
            setattr(m, name, fn)


def parts() -> dict[str, Callable[[], object]]:
    torch.manual_seed(0)
    g = Generator(GeneratorConfig()).eval()
    oracle = OracleLSTM.paper()
    light = Discriminator(DiscriminatorConfig.light())
    paper = Discriminator(DiscriminatorConfig.paper())
    seqs = oracle.sample(64, make_rng(1))
    test = oracle.sample(9984, make_rng(2))
    train = Generator(GeneratorConfig())
    optimizer = make_generator_optimizer(train, 0.01)
    batch = test[:64]

    def mle() -> torch.Tensor:  # one MLE step from the same weights and optimizer state every time
        state = ({k: v.clone() for k, v in train.state_dict().items()}, optimizer.state_dict())
        mle_step(train, optimizer, batch, 5.0)
        out = torch.cat([p.detach().flatten() for p in train.parameters()])
        train.load_state_dict(state[0])
        optimizer.load_state_dict(state[1])
        return out

    return {
        "reward batch, light CNN": lambda: mc_q_values(seqs, g, light, 16, make_rng(4)),
        "reward batch, paper CNN": lambda: mc_q_values(seqs, g, paper, 16, make_rng(4)),
        "D's negatives (1,600)": lambda: g.sample(1600, make_rng(5)),
        "evaluation: 9,984 samples": lambda: g.sample(9984, make_rng(6)),
        "evaluation: oracle NLL of 9,984": lambda: oracle.sequence_nll(test),
        "evaluation: NLL-test (9,984)": lambda: g.sequence_nll(test),
        "MLE step (batch 64)": mle,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2, help="torch threads (parallel_map uses as many workers)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--only", default="", help="run only the parts whose name contains this text")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    print(f"torch threads: {torch.get_num_threads()}; medians of {args.repeats} interleaved rounds")
    print(f"{'part':34s} {'serial s':>9s} {'parallel s':>11s} {'ratio':>6s} {'parallel faster':>16s}")
    for name, fn in parts().items():
        if args.only not in name:
            continue
        times: dict[str, list[float]] = {"serial": [], "parallel": []}
        outputs = {}
        for r in range(args.repeats):
            for mode in ("serial", "parallel") if r % 2 == 0 else ("parallel", "serial"):
                with serial_chunks() if mode == "serial" else contextlib.nullcontext():
                    start = time.perf_counter()
                    outputs[mode] = fn()
                    times[mode].append(time.perf_counter() - start)
            if not torch.equal(outputs["serial"], outputs["parallel"]):
                raise SystemExit(f"{name}: the parallel chunks differ from the serial loop")
        s, q = (statistics.median(times[m]) for m in ("serial", "parallel"))
        wins = sum(a > b for a, b in zip(times["serial"], times["parallel"], strict=True))
        print(f"{name:34s} {s:9.3f} {q:11.3f} {s / q:5.2f}x {f'{wins}/{args.repeats} rounds':>16s}", flush=True)


if __name__ == "__main__":
    main()
