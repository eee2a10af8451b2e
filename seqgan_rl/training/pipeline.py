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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch

from seqgan_rl import distributed
from seqgan_rl.agents import make_agent
from seqgan_rl.config import OPTIMAL_REWARDS, TrainConfig
from seqgan_rl.data.oracle_data import OracleFedReal
from seqgan_rl.envs.rollout import ConstantReward, MaliGANReward, Reward, SeqGANReward
from seqgan_rl.models.discriminator import Discriminator, Ranker
from seqgan_rl.models.generator import Generator
from seqgan_rl.models.optimal import OptimalDiscriminator
from seqgan_rl.models.oracle import OracleLSTM
from seqgan_rl.models.recurrent_discriminator import RecurrentDiscriminator
from seqgan_rl.training.callbacks import CheckpointCallback, DiscriminatorRetrainCallback, EvalCallback
from seqgan_rl.training.evaluators import Evaluator
from seqgan_rl.training.plots import plot_training_curves
from seqgan_rl.training.pretrain import CHECKPOINT as PRETRAIN_CHECKPOINT
from seqgan_rl.training.pretrain import FINAL as PRETRAINED
from seqgan_rl.training.pretrain import check_pretraining, run_pretraining, runtime
from seqgan_rl.training.run_folder import MANIFEST, Folder, RunFolder, open_folder, save_generator
from seqgan_rl.training.tasks import OracleTask, Task
from seqgan_rl.training.tracking import Tracking
from seqgan_rl.training.trainer import CHECKPOINT, Trainer
from seqgan_rl.utils import derive_seed

log = logging.getLogger(__name__)

SUMMARY = "summary.json"
FINAL_GENERATOR = "generator_final.pt"


def make_reward(
    config: TrainConfig, generator: Generator, discriminator: Discriminator, oracle: OracleLSTM | None = None
) -> Reward:
    """SeqGAN's MC-rollout Q (at the agent's temperature; with a ``Ranker``: RankGAN's; with ``reward="optimal"``:
    of the Bayes-optimal D* of ``oracle`` and the live generator), MaliGAN's sequence reward, or the constant
    control."""
    adv = config.adversarial
    if adv.reward == "constant":
        return ConstantReward(adv.constant_reward)
    if adv.reward in OPTIMAL_REWARDS:
        if oracle is None:
            raise ValueError(
                f"reward={adv.reward!r} is D* of the oracle benchmark: it needs the oracle (not real text)"
            )
        log = adv.reward == "optimal_log"
        discriminator = OptimalDiscriminator(oracle, generator, config.agent.temperature, log=log)
    if adv.reward.startswith("maligan"):
        return MaliGANReward(discriminator, "d" if adv.reward == "maligan_d" else "odds")
    return SeqGANReward(generator, discriminator, adv.num_rollouts, config.agent.temperature, adv.rollout_update_rate)


def build_trainer(
    config: TrainConfig, generator: Generator, discriminator: Discriminator, data: Any, evaluator: Evaluator,
    device: torch.device, out: str | os.PathLike | Folder, oracle: OracleLSTM | None = None,
) -> Trainer:  # fmt: skip
    """The adversarial phase of ``config`` from pre-trained models: the reward, the agent, and the callbacks
    (D retraining when the reward uses D, evaluation, checkpoints).

    Args:
        data: the task's tokens (``.train``: D's real data; ``.test``: held-out, for D's diagnostics).
        evaluator: what the evaluation callback measures.
        out: the folder to write to (a path, or an open ``RunFolder``).
        oracle: the oracle benchmark's oracle (what ``reward="optimal"`` and ``real_data="oracle"`` need).
    """
    adv = config.adversarial
    if adv.reward == "rankgan":  # RankGAN: D's pre-trained CNN becomes the ranker's feature map
        if distributed.enabled():
            raise ValueError("reward='rankgan' runs in one process: start it without torchrun")
        rng = torch.Generator().manual_seed(derive_seed(config.seed, "rankgan"))
        discriminator = Ranker.from_discriminator(discriminator, data.train, rng)
    if adv.d_kind == "lstm_from_g":  # a fresh D from G's weights, retrained in place of the pre-trained one
        if distributed.enabled():
            raise ValueError("d_kind='lstm_from_g' runs in one process: start it without torchrun")
        discriminator = RecurrentDiscriminator.from_generator(generator)
    reward = make_reward(config, generator, discriminator, oracle)
    agent = make_agent(
        config.algo, config.agent, generator, reward, seed=derive_seed(config.seed, config.algo), device=device,
        total_updates=adv.iterations,
    )  # fmt: skip
    callbacks = []
    if adv.reward != "constant" and adv.reward not in OPTIMAL_REWARDS:  # the reward scores with D: retrain it
        real_source = None
        if adv.real_data == "oracle":
            if oracle is None:
                raise ValueError(
                    "real_data='oracle' draws D's real data from the oracle: it needs the oracle benchmark"
                )
            seed = derive_seed(config.seed, "oracle-fed-real")
            real_source = OracleFedReal(oracle, [data.train, data.test], adv.real_pool, seed)
        callbacks.append(
            DiscriminatorRetrainCallback(
                discriminator,
                data.train,
                data.test,
                adv.d_train,
                adv.d_every,
                real_source=real_source,
                warmup_rounds=adv.d_warmup_rounds,
            )
        )
    callbacks += [EvalCallback(evaluator, adv.eval_every), CheckpointCallback(adv.checkpoint_every)]
    return Trainer(agent, reward, callbacks, iterations=adv.iterations, seed=config.seed, device=device, out_dir=out)


