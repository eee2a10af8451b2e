"""An honest comparison of policy-gradient algorithms on SeqGAN's reward (``scripts/compare_algos.py``).

Every algorithm of a seed starts from the same MLE checkpoint (one shared pre-training folder), sees the
same oracle and generates the same number of sequences for its generator updates. Rows:

- ``mle``: the MLE generator, no adversarial phase;
- ``reinforce``: SeqGAN as in the paper (REINFORCE on MC-rollout Q, no baseline);
- ``reinforce_baseline``: the same with a per-position mean baseline;
- ``ppo``: Stable-Baselines3 PPO on the batched env (reward mode ``q``, gamma 0, learned critic);
- ``constant``: REINFORCE with Q = 1 for every token (no D, no rollouts): what self-sharpening alone does;
- and the rest of ``ALGOS`` (RLOO, rollout-value, KL, ColdGAN, GRPO, MaliGAN, RankGAN, A2C). A row may set
  fields of its agent config (``parse_row``: ``"rloo@lr=0.003"``), so one comparison holds several settings.

Then each final generator is swept over sampling temperatures (quality-diversity frontier, Caccia et al.
2020): NLL-oracle against NLL-test. ``frontier_at`` reads a curve at a given NLL-test, so an algorithm
can be compared with MLE + temperature *at equal diversity*, the comparison NLL-oracle alone hides; the curves
are also read at the published frontier's NLL-test values (``FIXED_NLL_TEST``), beside Caccia et al.'s MLE and
CoT curves on the paper's oracle (``PUBLISHED``). With a validation split (``MLEConfig.num_valid``, the
``strong`` preset) every sweep point also holds the validation NLL, a criterion that never reads the test set:
``tuning_choices`` picks each algorithm's setting by it (``<name>_tuning.md``).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import os
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqgan_rl.config import (
    OPTIMAL_REWARDS,
    A2CConfig,
    ColdGANConfig,
    GRPOConfig,
    KLReinforceConfig,
    PPOConfig,
    TrainConfig,
)
from seqgan_rl.data.oracle_data import OracleData, split_validation
from seqgan_rl.models.generator import Generator
from seqgan_rl.models.oracle import OracleLSTM
from seqgan_rl.presets import with_seed
from seqgan_rl.training.logger import read_metrics
from seqgan_rl.training.metrics import nll_oracle
from seqgan_rl.training.pipeline import run_training
from seqgan_rl.training.pretrain import run_pretraining
from seqgan_rl.training.run_folder import RunFolder, load_generator, load_torch_file, read_json_file
from seqgan_rl.training.tasks import OracleTask
from seqgan_rl.utils import check_saved_config, check_temperature, derive_seed, make_rng

log = logging.getLogger(__name__)

ALGOS: dict[str, str] = {
    "mle": "MLE only (no adversarial phase)",
    "reinforce": "REINFORCE as in the paper (MC Q, no baseline)",
    "reinforce_baseline": "REINFORCE, per-position mean baseline",
    "rollout_value": "REINFORCE, rollout-value advantage Q_t - Q_{t-1}",
    "rloo": "REINFORCE, leave-one-out baseline (RLOO)",
    "reinforce_kl": "KL-regularised REINFORCE (beta 0.05 to the MLE policy)",
    "coldgan": "ColdGAN (cold sampling τ 0.8, importance weights ≤ 2)",
    "grpo": "GRPO (groups of 8, clip 0.2, KL 0.04)",
    "maligan": "MaliGAN reward, w = D/(1-D) (REINFORCE)",
    "rankgan": "RankGAN reward: MC Q of a ranker (REINFORCE)",
    "ppo": "SB3 PPO (Q reward, gamma 0, learned critic)",
    "a2c": "SB3 A2C (Q reward, gamma 0, learned critic)",
    "constant": "REINFORCE, constant reward (control)",
}
TEMPERATURES = (0.85, 0.9, 0.95, 1.0, 1.1)
"""The default sweep (the committed ``cpu``-preset tables)."""
STRONG_TEMPERATURES = (0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.2)
PRESET_TEMPERATURES = {"strong": STRONG_TEMPERATURES, "transformer": STRONG_TEMPERATURES}
"""Wider sweeps by preset: the strong generators are cooled to NLL-test 8.5 and warmed past their NLL-test minimum."""
FIXED_NLL_TEST = (7.8, 8.0, 8.27, 8.5)
"""NLL-test values at which the curves are read (where REFERENCE.md section 10 reads the published ones)."""
PUBLISHED = {
    "MLE, LSTM 2 x 128, dropout 0.6 (Caccia et al. 2020)": {"tau1": (9.40, 7.61), 7.8: 8.67, 8.0: 8.15, 8.27: 7.52,
                                                            8.5: 7.06},
    "CoT (Caccia et al. 2020)": {"tau1": (9.50, 7.57), 7.8: 8.36, 8.0: 7.85, 8.27: 7.35, 8.5: 7.05},
    "their RL-trained GAN (Caccia et al. 2020)": {"tau1": (8.75, 8.06), 7.8: 9.46, 8.0: 8.90, 8.27: 8.32, 8.5: 7.92},
}  # fmt: skip
"""NLL-oracle of the published temperature curves on the paper's oracle at the ``FIXED_NLL_TEST`` values (cold
branch), and their (NLL-oracle, NLL-test) at temperature 1 (REFERENCE.md section 10)."""
_NLLS = ("eval/nll_oracle", "eval/nll_test")
NLL_TEST_MARGINS = (0.05, 0.1, 0.2)
"""NLL-test levels of the matched table, in nats above the seed's MLE generator at temperature 1."""


