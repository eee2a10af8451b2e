#!/usr/bin/env python
"""Screen generator sizes and MLE schedules for the ``strong`` preset, on the validation split.

Each candidate is the ``strong`` preset with overrides of its generator and MLE (``--candidate
'NAME={"hidden_dim": 256, "mle_lr": 3e-3}'``, keys of ``seqgan_rl.presets.MODEL_OPTIONS``), pre-trained by MLE
with the preset's validation split and early stopping (D pre-training cut to one round: the screen is about G).
Candidates are **ranked by their best validation NLL** (500 of the training sequences; never the test set or the
oracle). For the record, the selected generator of each is then swept over temperatures and read at the
published frontier's NLL-test values (NLL-oracle at NLL-test 8.27 and 8.0, the targets 7.52 and 8.15)::

    python benchmarks/strong_screen.py --seeds 100 --jobs 2 --out runs/strong-screen \\
        --candidate 'h128-l2-d0.6-lr1e-3={}' --candidate 'h128-l2-d0.6-lr3e-3={"mle_lr": 3e-3}'

Each job runs on one thread (two side by side on this 2-core machine: their wall times are comparable with each
other, not with a run alone). Finished candidates are reused. The committed table of the screen that chose the
preset is ``benchmarks/results/strong_screen.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

SCREEN_OPTIONS = {"mle_eval_every": 10, "d_pretrain_rounds": 1}
"""What the screen changes besides a candidate's overrides: evaluations every 10 epochs (a curve), one D round."""


def run_job(name: str, overrides: dict, seed: int, out_root: str, sweep_samples: int) -> dict:
    import torch

    from seqgan_rl.presets import train_preset, with_options
    from seqgan_rl.training.compare import PRESET_TEMPERATURES, frontier_at, temperature_sweep
    from seqgan_rl.training.logger import read_metrics
    from seqgan_rl.training.pretrain import run_pretraining
    from seqgan_rl.training.tasks import OracleTask
    from seqgan_rl.utils import keep_freed_memory

    keep_freed_memory()
    torch.set_num_threads(1)
    config = with_options(train_preset("strong", seed), **SCREEN_OPTIONS, **overrides).pretrain
    out = Path(out_root, f"{name}-s{seed}")
    done = (out / "pretrained.pt").exists() or (out / "pretrain_checkpoint.pt").exists()
    torch.manual_seed(seed)
    task = OracleTask()
    pre = run_pretraining(config, out, torch.device("cpu"), task, resume=done)
    rows = read_metrics(out / "metrics.csv")
    valid = {int(r["epoch"]): float(r["eval/nll_valid"]) for r in rows if r["phase"] == "mle" and r["eval/nll_valid"]}
    selected = next(r for r in rows if r["phase"] == "mle_selected")
    sweep_file = out.parent / f"{out.name}-sweep.json"
    if sweep_file.exists():
        sweep = json.loads(sweep_file.read_text())
    else:
        temps = PRESET_TEMPERATURES["strong"]
        sweep = temperature_sweep(pre.generator, task.oracle, pre.data.test, temps, sweep_samples, seed)
        sweep_file.write_text(json.dumps(sweep, indent=1))
    mle_rows = [r for r in rows if r["phase"] in ("mle", "mle_selected")]
    return {
        "name": name, "seed": seed, "overrides": overrides, "epochs": max(valid), "best_epoch": int(selected["epoch"]),
        "best_valid": min(valid.values()), "nll_oracle": pre.mle_metrics["eval/nll_oracle"],
        "nll_test": pre.mle_metrics["eval/nll_test"], "at_8.27": frontier_at(sweep, 8.27),
        "at_8.0": frontier_at(sweep, 8.0), "wall_s": float(mle_rows[-1]["time/elapsed_s"]),
        "s_per_epoch": float(mle_rows[-1]["time/elapsed_s"]) / max(valid),
    }  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--candidate", action="append", required=True, help="NAME=JSON overrides of the strong preset")
    p.add_argument("--seeds", type=int, nargs="+", default=[100])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", default="runs/strong-screen")
    p.add_argument("--sweep-samples", type=int, default=4992)
    p.add_argument("--table", default=None, help="also write the table here (markdown; a .csv beside it)")
    args = p.parse_args()
    candidates = []
    for spec in args.candidate:
        name, _, js = spec.partition("=")
        candidates.append((name, json.loads(js or "{}")))
    jobs = [(n, o, s, args.out, args.sweep_samples) for n, o in candidates for s in args.seeds]
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        results = list(pool.map(run_job, *zip(*jobs, strict=True)))
    lines = table(results)
    print("\n".join(lines))
    if args.table:
        Path(args.table).write_text("\n".join(lines) + "\n")
        with Path(args.table).with_suffix(".csv").open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=[k for k in results[0] if k != "overrides"] + ["overrides"])
            w.writeheader()
            w.writerows({**r, "overrides": json.dumps(r["overrides"])} for r in results)


def table(results: list[dict]) -> list[str]:
    """One row a candidate (means over seeds), ranked by best validation NLL."""
    by: dict[str, list[dict]] = {}
    for r in results:
        by.setdefault(r["name"], []).append(r)

    def mean(rs: list[dict], key: str) -> float:
        vals = [r[key] for r in rs if not math.isnan(r[key])]
        return statistics.mean(vals) if vals else math.nan

    lines = [
        "| rank | candidate | overrides of `strong` | best valid NLL | epochs (best) | NLL-oracle / NLL-test (τ 1) "
        "| NLL-oracle at NLL-test 8.27 | at 8.0 | s / epoch | seeds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    ranked = sorted(by.items(), key=lambda kv: mean(kv[1], "best_valid"))
    for i, (name, rs) in enumerate(ranked, 1):
        fmt = lambda x: "–" if math.isnan(x) else f"{x:.3f}"  # noqa: E731
        lines.append(
            f"| {i} | {name} | `{json.dumps(rs[0]['overrides'])}` | {fmt(mean(rs, 'best_valid'))} | "
            f"{mean(rs, 'epochs'):.0f} ({mean(rs, 'best_epoch'):.0f}) | {fmt(mean(rs, 'nll_oracle'))} / "
            f"{fmt(mean(rs, 'nll_test'))} | {fmt(mean(rs, 'at_8.27'))} | {fmt(mean(rs, 'at_8.0'))} | "
            f"{mean(rs, 's_per_epoch'):.1f} | {len(rs)} |"
        )
    return lines


if __name__ == "__main__":
    main()
