#!/usr/bin/env python
"""Screen discriminators on held-out data: can a D tell a generator's samples from the oracle's?

SeqGAN's reward is only as informative as D's ranking of sequences it has not trained on. For each seed's
pre-training (``<pre-root>/pretrain-s<seed>``, as ``schedule_screen.py`` makes it; made here when missing; it
needs a validation split, as the ``strong`` preset has), every candidate D starts fresh from the same seed and trains on the
same data stream: ``--rounds`` rounds, each of ``--steps`` Adam steps over a fresh draw of ``--negatives`` generator
samples and as many sequences of G's training data (the preset's D pre-training: 10 x 200 steps, 6,400 negatives).
The negatives of every round are drawn once per seed and shared by all candidates, so candidates differ only in D.

Held out of every candidate: the validation split (real; never seen by G or D) and as many generator samples drawn
from a stream of their own (fake). After every ``--every`` rounds the script records, on the held-out pairs, D's
**AUC** (the chance that a real sequence scores above a generated one: the reward uses only D's ranking, so this is
what matters; 0.5 = no signal), its accuracy at 0.5 and the mean P(real) of both classes, beside its accuracy on its
own training batches (memorisation shows as training accuracy rising while the held-out AUC stays at 0.5).

A candidate is ``NAME=JSON``: ``{"d": "light" | "paper" | "lstm", "lr": ..., "weight_decay": ...}`` plus fields of
``DiscriminatorConfig`` for the CNNs (``dropout``, ``embed_dim``, ``l2_reg``) or, for ``lstm`` (a probe of another
inductive bias: embedding -> LSTM -> max over time and last output -> dropout -> linear),
``embed_dim``, ``hidden_dim``, ``dropout`` and ``from_generator`` (start from G's own embedding and LSTM: the
adversarial phase's ``d_kind="lstm_from_g"``, ``seqgan_rl.models.RecurrentDiscriminator``)::

    python benchmarks/d_screen.py --pre-root runs/strong-d --seeds 100 101 --jobs 2 \\
        --candidate 'light-1e-3={"d": "light", "lr": 1e-3}' --candidate 'paper-1e-4={"d": "paper", "lr": 1e-4}'

Three untrained scores are recorded beside the candidates: G's own log-likelihood of a sequence, the oracle's, and
the Bayes-optimal discriminator D* = sigmoid(log p_oracle - log p_G) (``seqgan_rl.models.optimal``; the last two
need oracle access, which no D trained on data has: how much signal there is to find). Without ``--candidate``, the
scores alone.

``--real oracle`` or ``--real oracle-pool:N`` (a diagnostic with oracle access) trains every candidate on fresh
oracle samples as its real class instead of G's training data: a new draw each round, or random subsets of a pool of
N drawn once (10k, 100k, 1M: how much real data D learns from); none of them a training, validation or test
sequence (``seqgan_rl.data.oracle_data.OracleFedReal``). Records then carry ``real_seen``, the real sequences
drawn so far.
Each job (one seed) runs on one thread. ``--table-from DIR ...`` runs nothing: it prints one table of several runs'
records per round (``--json-out F`` writes them merged). The strong preset's screen: ``benchmarks/results/strong_d_screen.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import torch
from torch import nn

from seqgan_rl.training.run_folder import RunFolderError

D_KINDS = ("light", "paper", "lstm")
OPTIMISER_KEYS = ("lr", "weight_decay")
LSTM_KEYS = ("embed_dim", "hidden_dim", "dropout", "from_generator")


def parse_candidate(spec: str) -> tuple[str, dict]:
    """``NAME=JSON`` -> (name, settings); a clear ``ValueError`` for anything else."""
    name, sep, text = spec.partition("=")
    if not sep or not name:
        raise ValueError(f'--candidate {spec!r}: write NAME={{...}}, e.g. \'light={{"d": "light", "lr": 1e-3}}\'')
    try:
        settings = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"--candidate {spec!r}: the settings are not JSON ({e})") from None
    if not isinstance(settings, dict) or settings.get("d") not in D_KINDS:
        raise ValueError(f'--candidate {name}: the settings need "d": one of {", ".join(D_KINDS)}')
    build_discriminator(settings, None)  # unknown fields fail here, before any work
    return name, settings


def build_discriminator(settings: dict, generator, vocab_size: int = 5000, seq_len: int = 20) -> nn.Module:
    """The candidate's fresh D (``generator``: the G an ``lstm`` candidate with ``from_generator`` starts from)."""
    from seqgan_rl.config import DiscriminatorConfig
    from seqgan_rl.models.discriminator import Discriminator
    from seqgan_rl.models.recurrent_discriminator import RecurrentDiscriminator

    fields = {k: v for k, v in settings.items() if k not in ("d", *OPTIMISER_KEYS)}
    if settings["d"] == "lstm":
        unknown = set(fields) - set(LSTM_KEYS)
        if unknown:
            raise ValueError(f"lstm candidate: unknown fields {sorted(unknown)} (known: {', '.join(LSTM_KEYS)})")
        if fields.pop("from_generator", False) and generator is not None:
            if {"embed_dim", "hidden_dim"} & set(fields):
                raise ValueError("lstm candidate: from_generator takes G's sizes (drop embed_dim and hidden_dim)")
            return RecurrentDiscriminator.from_generator(generator, **fields)
        return RecurrentDiscriminator(vocab_size, seq_len, **fields)
    cfg = getattr(DiscriminatorConfig, settings["d"])(vocab_size, seq_len)
    try:
        return Discriminator(dataclasses.replace(cfg, **fields))
    except TypeError as e:  # an unknown field
        raise ValueError(f"{settings['d']} candidate: {e} (fields of DiscriminatorConfig, lr, weight_decay)") from None