def parse_row(row: str) -> tuple[str, dict[str, Any]]:
    """A row of the comparison: an algorithm of ``ALGOS``, optionally with settings of its agent config after
    an ``@`` (``"rloo@lr=0.003"``, ``"reinforce_kl@kl_coef=0.1,lr=0.003"``; values are JSON numbers, booleans
    or strings). Returns the algorithm and the settings; a bad row is a ``ValueError`` naming the fix."""
    algo, sep, spec = row.partition("@")
    if algo not in ALGOS:
        raise ValueError(f"unknown algorithm {algo!r} in row {row!r}: choose from {tuple(ALGOS)}")
    if not sep:
        return algo, {}
    if algo in ("mle", "constant"):
        raise ValueError(f"row {row!r}: the {algo} row is a reference and takes no settings")
    settings: dict[str, Any] = {}
    for item in spec.split(","):
        field, eq, text = item.partition("=")
        if not (eq and field and text):
            raise ValueError(f"row {row!r}: write its settings as ALGO@FIELD=VALUE[,FIELD=VALUE], e.g. rloo@lr=0.003")
        try:
            settings[field] = json.loads(text)
        except json.JSONDecodeError:
            settings[field] = text
    return algo, settings


ADVERSARIAL_SETTINGS = ("reward", "real_data", "real_pool", "d_kind", "d_warmup_rounds", "d_lr")
"""Row settings that go to the adversarial phase's config, not the agent's: ``reinforce@reward=optimal`` (SeqGAN's
Q of the optimal D*), ``coldgan@real_data=oracle,real_pool=100000`` (D retrained on oracle samples),
``reinforce@d_kind=lstm_from_g,d_warmup_rounds=160,d_lr=0.001`` (another D, warmed up; ``d_lr`` is D's Adam
learning rate, ``d_train.lr``)."""


def oracle_access(settings: dict[str, Any]) -> bool:
    """Whether a row's settings give it oracle access (D* or an oracle-fed D): a diagnostic, never a benchmark row."""
    return settings.get("reward") in OPTIMAL_REWARDS or settings.get("real_data") == "oracle"


def row_label(row: str) -> str:
    """The table label of a row: the algorithm's description, and its settings when it has any (rows with oracle
    access say so)."""
    algo, settings = parse_row(row)
    label = ALGOS[algo] + (f" [{', '.join(f'{k} {v}' for k, v in settings.items())}]" if settings else "")
    return label + (" (DIAGNOSTIC: oracle access)" if oracle_access(settings) else "")


def row_order(rows: Sequence[str]) -> list[str]:
    """Rows in ``ALGOS`` order, the settings of one algorithm after its default row (once each)."""
    return sorted(set(rows), key=lambda r: (list(ALGOS).index(parse_row(r)[0]), "@" in r, r))


def algo_run(row: str, base: TrainConfig) -> TrainConfig:
    """The config of one row, from the REINFORCE ``base`` (every row generates as many sequences per update);
    a row's settings (``parse_row``) replace fields of its agent config, or of the adversarial phase's for
    ``ADVERSARIAL_SETTINGS``."""
    algo, settings = parse_row(row)
    cfg = _algo_config(algo, base)
    adversarial = {k: v for k, v in settings.items() if k in ADVERSARIAL_SETTINGS}
    settings = {k: v for k, v in settings.items() if k not in ADVERSARIAL_SETTINGS}
    if "d_lr" in adversarial:
        adversarial["d_train"] = dataclasses.replace(cfg.adversarial.d_train, lr=adversarial.pop("d_lr"))
    if adversarial:
        cfg = dataclasses.replace(cfg, adversarial=dataclasses.replace(cfg.adversarial, **adversarial))
    try:
        return dataclasses.replace(cfg, agent=dataclasses.replace(cfg.agent, **settings)) if settings else cfg
    except TypeError as exc:
        fields = ", ".join(f.name for f in dataclasses.fields(cfg.agent))
        raise ValueError(
            f"row {row!r}: {type(cfg.agent).__name__} has no such field ({exc}); its fields: {fields}"
        ) from None


def _algo_config(algo: str, base: TrainConfig) -> TrainConfig:
    if algo == "reinforce":
        return base
    if algo == "reinforce_baseline":
        return dataclasses.replace(base, agent=dataclasses.replace(base.agent, baseline="position_mean"))
    if algo == "constant":
        return dataclasses.replace(base, adversarial=dataclasses.replace(base.adversarial, reward="constant"))
    if algo in ("rollout_value", "rloo"):
        return dataclasses.replace(base, agent=dataclasses.replace(base.agent, baseline=algo))
    if algo in ("maligan", "rankgan"):
        return dataclasses.replace(base, adversarial=dataclasses.replace(base.adversarial, reward=algo))
    if algo in ("reinforce_kl", "coldgan"):
        agent = (KLReinforceConfig if algo == "reinforce_kl" else ColdGANConfig)(**dataclasses.asdict(base.agent))
        return dataclasses.replace(base, algo=algo, agent=agent)
    if algo == "grpo":
        a = base.agent
        agent = GRPOConfig(batch_size=a.batch_size, lr=a.lr, grad_clip=a.grad_clip, temperature=a.temperature)
        return dataclasses.replace(base, algo=algo, agent=agent)
    if algo == "ppo":
        return dataclasses.replace(base, algo="ppo", agent=PPOConfig(num_envs=base.agent.batch_size))
    if algo == "a2c":
        return dataclasses.replace(base, algo="a2c", agent=A2CConfig(num_envs=base.agent.batch_size))
    if algo == "mle":
        raise ValueError("mle has no adversarial phase: it is the pre-training every row starts from")
    raise ValueError(f"unknown algorithm {algo!r}: choose from {tuple(ALGOS)}")


