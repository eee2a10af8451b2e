#!/usr/bin/env python
"""Screen adversarial-schedule variants over several seeds from shared pre-training checkpoints.

Every variant of a seed starts from the same MLE + D pre-training (``<pre-root>/pretrain-s<seed>``, made
by ``repro_oracle.py`` or ``train_agent.py``, or here when missing), so the seeds pair up across variants. A
variant is a name and a JSON object of overrides of the preset (``--preset``: ``cpu`` or ``strong``), keyed
``adversarial.*``, ``d_train.*`` or ``agent.*``. It prints, per variant, the best NLL-oracle per seed (over the
evaluations up to ``--best-within`` updates), the mean and std, the NLL-test at the best point, and the mean
paired difference to the first variant::

    python benchmarks/schedule_screen.py --pre-root runs/repro-cpu --seeds 0 1 2 3 4 --jobs 2 \\
        --variant 'preset={}' --variant 'dlr1e4={"d_train.lr": 1e-4}'

With a validation split (the ``strong`` preset) it also reads the criterion the strong schedule was chosen by,
which uses neither the test set nor the best-of-run oracle score: the final model's NLL-oracle minus the same
seed's MLE + temperature at the final model's *validation* NLL (the MLE generator's temperature sweep, cached
in ``<out>/mle-sweep-s<seed>.json``)::

    python benchmarks/schedule_screen.py --preset strong --pre-root runs/strong-adv --seeds 100 101 \\
        --variant 'lr1e-3={"agent.lr": 1e-3}' --variant 'lr1e-4={"agent.lr": 1e-4}'

Each job runs on one thread. The table of the runs that chose the ``cpu`` preset's D learning rate is in
``benchmarks/results/cpu_schedule_experiments.md``; the strong preset's in ``benchmarks/results/strong_screen.md``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import statistics
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

SECTIONS = ("adversarial", "d_train", "agent")


def apply_overrides(cfg, overrides: dict):
    """The ``cpu`` preset's ``TrainConfig`` with ``section.field`` overrides (an unknown key is an error)."""
    parts: dict[str, dict] = {s: {} for s in SECTIONS}
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        if section not in SECTIONS or not name:
            raise ValueError(f"override {key!r}: write it as one of {', '.join(s + '.FIELD' for s in SECTIONS)}")
        parts[section][name] = value
    adv = dataclasses.replace(cfg.adversarial, **parts["adversarial"])
    adv = dataclasses.replace(adv, d_train=dataclasses.replace(adv.d_train, **parts["d_train"]))
    return dataclasses.replace(cfg, agent=dataclasses.replace(cfg.agent, **parts["agent"]), adversarial=adv)


def pretrain_job(preset: str, seed: int, pre_root: str, out_root: str) -> None:
    """The seed's pre-training (made, or continued, when it is not finished) and, with a validation split, the MLE
    generator's temperature sweep with its validation NLL (``<out>/mle-sweep-s<seed>.json``)."""
    import torch

    from seqgan_rl.presets import train_preset
    from seqgan_rl.training.compare import PRESET_TEMPERATURES, TEMPERATURES, temperature_sweep
    from seqgan_rl.training.pretrain import run_pretraining
    from seqgan_rl.training.tasks import OracleTask
    from seqgan_rl.utils import keep_freed_memory

    keep_freed_memory()
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    cfg = train_preset(preset, seed)
    pre_dir = Path(pre_root, f"pretrain-s{seed}")
    started = (pre_dir / "pretrained.pt").exists() or (pre_dir / "pretrain_checkpoint.pt").exists()
    task = OracleTask()
    pre = run_pretraining(cfg.pretrain, pre_dir, torch.device("cpu"), task, resume=started)
    sweep_file = Path(out_root, f"mle-sweep-s{seed}.json")
    if cfg.pretrain.mle.num_valid and not sweep_file.exists():
        temps = PRESET_TEMPERATURES.get(preset, TEMPERATURES)
        sweep = temperature_sweep(
            pre.generator, task.oracle, pre.data.test, temps, 4992, seed, pre.evaluator.valid_tokens
        )
        Path(out_root).mkdir(parents=True, exist_ok=True)
        sweep_file.write_text(json.dumps(sweep, indent=1))


def run_job(name: str, overrides: dict, seed: int, pre_root: str, out_root: str, preset: str = "cpu") -> dict:
    import torch

    from seqgan_rl.presets import train_preset
    from seqgan_rl.training.pipeline import build_trainer
    from seqgan_rl.training.pretrain import run_pretraining
    from seqgan_rl.utils import keep_freed_memory

    keep_freed_memory()
    torch.set_num_threads(1)
    cfg = apply_overrides(train_preset(preset, seed), overrides)
    pre_dir = Path(pre_root, f"pretrain-s{seed}")
    if not (pre_dir / "pretrained.pt").exists():
        raise FileNotFoundError(f"{pre_dir / 'pretrained.pt'} is missing: run repro_oracle.py for seed {seed} first")
    device = torch.device("cpu")
    pre = run_pretraining(cfg.pretrain, pre_dir, device, resume=True)
    out = Path(out_root, f"{name}-s{seed}")
    out.mkdir(parents=True, exist_ok=True)
    trainer = build_trainer(cfg, pre.generator, pre.discriminator, pre.data, pre.evaluator, device, out)
    trainer.train()
    with open(out / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["eval/nll_oracle"]]
    evals = [(int(r["step"]), float(r["eval/nll_oracle"]), float(r["eval/nll_test"])) for r in rows]
    result = {"name": name, "seed": seed, "evals": evals, "wall_s": round(trainer.elapsed, 1)}
    sweep_file = Path(out_root, f"mle-sweep-s{seed}.json")
    if rows and rows[-1].get("eval/nll_valid") and sweep_file.exists():
        from seqgan_rl.training.compare import frontier_at

        final_oracle, final_valid = float(rows[-1]["eval/nll_oracle"]), float(rows[-1]["eval/nll_valid"])
        mle = frontier_at(json.loads(sweep_file.read_text()), final_valid, key="nll_valid")
        result["final"] = {"nll_oracle": final_oracle, "nll_valid": final_valid, "delta_valid": final_oracle - mle}
    return result


