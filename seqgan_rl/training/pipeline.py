"""The whole pipeline behind ``scripts/train_agent.py``, for every task and agent: pre-train (or load the
pre-training), build the reward, the agent and the callbacks (``build_trainer``), train, then write the final
generator, ``summary.json`` and the curves. Everything is resumable from atomic checkpoints.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch

from seqgan_rl.agents import make_agent
from seqgan_rl.config import TrainConfig
from seqgan_rl.envs.rollout import ConstantReward, Reward, SeqGANReward
from seqgan_rl.models.discriminator import Discriminator
from seqgan_rl.models.generator import Generator
from seqgan_rl.training.callbacks import CheckpointCallback, DiscriminatorRetrainCallback, EvalCallback
from seqgan_rl.training.evaluators import Evaluator
from seqgan_rl.training.plots import plot_training_curves
from seqgan_rl.training.pretrain import CHECKPOINT as PRETRAIN_CHECKPOINT
from seqgan_rl.training.pretrain import FINAL as PRETRAINED
from seqgan_rl.training.pretrain import run_pretraining
from seqgan_rl.training.run_folder import prepare_run_folder, save_generator
from seqgan_rl.training.tasks import OracleTask, Task
from seqgan_rl.training.trainer import CHECKPOINT, Trainer
from seqgan_rl.utils import atomic_write_text, derive_seed

log = logging.getLogger(__name__)

SUMMARY = "summary.json"
FINAL_GENERATOR = "generator_final.pt"


def make_reward(config: TrainConfig, generator: Generator, discriminator: Discriminator) -> Reward:
    """SeqGAN's MC-rollout Q (at the agent's temperature), or the constant-reward control."""
    adv = config.adversarial
    if adv.reward == "constant":
        return ConstantReward(adv.constant_reward)
    temperature = config.agent.temperature
    return SeqGANReward(generator, discriminator, adv.num_rollouts, temperature, adv.rollout_update_rate)


def build_trainer(
    config: TrainConfig,
    generator: Generator,
    discriminator: Discriminator,
    data: Any,
    evaluator: Evaluator,
    device: torch.device,
    out_dir: str | os.PathLike,
) -> Trainer:
    """The adversarial phase of ``config`` from pre-trained models: the reward, the agent, and the callbacks
    (D retraining when the reward uses D, evaluation, checkpoints).

    Args:
        data: the task's tokens (``.train``: D's real data; ``.test``: held-out, for D's diagnostics).
        evaluator: what the evaluation callback measures.
    """
    adv = config.adversarial
    reward = make_reward(config, generator, discriminator)
    agent = make_agent(
        config.algo, config.agent, generator, reward, seed=derive_seed(config.seed, config.algo), device=device,
        total_updates=adv.iterations,
    )  # fmt: skip
    callbacks = []
    if adv.reward == "mc":
        callbacks.append(DiscriminatorRetrainCallback(discriminator, data.train, data.test, adv.d_train, adv.d_every))
    callbacks += [EvalCallback(evaluator, adv.eval_every), CheckpointCallback(adv.checkpoint_every)]
    return Trainer(
        agent, reward, callbacks, iterations=adv.iterations, seed=config.seed, device=device, out_dir=out_dir
    )


class TrainResult(NamedTuple):
    generator: Generator
    discriminator: Discriminator
    summary: dict[str, Any]
    """What ``summary.json`` holds: the MLE, start, best and final evaluations, wall times."""
    evaluator: Evaluator


def run_training(
    config: TrainConfig,
    out_dir: str | os.PathLike,
    device: torch.device,
    task: Task | None = None,
    resume: bool = False,
    pretrain_dir: str | os.PathLike | None = None,
    progress: Callable[..., Any] | None = None,
) -> TrainResult:
    """Pre-training (or loading it) then the adversarial phase; writes everything under ``out_dir``.

    Args:
        config: the run (``seqgan_rl.presets.train_preset`` gives the presets).
        out_dir: run folder: ``config.json``, ``pretrain/``, ``metrics.csv``, ``adversarial_checkpoint.pt``,
            ``generator_final.pt``, ``summary.json``, ``curves.png`` (and the task's files: ``vocab.json``).
        device: where the models live.
        task: the data and its evaluator; ``None``: the paper's oracle benchmark.
        resume: continue an interrupted run in ``out_dir``. Without it an existing run is an error.
        pretrain_dir: use (or create) the pre-training in this folder instead of ``out_dir/pretrain``:
            runs that share it start from the same MLE checkpoint (controls).
        progress: a tqdm-like factory, or ``None``.
    """
    task = task if task is not None else OracleTask()
    task.check(config.pretrain)
    out = prepare_run_folder(out_dir, dataclasses.asdict(config), resume, (CHECKPOINT, SUMMARY), what="adversarial run")
    task.write_files(out)
    pdir = Path(pretrain_dir) if pretrain_dir is not None else out / "pretrain"
    pre_resume = resume or (pdir / PRETRAINED).exists() or (pdir / PRETRAIN_CHECKPOINT).exists()
    t0 = time.perf_counter()
    pre = run_pretraining(config.pretrain, pdir, device, task, resume=pre_resume, progress=progress)
    pretrain_s = time.perf_counter() - t0

    trainer = build_trainer(config, pre.generator, pre.discriminator, pre.data, pre.evaluator, device, out)
    ckpt = out / CHECKPOINT
    if resume and ckpt.exists():
        trainer.load_checkpoint(ckpt)
    trainer.train(progress)

    save_generator(trainer.generator, out / FINAL_GENERATOR, task.vocab)
    evals = next(cb for cb in trainer.callback.callbacks if isinstance(cb, EvalCallback))
    summary = {
        **task.summary(), "preset": config.preset, "seed": config.seed, "algo": config.algo,
        "reward": config.adversarial.reward, "iterations": trainer.iteration, "mle": pre.mle_metrics,
        "start": evals.start, "best": evals.best, "final": evals.last, "pretrain_wall_s": round(pretrain_s, 1),
        "adversarial_wall_s": round(trainer.elapsed, 1), "threads": torch.get_num_threads(), "device": str(device),
    }  # fmt: skip
    atomic_write_text(json.dumps(summary, indent=2), out / SUMMARY)
    try:
        title = f"{task.name}, {config.algo}, preset {config.preset}, seed {config.seed}"
        paper = isinstance(task, OracleTask) and task.paper
        plot_training_curves(
            out / "metrics.csv", out / "curves.png", pre.mle_metrics, title, pre.evaluator.curves, paper
        )
    except ImportError:
        log.warning("matplotlib is not installed: no curves.png (pip install matplotlib)")
    return TrainResult(trainer.generator, pre.discriminator, summary, pre.evaluator)