@torch.no_grad()
def temperature_sweep(
    generator: Generator, oracle: OracleLSTM, test: torch.Tensor, temperatures: Sequence[float], num_samples: int,
    seed: int, valid: torch.Tensor | None = None,
) -> list[dict[str, float]]:  # fmt: skip
    """NLL-oracle and NLL-test (and with ``valid``, the validation NLL) of ``generator`` at each temperature.
    Every model of a seed draws from the same seeded stream at a given temperature (common random numbers)."""
    out = []
    nll_test = generator.nlls(test, temperatures)  # one pass for every temperature: the values of nll(test, tau)
    nll_valid = generator.nlls(valid, temperatures) if valid is not None else None
    for k, tau in enumerate(temperatures):
        rng = make_rng(derive_seed(seed, "sweep", round(tau * 1000)), generator.device)
        point = {"tau": float(tau), "nll_oracle": nll_oracle(generator, oracle, num_samples, rng, tau),
                 "nll_test": nll_test[k]}  # fmt: skip
        if nll_valid is not None:
            point["nll_valid"] = nll_valid[k]
        out.append(point)
    return out


def frontier_at(sweep: Sequence[dict[str, float]], nll_test: float, key: str = "nll_test") -> float:
    """NLL-oracle on a temperature curve at a given NLL-test (linear interpolation), or NaN outside it.

    Only the curve's useful branch is read: temperatures up to the one with the lowest NLL-test, where
    lowering the temperature trades NLL-test for NLL-oracle (beyond it both get worse). ``key="nll_valid"``
    reads it against the validation NLL instead (sweeps of runs with a validation split).
    """
    pts = sorted(sweep, key=lambda p: p["tau"])
    k = min(range(len(pts)), key=lambda i: pts[i][key])
    branch = sorted(pts[: k + 1], key=lambda p: p[key])
    xs = [p[key] for p in branch]
    ys = [p["nll_oracle"] for p in branch]
    if not xs[0] - 1e-9 <= nll_test <= xs[-1] + 1e-9:
        return math.nan
    return float(np.interp(nll_test, xs, ys))