def auc(real: torch.Tensor, fake: torch.Tensor) -> float:
    """P(a real sequence scores above a generated one), ties counted half (the Mann-Whitney statistic)."""
    diff = real[:, None] - fake[None, :]
    return float((diff > 0).float().mean() + 0.5 * (diff == 0).float().mean())


def held_out_scores(d: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
    pr, pf = d.prob_real(real), d.prob_real(fake)
    return {
        "auc": auc(pr, pf),
        "accuracy": 0.5 * float((pr > 0.5).float().mean() + (pf < 0.5).float().mean()),
        "p_real_real": float(pr.mean()),
        "p_real_fake": float(pf.mean()),
    }


def screen_seed(seed: int, pre_root: str, preset: str, candidates: dict, rounds: int, steps: int, negatives: int,
                every: int, real: str = "train") -> list[dict]:  # fmt: skip
    """Every candidate on one seed's pre-trained G, on one thread; the records of each evaluation."""
    from seqgan_rl.data.oracle_data import OracleFedReal
    from seqgan_rl.models.optimal import OptimalDiscriminator
    from seqgan_rl.presets import train_preset
    from seqgan_rl.training.pretrain import run_pretraining
    from seqgan_rl.utils import derive_seed, keep_freed_memory

    keep_freed_memory()
    torch.set_num_threads(1)
    cfg = train_preset(preset, seed)
    pre_dir = Path(pre_root, f"pretrain-s{seed}")
    started = (pre_dir / "pretrained.pt").exists() or (pre_dir / "pretrain_checkpoint.pt").exists()
    pre = run_pretraining(cfg.pretrain, pre_dir, torch.device("cpu"), resume=started)  # made here when missing
    valid = getattr(pre.evaluator, "valid_tokens", None)
    if valid is None:
        raise ValueError(f"{pre_dir}: this pre-training has no validation split (use a preset with one: strong)")
    oracle = pre.evaluator.inner.oracle
    optimal = OptimalDiscriminator(oracle, pre.generator)
    scores = {  # per-sequence log-likelihoods as untrained scores: what G knows, and what no D trained on data can
        "score: G's log-likelihood": lambda tokens: -pre.generator.sequence_nll(tokens),
        "score: the oracle's log-likelihood (unavailable to a D)": lambda tokens: -oracle.sequence_nll(tokens),
        "score: D*, the optimal discriminator (oracle access)": optimal.log_ratio,
    }
    source = None
    if real != "train":  # oracle-fed: fresh draws, or a pool; never a training, validation or test sequence
        pool = int(real.split(":", 1)[1]) if real.startswith("oracle-pool:") else None
        source = OracleFedReal(oracle, [pre.data.train, pre.data.test], pool, seed=derive_seed(seed, "d-screen-real"))
    return screen(
        pre.generator, pre.data.train, valid, candidates, seed, rounds, steps, negatives, every, scores, source
    )


def screen(generator, train: torch.Tensor, valid: torch.Tensor, candidates: dict, seed: int, rounds: int = 10,
           steps: int = 200, negatives: int = 6400, every: int = 2, scores: dict | None = None,
           real_source=None) -> list[dict]:  # fmt: skip
    """Every candidate against ``generator``: trained on ``train`` (real) and fresh samples, scored on ``valid`` (real,
    held out) against as many samples of a held-out stream. ``scores``: named functions of a ``(B, T)`` batch, higher
    = more real, whose held-out AUC is recorded as is (round 0, no training). ``real_source``: an ``OracleFedReal``
    whose ``sample(n)`` gives each round's real sequences instead of ``train``. Returns one record per evaluation."""
    from seqgan_rl.data.oracle_data import random_permutation
    from seqgan_rl.training.metrics import sample_in_eval_mode
    from seqgan_rl.training.pretrain import discriminator_step, make_discriminator_optimizer
    from seqgan_rl.utils import derive_seed

    g = generator
    stream = torch.Generator().manual_seed(derive_seed(seed, "d-screen"))
    held_fake = sample_in_eval_mode(g, valid.shape[0], torch.Generator().manual_seed(derive_seed(seed, "d-held")))
    data = []  # each round's (real subset, negatives, real sequences drawn so far), shared by every candidate
    for _ in range(rounds if candidates else 0):
        if real_source is None:
            real = train[random_permutation(train.shape[0], stream)[:negatives]]
        else:
            real = real_source.sample(negatives)
        seen = real_source.drawn if real_source is not None else train.shape[0]
        data.append((real, sample_in_eval_mode(g, real.shape[0], stream), seen))
    records = []
    for name, score in (scores or {}).items():
        rec = {"candidate": name, "seed": seed, "round": 0, "steps": 0, "auc": auc(score(valid), score(held_fake))}
        records.append(rec)
        print(json.dumps(rec), flush=True)
    for name, settings in candidates.items():
        torch.manual_seed(derive_seed(seed, "d-init"))
        d = build_discriminator(settings, g, g.vocab_size, g.seq_len)  # initialised (and dropout drawn) from here
        opt = make_discriminator_optimizer(d, settings.get("lr", 1e-3), settings.get("weight_decay", 0.0))
        order_rng = torch.Generator().manual_seed(derive_seed(seed, "d-order"))
        start, accs = time.perf_counter(), []
        for r, (real, fake, seen) in enumerate(data, start=1):
            tokens = torch.cat([real, fake])
            labels = torch.cat([torch.ones(len(real), dtype=torch.long), torch.zeros(len(fake), dtype=torch.long)])
            order = random_permutation(len(tokens), order_rng)
            accs = [discriminator_step(d, opt, tokens[idx], labels[idx])[1] for idx in order[: steps * 64].split(64)]
            if r % every == 0 or r == rounds:
                rec = {"candidate": name, "seed": seed, "round": r, "steps": r * len(accs), "real_seen": seen,
                       "train_accuracy": statistics.mean(accs), **held_out_scores(d, valid, held_fake),
                       "seconds": round(time.perf_counter() - start, 1)}  # fmt: skip
                records.append(rec)
                print(json.dumps(rec), flush=True)
    return records


def table(records: list[dict], seeds: list[int]) -> str:
    """One row per candidate (or score), in the records' order: the last evaluation per seed (held-out AUC, accuracy,
    training accuracy), their mean, the best held-out AUC over the evaluations, mean P(real) and seconds."""
    last: dict[tuple[str, int], dict] = {}
    for r in records:
        last[r["candidate"], r["seed"]] = r
    lines = [
        "| candidate | "
        + " | ".join(f"s{s}: held-out AUC / acc (train acc)" for s in seeds)
        + " | mean held-out AUC | best AUC on the way | P(real) real / fake | s per seed |",
        "|---|" + "---|" * len(seeds) + "---|---|---|---|",
    ]

    def cell(r: dict | None) -> str:
        if r is None:
            return "—"
        return f"{r['auc']:.3f}" + (f" / {r['accuracy']:.3f} ({r['train_accuracy']:.3f})" if "accuracy" in r else "")

    for name in dict.fromkeys(r["candidate"] for r in records):
        got = [last[name, s] for s in seeds if (name, s) in last]
        trained = "accuracy" in got[0]
        best = max(r["auc"] for r in records if r["candidate"] == name)
        extra = (
            f"{best:.3f} | {statistics.mean(r['p_real_real'] for r in got):.3f} / "
            f"{statistics.mean(r['p_real_fake'] for r in got):.3f} | {statistics.mean(r['seconds'] for r in got):.0f}"
            if trained
            else "– | – | –"
        )
        cells = " | ".join(cell(last.get((name, s))) for s in seeds)
        lines.append(f"| {name} | {cells} | {statistics.mean(r['auc'] for r in got):.3f} | {extra} |")
    return "\n".join(lines)


def rounds_table(runs: list[dict]) -> str:
    """Several runs' ``results.json`` (``--table-from``) as one markdown table: a row per candidate, D's real class
    and seed, with the held-out AUC at each evaluated round (headed by the real examples drawn so far: rounds x
    negatives), the last round's training-batch accuracy and the seconds; then the scores, once per seed."""
    rounds = sorted({r["round"] for run in runs for r in run["records"] if "accuracy" in r})
    negatives = {run["settings"]["negatives"] for run in runs}
    if len(negatives) > 1:
        raise ValueError(f"the runs drew different --negatives per round ({sorted(negatives)}): one table each")
    per_round = negatives.pop() if negatives else 0
    heads = " | ".join(f"{k} rounds ({k * per_round / 1000:g}k reals)" for k in rounds)
    lines = [
        f"| candidate | real class | seed | {heads} | training-batch accuracy (last) | s |",
        "|---|---|---|" + "---|" * len(rounds) + "---|---|",
    ]
    for name in dict.fromkeys(r["candidate"] for run in runs for r in run["records"] if "accuracy" in r):
        for run in runs:
            real = run["settings"]["real"]
            for seed in run["settings"]["seeds"]:
                got = {r["round"]: r for r in run["records"] if r["candidate"] == name and r["seed"] == seed}
                if got:
                    last = got[max(got)]
                    cells = " | ".join(f"{got[k]['auc']:.3f}" if k in got else "–" for k in rounds)
                    acc, secs = f"{last['train_accuracy']:.3f}", f"{last['seconds']:.0f}"
                    lines.append(f"| {name} | {real} | {seed} | {cells} | {acc} | {secs} |")
    scores = {(r["candidate"], r["seed"]): r["auc"] for run in runs for r in run["records"] if "accuracy" not in r}
    for (name, seed), value in scores.items():
        lines.append(f"| {name} | – | {seed} | {value:.3f} |" + " |" * (len(rounds) + 1))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pre-root", default="runs/strong-d", help="folder holding pretrain-s<seed>/ checkpoints")
    p.add_argument("--preset", default="strong", choices=["strong"], help="the pre-trainings' preset (one with a "
                   "validation split)")  # fmt: skip
    p.add_argument("--seeds", type=int, nargs="+", default=[100, 101])
    p.add_argument("--candidate", action="append", default=[], metavar="NAME=JSON", help="none: the scores alone")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--steps", type=int, default=200, help="Adam steps (batch 64) per round")
    p.add_argument("--negatives", type=int, default=6400, help="fresh generator samples per round")
    p.add_argument("--every", type=int, default=2, help="evaluate on the held-out pairs every N rounds")
    p.add_argument("--jobs", type=int, default=2, help="seeds in parallel, one thread each")
    p.add_argument("--out", default="runs/d-screen", help="folder for results.json")
    p.add_argument(
        "--real", default="train", metavar="train|oracle|oracle-pool:N",
        help="D's real class: G's training data (default), fresh oracle samples each round, or a pool of N (oracle "
        "access: a diagnostic)",
    )  # fmt: skip
    p.add_argument(
        "--table-from", nargs="+", default=None, metavar="DIR",
        help="run nothing: print one table of these runs' results.json (--out's), per round, and with --json-out "
        "write them merged",
    )  # fmt: skip
    p.add_argument("--json-out", default=None, help="with --table-from: the merged records' file")
    args = p.parse_args(argv)
    if args.table_from is not None:
        return print_runs(p, args.table_from, args.json_out)
    if args.json_out is not None:
        p.error("--json-out goes with --table-from")
    for flag in ("rounds", "steps", "negatives", "every", "jobs"):
        if getattr(args, flag) < 1:
            p.error(f"--{flag} must be >= 1")
    pool = args.real.split(":", 1)[1] if args.real.startswith("oracle-pool:") else None
    if args.real not in ("train", "oracle") and not (pool is not None and pool.isdigit() and int(pool) >= 1):
        p.error(f"--real {args.real}: write train, oracle or oracle-pool:N (N a whole number >= 1)")
    if args.steps * 64 > 2 * args.negatives:
        p.error(f"--steps {args.steps} x 64 is more than one pass over 2 x --negatives {args.negatives}")
    candidates = {}
    for spec in args.candidate:
        try:
            name, settings = parse_candidate(spec)
        except ValueError as e:
            p.error(str(e))
        candidates[name] = settings
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        schedule = (args.rounds, args.steps, args.negatives, args.every, args.real)
        futures = [pool.submit(screen_seed, s, args.pre_root, args.preset, candidates, *schedule) for s in args.seeds]
        try:
            records = [r for f in futures for r in f.result()]
        except RunFolderError as e:  # e.g. a pre-training folder made with other options
            print(f"d_screen.py: error: {e}", file=sys.stderr)
            return 2
    Path(args.out).mkdir(parents=True, exist_ok=True)
    Path(args.out, "results.json").write_text(
        json.dumps({"candidates": candidates, "settings": vars(args), "records": records}, indent=1)
    )
    print(table(records, args.seeds))
    return 0


def print_runs(p: argparse.ArgumentParser, folders: list[str], json_out: str | None) -> int:
    """``--table-from``: read each folder's results.json, print ``rounds_table`` (and write the merged runs)."""
    runs = []
    for folder in folders:
        path = Path(folder, "results.json")
        try:
            runs.append(json.loads(path.read_text()))
        except (OSError, ValueError) as e:
            p.error(f"--table-from {folder}: no readable results.json there ({type(e).__name__}: {e})")
    try:
        print(rounds_table(runs))
    except (KeyError, ValueError) as e:
        p.error(f"--table-from: {e}")
    if json_out is not None:
        Path(json_out).write_text(json.dumps({"runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