def best_within(evals: list, limit: int) -> tuple[int, float, float]:
    return min((e for e in evals if e[0] <= limit), key=lambda e: e[1])


def validation_table(results: list[dict], names: list[str], seeds: list[int]) -> str:
    """The final models against MLE + temperature at equal validation NLL (runs with a validation split)."""
    by = {(r["name"], r["seed"]): r["final"] for r in results if "final" in r}
    if not by:
        return ""
    lines = [
        "| variant | "
        + " | ".join(f"s{s} Δ_valid" for s in seeds)
        + " | mean Δ_valid | final NLL-oracle / NLL-valid |",
        "|---|" + "---|" * len(seeds) + "---|---|",
    ]
    for name in names:
        got = [by[name, s] for s in seeds if (name, s) in by]
        if not got:
            continue
        deltas = [f["delta_valid"] for f in got]
        cells = [f"{by[name, s]['delta_valid']:+.3f}" if (name, s) in by else "—" for s in seeds]
        known = [d for d in deltas if d == d]  # NaN: the MLE curve does not reach that validation NLL
        mean = f"{statistics.mean(known):+.3f}" if known else "—"
        nlls = (
            f"{statistics.mean(f['nll_oracle'] for f in got):.3f} / {statistics.mean(f['nll_valid'] for f in got):.3f}"
        )
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {mean} | {nlls} |")
    return "\n".join(lines)


def summary_table(results: list[dict], names: list[str], seeds: list[int], limit: int) -> str:
    by = {(r["name"], r["seed"]): best_within(r["evals"], limit) for r in results}
    head = (
        "| variant | "
        + " | ".join(f"s{s}" for s in seeds)
        + " | mean ± std best | NLL-test at best | Δ vs first (seeds better) |"
    )
    lines = [head, "|---|" + "---|" * len(seeds) + "---|---|---|"]
    for name in names:
        got = [s for s in seeds if (name, s) in by]
        best = [by[name, s][1] for s in got]
        test = [by[name, s][2] for s in got]
        diffs = [by[name, s][1] - by[names[0], s][1] for s in got if (names[0], s) in by]
        delta = (
            f"{statistics.mean(diffs):+.3f} ({sum(d < 0 for d in diffs)}/{len(diffs)})"
            if name != names[0] and diffs
            else ""
        )
        spread = f" ± {statistics.stdev(best):.3f}" if len(best) > 1 else ""
        cells = [f"{by[name, s][1]:.3f}" if (name, s) in by else "—" for s in seeds]
        lines.append(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {statistics.mean(best):.3f}{spread} | {statistics.mean(test):.3f} | {delta} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pre-root", default="runs/repro-cpu", help="folder holding pretrain-s<seed>/ checkpoints")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--variant", action="append", required=True, metavar="NAME=JSON",
                   help='e.g. \'dlr1e4={"d_train.lr": 1e-4}\'; the first variant is the reference of the Δ column')  # fmt: skip
    p.add_argument("--jobs", type=int, default=2, help="runs in parallel, one thread each")
    p.add_argument("--best-within", type=int, default=50, help="best NLL-oracle over the updates up to this one")
    p.add_argument("--out", default="runs/screen", help="run folders and results.json")
    p.add_argument("--preset", default="cpu", choices=["cpu", "strong"], help="the preset the variants override")
    args = p.parse_args(argv)
    variants = {}
    for spec in args.variant:
        name, sep, text = spec.partition("=")
        try:
            variants[name] = json.loads(text) if sep else None
        except json.JSONDecodeError as e:
            p.error(f"--variant {spec!r}: the overrides are not JSON ({e})")
        if not sep or not name or not isinstance(variants[name], dict):
            p.error(f"--variant {spec!r}: write NAME={{...}}, e.g. 'preset={{}}'")
    from seqgan_rl.presets import train_preset

    for name, overrides in variants.items():  # bad overrides fail here, before any work
        try:
            apply_overrides(train_preset(args.preset, 0), overrides)
        except (TypeError, ValueError) as e:
            p.error(f"--variant {name}: {e}")
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        for f in [pool.submit(pretrain_job, args.preset, seed, args.pre_root, args.out) for seed in args.seeds]:
            f.result()  # every seed's pre-training before its variants share it
        futures = [
            pool.submit(run_job, name, overrides, seed, args.pre_root, args.out, args.preset)
            for name, overrides in variants.items()
            for seed in args.seeds
        ]
        results = []
        for f in futures:
            r = f.result()
            results.append(r)
            step, oracle, test = best_within(r["evals"], args.best_within)
            print(f"{r['name']} seed {r['seed']}: best {oracle:.3f} / {test:.3f} (update {step})", flush=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    Path(args.out, "results.json").write_text(json.dumps({"variants": variants, "results": results}, indent=1))
    print(summary_table(results, list(variants), args.seeds, args.best_within))
    print(validation_table(results, list(variants), args.seeds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