def run_one(
    algo: str, seed: int, base: TrainConfig, root: Path, device: torch.device, oracle: OracleLSTM,
    temperatures: Sequence[float], sweep_samples: int, resume: bool, report_to: Sequence[str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Train (or reuse) one algorithm for one seed (in ``<root>/<algo>-s<seed>``, from the seed's shared
    ``<root>/pretrain-s<seed>``) and sweep its final generator; returns its record. ``report_to``: trackers of
    each run and pre-training made here (``seqgan_rl.training.tracking``)."""
    pdir = root / f"pretrain-s{seed}"
    run_dir = root / f"{algo}-s{seed}"
    cfg = with_seed(base, seed)
    # a reused pre-training or row must have been made with the requested settings (a clear error if not)
    check_saved_config(pdir / "config.json", dataclasses.asdict(cfg.pretrain), ignore=("runtime",))
    task = OracleTask(oracle)
    if algo == "mle":
        done = (pdir / "pretrained.pt").exists() or (pdir / "pretrain_checkpoint.pt").exists()
        pre = run_pretraining(cfg.pretrain, pdir, device, task, resume=done, report_to=report_to)
        generator, data = pre.generator, pre.data
        summary = {"mle": pre.mle_metrics, "best": {"iteration": 0, **pre.mle_metrics}, "adversarial_wall_s": 0.0}
        summary["final"] = summary["best"]
        curve, seqs_per_update = [{"sequences": 0, **pre.mle_metrics}], 0
    else:
        run_cfg = algo_run(algo, cfg)
        seqs_per_update = run_cfg.agent.sequences_per_update
        check_saved_config(run_dir / "config.json", dataclasses.asdict(run_cfg), ignore=("runtime",))
        finished = RunFolder.open_finished(run_dir, "train", "summary.json") if resume else None
        if finished is not None:
            with finished:
                summary = read_json_file(run_dir / "summary.json")
        else:
            again = resume and (run_dir / "config.json").exists()
            summary = run_training(
                run_cfg, run_dir, device, task, resume=again, pretrain_dir=pdir, report_to=report_to
            ).summary
        generator, _ = load_generator(run_dir / "generator_final.pt", device)
        data = OracleData(**load_torch_file(pdir / "data.pt"))
        rows = [r for r in read_metrics(run_dir / "metrics.csv") if r.get("eval/nll_oracle")]
        curve = [{"sequences": int(r["step"]) * seqs_per_update, **{k: float(r[k]) for k in _NLLS}} for r in rows]
    _, valid = split_validation(OracleData(**load_torch_file(pdir / "data.pt")).train, cfg.pretrain.mle.num_valid, seed)
    sweep = temperature_sweep(generator, oracle, data.test, temperatures, sweep_samples, seed, valid)
    return {
        "algo": algo, "seed": seed, "mle": summary["mle"], "best": summary["best"], "final": summary["final"],
        "sequences": summary["final"]["iteration"] * seqs_per_update, "wall_s": summary["adversarial_wall_s"],
        "threads": torch.get_num_threads(), "curve": curve, "sweep": sweep,
        "temperatures": list(temperatures), "sweep_samples": sweep_samples,
    }  # fmt: skip


def run_comparison(
    base: TrainConfig, seeds: Sequence[int], root: str | os.PathLike, device: torch.device, oracle: OracleLSTM,
    algos: Sequence[str] = tuple(ALGOS), temperatures: Sequence[float] = TEMPERATURES, sweep_samples: int | None = None,
    resume: bool = False, on_record: Callable[[dict[str, Any]], None] | None = None,
    report_to: Sequence[str] | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """Every algorithm for every seed (seed by seed, so a partial run holds whole seeds), in the run folder
    ``root`` (kind ``compare``, locked while it runs). The records are merged into ``<root>/results.json``
    (keyed by algorithm and seed, so separate invocations add up; ``resume`` reuses a finished record with
    the same sweep); returns all the records it holds."""
    for algo in algos:
        if algo != "mle":
            algo_run(algo, base)  # a bad row or setting fails here, before any work
        parse_row(algo)
    if not temperatures:
        raise ValueError("temperatures: give at least one")
    for t in temperatures:
        check_temperature(t, "each of --temperatures")
    n = sweep_samples or base.pretrain.data.num_eval_samples
    config = {"base": dataclasses.asdict(with_seed(base, 0))}
    with RunFolder.open(root, "compare", config, resume=resume, markers=(RESULTS,), what="comparison") as folder:
        merged = {
            (r["algo"], r["seed"]): r for r in (read_json_file(folder.path / RESULTS) if folder.has(RESULTS) else [])
        }
        for seed in seeds:
            for algo in algos:
                old = merged.get((algo, seed))
                if old is not None and old["temperatures"] == list(temperatures) and old["sweep_samples"] == n:
                    record = old
                else:
                    record = run_one(algo, seed, base, folder.path, device, oracle, temperatures, n, resume, report_to)
                    merged[(algo, seed)] = record
                    folder.save_text(RESULTS, json.dumps(list(merged.values()), indent=2))
                if on_record is not None:
                    on_record(record)
    return list(merged.values())


RESULTS = "results.json"


def merge_results(roots: Sequence[str | os.PathLike]) -> list[dict[str, Any]]:
    """The records of several comparison folders (rows spread over processes or machines), keyed by
    (algorithm, seed). A key found in two folders with different records is an error (two runs of one row)."""
    merged: dict[tuple[str, int], dict[str, Any]] = {}
    for root in roots:
        path = Path(root) / RESULTS
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist: run the comparison there first")
        for r in read_json_file(path):
            key = (r["algo"], r["seed"])
            if key in merged and merged[key] != r:
                raise ValueError(f"{r['algo']} seed {r['seed']} is in two folders with different results ({root})")
            merged[key] = r
    return list(merged.values())


# ---------------------------------------------------------------------------------------------- tables
def _mean_std(values: Sequence[float], digits: int = 3) -> str:
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return "–"
    if len(vals) == 1:
        return f"{vals[0]:.{digits}f}"
    return f"{statistics.mean(vals):.{digits}f} ± {statistics.stdev(vals):.{digits}f}"


def _n(values: Sequence[float]) -> int:
    return sum(not math.isnan(v) for v in values)


def _row(*cells: Any) -> str:
    """A markdown table row."""
    return "| " + " | ".join(map(str, cells)) + " |"


def matched_rows(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (algorithm, seed): the final model at temperature 1, MLE + temperature's NLL-oracle at the
    same NLL-test, and each model's own temperature curve at NLL-test = MLE's + each margin."""
    mle = {r["seed"]: r for r in records if r["algo"] == "mle"}
    rows = []
    for r in records:
        if r["seed"] not in mle:
            continue
        m_sweep = mle[r["seed"]]["sweep"]
        at1 = min(r["sweep"], key=lambda p: abs(p["tau"] - 1.0))
        m_at1 = min(m_sweep, key=lambda p: abs(p["tau"] - 1.0))
        temp = frontier_at(m_sweep, at1["nll_test"])
        row = {
            "algo": r["algo"], "seed": r["seed"], "tau1_nll_oracle": at1["nll_oracle"],
            "tau1_nll_test": at1["nll_test"], "mle_temp_nll_oracle": temp, "minus_mle_temp": at1["nll_oracle"] - temp,
        }  # fmt: skip
        for margin in NLL_TEST_MARGINS:
            row[f"oracle_at_mle_test+{margin}"] = frontier_at(r["sweep"], m_at1["nll_test"] + margin)
        rows.append(row)
    return rows


_T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
          12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}  # fmt: skip
"""Student's t, 97.5% quantile, by degrees of freedom (in between: the next smaller tabulated df, wider)."""


def paired_interval(deltas: Sequence[float]) -> dict[str, float]:
    """Mean, standard deviation and 95% t-interval of per-seed paired differences (NaNs dropped); the
    interval is NaN with fewer than two values."""
    vals = [d for d in deltas if not math.isnan(d)]
    n = len(vals)
    out = {"n": n, "mean": math.nan, "std": math.nan, "lo": math.nan, "hi": math.nan, "max": math.nan}
    if not vals:
        return out
    out["mean"], out["max"] = statistics.mean(vals), max(vals)
    if n >= 2:
        out["std"] = statistics.stdev(vals)
        t = _T_975[max(df for df in _T_975 if df <= n - 1)] if n - 1 <= 30 else 1.96
        half = t * out["std"] / math.sqrt(n)
        out["lo"], out["hi"] = out["mean"] - half, out["mean"] + half
    return out


def leaderboard(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row an algorithm, ranked by its mean paired Δ: the final model's NLL-oracle at temperature 1 minus
    the same seed's MLE + temperature at the same NLL-test (``matched_rows``), with its std, 95% interval and
    largest per-seed value; ``distinguishable`` is False where the interval contains 0 (or cannot be formed),
    ``every_seed_below`` True where every seed's Δ is <= -0.05. Also final/best NLLs (means), wall time and
    sequences per second of the adversarial phase."""
    rows = matched_rows(records)
    out = []
    for a in row_order([r["algo"] for r in records]):
        rs = [r for r in records if r["algo"] == a]
        stats = paired_interval([m["minus_mle_temp"] for m in rows if m["algo"] == a])
        wall = sum(r["wall_s"] for r in rs)
        out.append({
            "algo": a, "seeds": len(rs), **{f"delta_{k}": v for k, v in stats.items()},
            "distinguishable": a != "mle" and not math.isnan(stats["lo"]) and (stats["hi"] < 0 or stats["lo"] > 0),
            "every_seed_below": stats["n"] == len(rs) and stats["max"] <= -0.05,
            "final_nll_oracle": statistics.mean(r["final"]["eval/nll_oracle"] for r in rs),
            "final_nll_test": statistics.mean(r["final"]["eval/nll_test"] for r in rs),
            "best_nll_oracle": statistics.mean(r["best"]["eval/nll_oracle"] for r in rs),
            "wall_s": wall / len(rs), "sequences_per_s": sum(r["sequences"] for r in rs) / wall if wall else math.nan,
        })  # fmt: skip
    return sorted(out, key=lambda r: math.inf if math.isnan(r["delta_mean"]) else r["delta_mean"])


def validation_rows(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (row, seed) of runs with a validation split: the final model's NLL-oracle at temperature 1 minus the
    same seed's MLE + temperature at the same *validation* NLL, ``delta_valid`` (NaN where the MLE curve does not
    reach it). The criterion rows are tuned by: it reads neither the test set nor the best-of-run oracle score."""
    mle = {r["seed"]: r["sweep"] for r in records if r["algo"] == "mle"}
    out = []
    for r in records:
        at1 = min(r["sweep"], key=lambda p: abs(p["tau"] - 1.0))
        if r["algo"] == "mle" or r["seed"] not in mle or "nll_valid" not in at1:
            continue
        ref = frontier_at(mle[r["seed"]], at1["nll_valid"], key="nll_valid")
        out.append({"algo": r["algo"], "seed": r["seed"], "nll_oracle": at1["nll_oracle"],
                    "nll_valid": at1["nll_valid"], "delta_valid": at1["nll_oracle"] - ref})  # fmt: skip
    return out


def tuning_choices(records: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Per algorithm, the row (setting) of lowest mean ``delta_valid`` over its seeds (``validation_rows``);
    a row whose mean cannot be formed (the MLE curve does not reach it) is never chosen over one that can."""
    vrows = validation_rows(records)
    means: dict[str, float] = {}
    for row in row_order([v["algo"] for v in vrows]):
        vals = [v["delta_valid"] for v in vrows if v["algo"] == row]
        known = [d for d in vals if not math.isnan(d)]
        means[row] = statistics.mean(known) if len(known) == len(vals) else math.inf
    choices: dict[str, str] = {}
    for row, mean in means.items():
        algo, settings = parse_row(row)
        if oracle_access(settings):  # a diagnostic is tuned among its own kind, never chosen for the algorithm
            algo = f"{algo}@{settings['reward'] if settings.get('reward') in OPTIMAL_REWARDS else 'oracle-fed'}"
        if algo not in choices or mean < means[choices[algo]]:
            choices[algo] = row
    return choices


def _tuning_outputs(records: Sequence[dict[str, Any]], out: Path, name: str) -> list[Path]:
    """``<name>_tuning.md``: every row's Δ_valid per seed and the setting each algorithm's row is chosen with."""
    vrows = validation_rows(records)
    if not vrows:
        return []
    seeds = sorted({v["seed"] for v in vrows})
    listed = ", ".join(map(str, seeds))
    chosen = set(tuning_choices(records).values())
    lines = [
        f"# Tuning: each setting against MLE + temperature at equal validation NLL (seeds {listed})",
        "",
        "Δ_valid (nats, lower is better) = the final model's NLL-oracle at τ 1 minus the same seed's MLE generator",
        "cooled to the same validation NLL (sequences held out of the training data): neither the test set nor the",
        "best-of-run oracle score is read. Each algorithm's chosen setting (**chosen**) has the lowest mean.",
        "",
        "| algorithm | " + " | ".join(f"s{s} Δ_valid" for s in seeds) + " | mean Δ_valid | NLL-oracle / NLL-valid | |",
        "|---|" + "---|" * len(seeds) + "---|---|---|",
    ]
    for row in row_order([v["algo"] for v in vrows]):
        by_seed = {v["seed"]: v for v in vrows if v["algo"] == row}
        deltas = [by_seed[s]["delta_valid"] for s in seeds if s in by_seed]
        cells = [f"{by_seed[s]['delta_valid']:+.3f}" if s in by_seed else "—" for s in seeds]
        nlls = [statistics.mean(v[k] for v in by_seed.values()) for k in ("nll_oracle", "nll_valid")]
        mean = "–" if any(math.isnan(d) for d in deltas) else f"{statistics.mean(deltas):+.3f}"
        lines.append(_row(row_label(row), *cells, mean, f"{nlls[0]:.3f} / {nlls[1]:.3f}",
                          "**chosen**" if row in chosen else ""))  # fmt: skip
    path = out / f"{name}_tuning.md"
    path.write_text("\n".join(lines) + "\n")
    return [path]


def _leaderboard_outputs(records: Sequence[dict[str, Any]], out: Path, name: str) -> list[Path]:
    """``<name>_leaderboard.md/.csv``: the ranking of ``leaderboard``."""
    board = leaderboard(records)
    csv_path = out / f"{name}_leaderboard.csv"
    with csv_path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(board[0]))
        w.writeheader()
        w.writerows(board)
    seeds = sorted({r["seed"] for r in records})
    threads = sorted({r["threads"] for r in records})
    lines = [
        f"# Leaderboard: paired by seed against MLE + temperature ({len(seeds)} seeds: {', '.join(map(str, seeds))})",
        "",
        "Δ (nats, lower is better) = the final model's NLL-oracle at τ 1 minus the NLL-oracle of the same seed's MLE",
        "generator cooled to the same NLL-test (its temperature curve, interpolated); MLE + temperature itself is 0",
        "by construction. Mean, std and 95% t-interval of the per-seed differences; *max* is the worst seed.",
        "Ranked by mean Δ. **no**: the interval contains 0, not distinguishable from MLE + temperature.",
        f"Wall and sequences/s: adversarial phase per run (torch threads {threads}). NLLs: means over seeds.",
        "",
        "| rank | algorithm | Δ mean ± std | 95% interval | max Δ | beyond noise | every seed ≤ −0.05 | "
        "final NLL-oracle / NLL-test | best NLL-oracle | wall s | seq/s | seeds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(board, 1):
        ci = "–" if math.isnan(r["delta_lo"]) else f"[{r['delta_lo']:+.3f}, {r['delta_hi']:+.3f}]"
        if r["algo"] == "mle":  # MLE at tau 1 lies on its own curve: both rows are 0 by construction
            lines.append(_row(i, "MLE + temperature (the reference curve)", "0 (reference)", *["–"] * 9))
            label, verdict = "MLE only (τ 1)", "reference"
        else:
            label, verdict = row_label(r["algo"]), ("yes" if r["distinguishable"] else "**no**")
        dm = "–" if math.isnan(r["delta_mean"]) else f"{r['delta_mean']:+.3f} ± {r['delta_std']:.3f}"
        if r["delta_n"] < r["seeds"]:
            dm += f" (n {r['delta_n']})"
        worst = "–" if math.isnan(r["delta_max"]) else f"{r['delta_max']:+.3f}"
        lines.append(_row(
            i, label, dm, ci, worst, verdict, "yes" if r["every_seed_below"] else "no",
            f"{r['final_nll_oracle']:.3f} / {r['final_nll_test']:.3f}", f"{r['best_nll_oracle']:.3f}",
            f"{r['wall_s']:.0f}", "–" if math.isnan(r["sequences_per_s"]) else f"{r['sequences_per_s']:.1f}",
            r["seeds"],
        ))  # fmt: skip
    md_path = out / f"{name}_leaderboard.md"
    md_path.write_text("\n".join(lines) + "\n")
    return [csv_path, md_path]


def fixed_rows(records: Sequence[dict[str, Any]], levels: Sequence[float] = FIXED_NLL_TEST) -> list[dict[str, Any]]:
    """Per (algorithm, seed, NLL-test level): NLL-oracle on the model's temperature curve there, the same seed's
    MLE curve there, and their difference Δ (NaN where a curve does not reach the level)."""
    mle = {r["seed"]: r["sweep"] for r in records if r["algo"] == "mle"}
    rows = []
    for r in records:
        for x in levels:
            own = frontier_at(r["sweep"], x)
            ref = frontier_at(mle[r["seed"]], x) if r["seed"] in mle else math.nan
            rows.append({"algo": r["algo"], "seed": r["seed"], "nll_test": x, "nll_oracle": own,
                         "mle_nll_oracle": ref, "delta": own - ref})  # fmt: skip
    return rows


def _fixed_section(records: Sequence[dict[str, Any]], algos: Sequence[str], published: bool) -> list[str]:
    """The markdown section of ``fixed_rows``: each curve at the published NLL-test values, and Δ to MLE's."""
    rows = fixed_rows(records)
    head = "| curve | " + " | ".join(f"NLL-test {x:g}" for x in FIXED_NLL_TEST) + " |"
    rule = "|---|" + "---|" * len(FIXED_NLL_TEST)
    lines = [
        "",
        "**At fixed NLL-test values** (where the published curves are read): NLL-oracle on each model's temperature",
        "curve, mean ± std over seeds (n: seeds whose curve reaches that NLL-test; – none does)."
        + (" Published curves on the same oracle first (REFERENCE.md §10)." if published else ""),
        "",
        head,
        rule,
    ]
    if published:
        lines += [_row(f"*{label}*", *(f"*{pts[x]:.2f}*" for x in FIXED_NLL_TEST)) for label, pts in PUBLISHED.items()]
    cell = lambda vals: f"{_mean_std(vals)} (n {_n(vals)})" if _n(vals) else "–"  # noqa: E731
    for a in algos:
        lines.append(_row(row_label(a), *(cell([r["nll_oracle"] for r in rows if r["algo"] == a and r["nll_test"] == x])
                                      for x in FIXED_NLL_TEST)))  # fmt: skip
    lines += [
        "",
        "Δ = the curve minus the same seed's MLE curve at that NLL-test (paired by seed; < 0: below MLE +",
        "temperature). Mean ± std, then each seed's Δ in seed order (– where a curve does not reach that NLL-test).",
        "",
        head,
        rule,
    ]
    for a in (a for a in algos if a != "mle"):
        cells = []
        for x in FIXED_NLL_TEST:
            deltas = [
                r["delta"] for r in sorted(rows, key=lambda r: r["seed"]) if r["algo"] == a and r["nll_test"] == x
            ]
            stats = paired_interval(deltas)
            seeds = ", ".join("–" if math.isnan(d) else f"{d:+.3f}" for d in deltas)
            cells.append("–" if not stats["n"] else f"{_mean_std_of(stats)} [{seeds}]")
        lines.append(_row(row_label(a), *cells))
    return lines


def _mean_std_of(stats: dict[str, float]) -> str:
    return f"{stats['mean']:+.3f}" + ("" if math.isnan(stats["std"]) else f" ± {stats['std']:.3f}")


def write_outputs(
    records: Sequence[dict[str, Any]], out_dir: str | os.PathLike, name: str, published: bool = False
) -> list[Path]:
    """``<name>.md/.csv`` (results), ``<name>_frontier.md/.csv`` (temperature sweeps, matched NLL-test, the
    curves at fixed NLL-test values), ``<name>_leaderboard.md/.csv`` (the paired ranking), ``<name>_curves.png``
    and ``<name>_frontier.png``. ``published``: the records are on the paper's oracle, so the published curves
    (``PUBLISHED``) are shown beside them. Returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    algos = row_order([r["algo"] for r in records])
    by = {a: sorted((r for r in records if r["algo"] == a), key=lambda r: r["seed"]) for a in algos}
    paths = []

    # results table, one row per (algorithm, seed)
    fields = ["algo", "seed", "final_nll_oracle", "final_nll_test", "best_nll_oracle", "best_nll_test",
              "best_sequences", "sequences", "wall_s", "threads"]  # fmt: skip
    csv_path = out / f"{name}.csv"
    with csv_path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(fields)
        for a in algos:
            for r in by[a]:
                nlls = [r[when][k] for when in ("final", "best") for k in _NLLS]
                per = r["sequences"] / max(r["final"]["iteration"], 1)
                best_sequences = int(r["best"]["iteration"] * per)
                w.writerow([a, r["seed"], *nlls, best_sequences, r["sequences"], r["wall_s"], r["threads"]])
    paths.append(csv_path)
    seeds = sorted({r["seed"] for r in records})
    lines = [
        f"# Policy-gradient algorithms on SeqGAN's reward: {len(seeds)} seeds ({', '.join(map(str, seeds))})",
        "",
        "Mean ± std over seeds; NLL in nats per token (NLL-oracle: quality, lower is better; NLL-test: coverage of",
        "held-out oracle data, lower is better). All rows of a seed start from the same MLE checkpoint. *Final* is the",
        "model after the last update (what a user gets); *best* is the lowest NLL-oracle seen during training (chosen",
        "with the oracle, so optimistic). Sequences: generated for generator updates. Wall: adversarial phase only.",
        "",
        "| algorithm | final NLL-oracle | final NLL-test | best NLL-oracle | NLL-test at best | sequences | wall s "
        "| seeds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for a in algos:
        rs = by[a]
        nlls = [_mean_std([r[w][k] for r in rs]) for w in ("final", "best") for k in _NLLS]
        lines.append(_row(row_label(a), *nlls, rs[0]["sequences"], _mean_std([r["wall_s"] for r in rs], 0), len(rs)))
    md_path = out / f"{name}.md"
    md_path.write_text("\n".join(lines) + "\n")
    paths.append(md_path)

    # temperature sweeps and the matched-NLL-test table
    sweep_csv = out / f"{name}_frontier.csv"
    with sweep_csv.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["algo", "seed", "tau", "nll_oracle", "nll_test"])
        for a in algos:
            for r in by[a]:
                for p in r["sweep"]:
                    w.writerow([a, r["seed"], p["tau"], p["nll_oracle"], p["nll_test"]])
    paths.append(sweep_csv)
    rows = matched_rows(records)
    margins = [f"oracle_at_mle_test+{m}" for m in NLL_TEST_MARGINS]
    lines = [
        "# Quality at matched diversity: temperature sweeps of every final model",
        "",
        f"Temperatures {records[0]['temperatures']}, {records[0]['sweep_samples']} samples for NLL-oracle at each."
        " Mean ± std over seeds (n: seeds where the",
        "curve reaches that NLL-test; a curve is read on its branch below the temperature of lowest NLL-test).",
        "",
        "**At the model's own diversity**: its NLL-oracle and NLL-test at temperature 1, and the NLL-oracle of the",
        "MLE generator cooled to the same NLL-test (interpolated). Δ < 0: the algorithm beats MLE + temperature.",
        "",
        "| algorithm | NLL-test (τ 1) | NLL-oracle (τ 1) | MLE + temperature NLL-oracle | Δ | n |",
        "|---|---|---|---|---|---|",
    ]
    matched = ("tau1_nll_test", "tau1_nll_oracle", "mle_temp_nll_oracle", "minus_mle_temp")
    for a in algos:
        cols = [[r[k] for r in rows if r["algo"] == a] for k in matched]
        lines.append(_row(row_label(a), *map(_mean_std, cols), _n(cols[-1])))
    lines += [
        "",
        "**At a fixed diversity budget**: NLL-oracle on each model's temperature curve where its NLL-test is the",
        "MLE generator's (τ 1) plus a margin; lower is better (the quality each algorithm buys for that NLL-test).",
        "",
        "| algorithm | " + " | ".join(f"NLL-test = MLE + {m}" for m in NLL_TEST_MARGINS) + " |",
        "|---|" + "---|" * len(NLL_TEST_MARGINS),
    ]
    for a in algos:
        rs = [r for r in rows if r["algo"] == a]
        cells = [f"{_mean_std([r[k] for r in rs])} (n {_n([r[k] for r in rs])})" for k in margins]
        lines.append(_row(row_label(a), *cells))
    lines += _fixed_section(records, algos, published)
    fmd = out / f"{name}_frontier.md"
    fmd.write_text("\n".join(lines) + "\n")
    paths.append(fmd)
    fixed_csv = out / f"{name}_fixed.csv"
    with fixed_csv.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["algo", "seed", "nll_test", "nll_oracle", "mle_nll_oracle", "delta"])
        w.writeheader()
        w.writerows(fixed_rows(records))
    paths.append(fixed_csv)
    paths += _leaderboard_outputs(records, out, name)
    paths += _tuning_outputs(records, out, name)
    try:
        paths += _plots(by, out, name, published)
    except ImportError:
        log.warning("matplotlib is not installed: no plots (pip install matplotlib)")
    return paths


_OUTSIDE = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0)}


def _plots(by: dict[str, list[dict[str, Any]]], out: Path, name: str, published: bool = False) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {a: plt.get_cmap("tab20")(i % 20) for i, a in enumerate(by)}  # up to 20 rows: more than C0-C9
    wide = len(by) > 8  # many rows: the legends go beside the axes, not over the curves
    fig, axes = plt.subplots(1, 2, figsize=(16 if wide else 12, 4.5))
    for a, rs in by.items():
        for ax, key in zip(axes, _NLLS, strict=True):
            xs = sorted({p["sequences"] for r in rs for p in r["curve"]})
            if a == "mle":
                mean = statistics.mean(r["curve"][0][key] for r in rs)
                ax.axhline(mean, color=colors[a], ls=":", label=row_label(a))
                continue
            ys = np.array([[next((p[key] for p in r["curve"] if p["sequences"] == x), np.nan) for x in xs] for r in rs])
            mean, std = np.nanmean(ys, axis=0), np.nanstd(ys, axis=0)
            ax.plot(xs, mean, "o-", ms=3, color=colors[a], label=row_label(a))
            ax.fill_between(xs, mean - std, mean + std, color=colors[a], alpha=0.15)
    for ax, label in zip(
        axes, ("NLL-oracle (lower = better quality)", "NLL-test (lower = better coverage)"), strict=True
    ):
        ax.set(xlabel="sequences generated for generator updates", ylabel=label)
        ax.grid(alpha=0.3)
    axes[-1 if wide else 0].legend(fontsize=8, **_OUTSIDE if wide else {})
    n_seeds = max(len(rs) for rs in by.values())
    fig.suptitle(f"NLL-oracle and NLL-test against sequences generated (mean ± std, {n_seeds} seeds)")
    fig.tight_layout()
    curves = out / f"{name}_curves.png"
    fig.savefig(curves, dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(11.5 if wide else 7, 5.5))
    for a, rs in by.items():
        taus = [p["tau"] for p in rs[0]["sweep"]]
        per_seed = np.array([[[p["nll_test"], p["nll_oracle"]] for p in r["sweep"]] for r in rs])  # (seeds, taus, 2)
        xs, ys = per_seed.mean(axis=0).T
        ax.plot(xs, ys, "o-", ms=4, color=colors[a], label=row_label(a))
        ax.plot(per_seed[..., 0].T, per_seed[..., 1].T, "-", lw=0.5, color=colors[a], alpha=0.35)  # one line a seed
        i1 = min(range(len(taus)), key=lambda i: abs(taus[i] - 1.0))
        ax.plot(xs[i1], ys[i1], "*", ms=13, color=colors[a], mec="k")
        for i in (0, len(taus) - 1):
            ax.annotate(f"τ {taus[i]:g}", (xs[i], ys[i]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    if published:  # the published curves, read at the fixed NLL-test values (cold branch), and their τ 1 points
        for (label, pts), marker in zip(PUBLISHED.items(), ("s", "D", "^"), strict=True):
            line = ax.plot(FIXED_NLL_TEST, [pts[x] for x in FIXED_NLL_TEST], marker + "--", ms=5, color="0.3",
                           mfc="none", lw=0.8, label=f"published: {label}")  # fmt: skip
            ax.plot(pts["tau1"][1], pts["tau1"][0], marker, ms=8, color=line[0].get_color())
    ax.set(xlabel="NLL-test (lower = better coverage)", ylabel="NLL-oracle (lower = better quality)")
    ax.set_title("Temperature sweeps of the final models (★ τ = 1; mean over seeds, thin: per seed)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, **_OUTSIDE if wide else {})
    fig.tight_layout()
    frontier = out / f"{name}_frontier.png"
    fig.savefig(frontier, dpi=100)
    plt.close(fig)
    return [curves, frontier]