class TrainResult(NamedTuple):
    generator: Generator
    discriminator: Discriminator
    summary: dict[str, Any]
    """What ``summary.json`` holds: the MLE, start, best and final evaluations, wall times."""
    evaluator: Evaluator


def run_training(
    config: TrainConfig, out_dir: str | os.PathLike, device: torch.device, task: Task | None = None,
    resume: bool = False, pretrain_dir: str | os.PathLike | None = None, progress: Callable[..., Any] | None = None,
    force: bool = False, report_to: Sequence[str] | None = None,
) -> TrainResult:  # fmt: skip
    """Pre-training (or loading it) then the adversarial phase; writes everything under ``out_dir``.

    Args:
        config: the run (``seqgan_rl.presets.train_preset`` gives the presets).
        out_dir: run folder (``seqgan_rl.training.run_folder``: locked while the run writes, every file
            checksummed): ``run.json``, ``config.json``, ``pretrain/``, ``metrics.csv``,
            ``adversarial_checkpoint.pt``, ``generator_final.pt``, ``summary.json``, ``curves.png`` (and the
            task's files: ``vocab.json``).
        device: where the models live.
        task: the data and its evaluator; ``None``: the paper's oracle benchmark.
        resume: continue an interrupted run in ``out_dir`` (killed anywhere, it ends as a straight run does).
            Without it an existing run is an error; with it, a folder without one is.
        pretrain_dir: use (or create) the pre-training in this folder instead of ``out_dir/pretrain``:
            runs that share it start from the same MLE checkpoint (controls).
        progress: a tqdm-like factory, or ``None``.
        force: write into a non-empty folder that holds no run of this kind.
        report_to: trackers that also get the metrics and the config (``seqgan_rl.training.tracking``:
            ``check_report_to``'s list); ``None``: TensorBoard events of the adversarial phase when installed.

    Raises:
        RunFolderError: the folder cannot be used as asked (in use, not a run of this kind, corrupt...).
        NonFiniteError: training produced a NaN or infinite value, or diverged (named, with the step); the
            last checkpoint is intact and ``resume`` continues from it.
    """
    task = task if task is not None else OracleTask()
    task.check(config.pretrain)
    config_dict = {**dataclasses.asdict(config), "runtime": runtime(device)}
    claim = {"resume": resume, "markers": (CHECKPOINT, SUMMARY, f"pretrain/{MANIFEST}"), "force": force,
             "what": "adversarial run"}  # fmt: skip
    pdir = Path(pretrain_dir) if pretrain_dir is not None else Path(out_dir) / "pretrain"
    pre_resume = resume or (pdir / PRETRAINED).exists() or (pdir / PRETRAIN_CHECKPOINT).exists()

    def check_folders() -> None:  # both folders, before either is written: a refusal leaves both as they were
        RunFolder.check(out_dir, "train", config_dict, **claim)
        check_pretraining(config.pretrain, pdir, device, resume=pre_resume)

    distributed.on_main(check_folders)
    with open_folder(lambda: RunFolder.open(out_dir, "train", config_dict, **claim), out_dir) as folder:
        task.write_files(folder)
        tracking = None if report_to is None else Tracking(report_to, folder.path, config_dict, folder.writes)
        try:
            t0 = time.perf_counter()
            pre = run_pretraining(
                config.pretrain, pdir, device, task, resume=pre_resume, progress=progress,
                reporter=tracking and tracking.phase("pretrain"),
            )  # fmt: skip
            pretrain_s = time.perf_counter() - t0

            oracle = task.oracle.to(device) if isinstance(task, OracleTask) else None
            trainer = build_trainer(
                config, pre.generator, pre.discriminator, pre.data, pre.evaluator, device, folder, oracle
            )
            trainer.reporter = tracking and tracking.phase("adversarial")
            if resume and folder.has(CHECKPOINT):
                trainer.load_checkpoint()
            trainer.train(progress)
        finally:
            if tracking is not None:
                tracking.close()

        save_generator(trainer.generator, folder, FINAL_GENERATOR, task.vocab)
        evals = next(cb for cb in trainer.callback.callbacks if isinstance(cb, EvalCallback))
        summary = {
            **task.summary(), "preset": config.preset, "seed": config.seed, "algo": config.algo,
            "reward": config.adversarial.reward, "iterations": trainer.iteration, "mle": pre.mle_metrics,
            "start": evals.start, "best": evals.best, "final": evals.last, "pretrain_wall_s": round(pretrain_s, 1),
            "adversarial_wall_s": round(trainer.elapsed, 1), "threads": torch.get_num_threads(),
            "device": str(device),
        }  # fmt: skip
        if distributed.enabled():
            summary["world_size"] = distributed.world_size()
        try:
            title = f"{task.name}, {config.algo}, preset {config.preset}, seed {config.seed}"
            paper = isinstance(task, OracleTask) and task.paper
            if folder.writes:
                png = plot_training_curves(
                    folder.path / "metrics.csv", pre.mle_metrics, title, pre.evaluator.curves, paper
                )
                folder.save_bytes("curves.png", png)
        except ImportError:
            log.warning("matplotlib is not installed: no curves.png (pip install matplotlib)")
        folder.save_text(SUMMARY, json.dumps(summary, indent=2))  # last: it marks the run finished
    retrained = config.adversarial.d_kind != "pretrained"  # the phase's own D
    d = trainer.reward.discriminator if retrained else pre.discriminator
    return TrainResult(trainer.generator, d, summary, pre.evaluator)
