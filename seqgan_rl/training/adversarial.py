"""SeqGAN's adversarial loop: sample a batch, get its Q from the environment, update G, fire callbacks.

``run_training`` is the whole pipeline behind ``scripts/train_agent.py``: pre-train (or load the
pre-training), build the trainer, train with the D-retraining, evaluation and checkpoint callbacks,
then write ``summary.json`` and the metrics plot. Everything is resumable from atomic checkpoints.
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

from seqgan_rl.agents.reinforce import ReinforceAgent
from seqgan_rl.config import TrainConfig
from seqgan_rl.data.oracle_data import OracleData
from seqgan_rl.envs.rollout import EMARolloutPolicy, mc_q_values
from seqgan_rl.models.discriminator import Discriminator
from seqgan_rl.models.generator import Generator
from seqgan_rl.models.oracle import OracleLSTM
from seqgan_rl.training.callbacks import (
    Callback,
    CallbackList,
    CheckpointCallback,
    DiscriminatorRetrainCallback,
    EvalCallback,
)
from seqgan_rl.training.logger import MetricsLogger
from seqgan_rl.training.plots import plot_training_curves
from seqgan_rl.training.pretrain import _bar, make_discriminator_optimizer, run_pretraining
from seqgan_rl.utils import (
    atomic_torch_save,
    atomic_write_text,
    check_saved_config,
    derive_seed,
    global_rng_state,
    make_rng,
    set_global_rng_state,
)

log = logging.getLogger(__name__)

CHECKPOINT = "adversarial_checkpoint.pt"
METRIC_FIELDS = [
    "train/pg_loss", "train/grad_norm", "train/mean_q", "train/sample_nll", "d/loss", "d/accuracy",
    "d/p_real_train", "d/p_real_heldout", "d/p_fake",
    "eval/nll_oracle", "eval/nll_test", "eval/best_nll_oracle", "time/update_s", "time/elapsed_s",
]  # fmt: skip


class AdversarialTrainer:
    """Holds the models, optimizers, random streams and progress of the adversarial phase."""

    metric_fields: list[str] = METRIC_FIELDS
    """Columns of ``metrics.csv`` (a subclass with other evaluations extends them)."""

    def __init__(
        self,
        generator: Generator,
        discriminator: Discriminator,
        oracle: OracleLSTM,
        data: OracleData,
        config: TrainConfig,
        device: torch.device,
        out_dir: str | os.PathLike,
    ) -> None:
        self.generator, self.discriminator, self.oracle = generator, discriminator, oracle
        self.real_data, self.test_data = data.train, data.test
        self.config, self.device, self.seed = config, device, config.seed
        self.out_dir = Path(out_dir)
        adv = config.adversarial
        self.agent = ReinforceAgent(generator, config.agent, eos_token=generator.config.eos_token)
        self.d_optimizer = make_discriminator_optimizer(discriminator, adv.d_train.lr, adv.d_train.weight_decay)
        self.rng = make_rng(derive_seed(config.seed, "adversarial"), device)
        self.ema = EMARolloutPolicy(generator, adv.rollout_update_rate) if adv.rollout_update_rate is not None else None
        self.total_iterations = adv.iterations
        self.iteration = 0
        self.elapsed = 0.0
        self.best: dict[str, float] | None = None
        self.start_eval: dict[str, float] | None = None
        self.last_eval: dict[str, float] | None = None
        self.pending_metrics: dict[str, Any] = {}
        self.logger: MetricsLogger | None = None

    # ------------------------------------------------------------------ the loop
    def reward_fn(self, sequences: torch.Tensor) -> torch.Tensor:
        """Per-token returns for a sampled batch: SeqGAN's MC Q (the environment's whole-sequence
        function), or the constant control."""
        adv = self.config.adversarial
        if adv.reward == "constant":
            return torch.full(sequences.shape, adv.constant_reward, device=sequences.device)
        policy = self.ema.policy if self.ema is not None else self.generator
        return mc_q_values(sequences, policy, self.discriminator, adv.num_rollouts, self.rng)

    def train(self, callback: Callback | None = None, progress: Callable[..., Any] | None = None) -> None:
        callback = callback or CallbackList([])
        callback.init_callback(self)
        if self.logger is None:
            self.logger = MetricsLogger(
                self.out_dir / "metrics.csv", self.metric_fields, tensorboard_dir=self.out_dir / "tb"
            )
        started = time.perf_counter() - self.elapsed
        callback.on_training_start()
        if self.pending_metrics:  # the evaluation before the first update
            self.logger.log(self.iteration, {**self.pending_metrics, "time/elapsed_s": 0.0})
            self.pending_metrics = {}
        bar = _bar(progress, self.total_iterations, "adversarial", self.iteration)
        while self.iteration < self.total_iterations:
            t0 = time.perf_counter()
            batch = self.agent.collect(self.reward_fn, self.rng)
            self.pending_metrics.update(self.agent.update(batch))
            if self.ema is not None:
                self.ema.update(self.generator)
            self.iteration += 1
            keep_going = callback.on_step()
            self.elapsed = time.perf_counter() - started
            self.pending_metrics["time/update_s"] = round(time.perf_counter() - t0, 3)
            self.pending_metrics["time/elapsed_s"] = round(self.elapsed, 2)
            self.logger.log(self.iteration, self.pending_metrics)
            self.pending_metrics = {}
            callback.on_iteration_logged()
            bar.update(1)
            if self.last_eval is not None and "eval/nll_oracle" in self.last_eval:
                bar.set_postfix(
                    {
                        "nll_oracle": f"{self.last_eval['eval/nll_oracle']:.3f}",
                        "best": f"{self.best['eval/nll_oracle']:.3f}",
                    }
                )
            if not keep_going:
                break
        bar.close()
        callback.on_training_end()
        self.logger.close()

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            "iteration": self.iteration, "elapsed": self.elapsed,
            "generator": self.generator.state_dict(), "discriminator": self.discriminator.state_dict(),
            "g_optim": self.agent.optimizer.state_dict(), "d_optim": self.d_optimizer.state_dict(),
            "rng": self.rng.get_state(), "global_rng": global_rng_state(),
            "best": self.best, "start_eval": self.start_eval, "last_eval": self.last_eval,
            "ema": self.ema.policy.state_dict() if self.ema is not None else None,
        }  # fmt: skip

    def save_checkpoint(self) -> None:
        atomic_torch_save(self.state_dict(), self.out_dir / CHECKPOINT)

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.agent.optimizer.load_state_dict(state["g_optim"])
        self.d_optimizer.load_state_dict(state["d_optim"])
        self.rng.set_state(state["rng"])
        set_global_rng_state(state["global_rng"])
        self.iteration, self.elapsed = state["iteration"], state["elapsed"]
        self.best, self.start_eval, self.last_eval = state["best"], state["start_eval"], state["last_eval"]
        if self.ema is not None and state["ema"] is not None:
            self.ema.policy.load_state_dict(state["ema"])
        self.logger = MetricsLogger(
            self.out_dir / "metrics.csv",
            self.metric_fields,
            resume_step=self.iteration,
            tensorboard_dir=self.out_dir / "tb",
        )


class TrainResult(NamedTuple):
    generator: Generator
    discriminator: Discriminator
    summary: dict[str, Any]


def run_training(
    config: TrainConfig,
    out_dir: str | os.PathLike,
    device: torch.device,
    oracle: OracleLSTM | None = None,
    resume: bool = False,
    pretrain_dir: str | os.PathLike | None = None,
    progress: Callable[..., Any] | None = None,
    trainer_factory: Callable[..., AdversarialTrainer] | None = None,
    extra_config: dict[str, Any] | None = None,
) -> TrainResult:
    """Pre-training (or loading it) then the adversarial phase; writes everything under ``out_dir``.

    Args:
        config: the run (``train_preset`` gives the presets).
        out_dir: run folder: ``config.json``, ``pretrain/``, ``metrics.csv``, ``adversarial_checkpoint.pt``,
            ``generator_final.pt``, ``summary.json``, ``curves.png``.
        device: where the models live.
        oracle: the data source (default: the paper's oracle).
        resume: continue an interrupted run in ``out_dir``. Without it an existing run is an error.
        pretrain_dir: use (or create) the pre-training in this folder instead of ``out_dir/pretrain``:
            runs that share it start from the same MLE checkpoint (controls).
        progress: a tqdm-like factory, or ``None``.
        trainer_factory: builds the trainer from ``AdversarialTrainer``'s arguments (default: it; the
            SB3 PPO agent passes ``functools.partial(PPOTrainer, ppo_config=...)``).
        extra_config: more settings saved in ``config.json`` (and checked on resume), e.g. the PPO config.
    """
    out = Path(out_dir)
    ckpt = out / CHECKPOINT
    if not resume and (ckpt.exists() or (out / "summary.json").exists()):
        raise FileExistsError(
            f"{out} already holds an adversarial run: pass --resume to continue it, or choose another --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    config_dict = {**dataclasses.asdict(config), **(extra_config or {})}
    config_text = json.dumps(config_dict, indent=2)
    if resume:
        check_saved_config(out / "config.json", config_dict)
    atomic_write_text(config_text, out / "config.json")

    pdir = Path(pretrain_dir) if pretrain_dir is not None else out / "pretrain"
    pre_resume = resume or (pdir / "pretrained.pt").exists() or (pdir / "pretrain_checkpoint.pt").exists()
    pre = run_pretraining(config.pretrain, pdir, device, oracle=oracle, resume=pre_resume, progress=progress)

    make_trainer = trainer_factory or AdversarialTrainer
    trainer = make_trainer(pre.generator, pre.discriminator, pre.oracle, pre.data, config, device, out)
    if resume and ckpt.exists():
        trainer.load_checkpoint(ckpt)
        log.info("resuming the adversarial phase at iteration %d", trainer.iteration)
    adv = config.adversarial
    callbacks: list[Callback] = []
    if adv.reward == "mc":
        callbacks.append(DiscriminatorRetrainCallback(adv.d_train, adv.d_every))
    callbacks += [
        EvalCallback(adv.eval_every, config.pretrain.data.num_eval_samples),
        CheckpointCallback(adv.checkpoint_every),
    ]
    trainer.train(CallbackList(callbacks), progress)

    atomic_torch_save(
        {
            "generator": trainer.generator.state_dict(),
            "generator_config": dataclasses.asdict(config.pretrain.generator),
        },
        out / "generator_final.pt",
    )
    summary = {
        "preset": config.preset, "seed": config.seed, "reward": adv.reward, "iterations": trainer.iteration,
        "mle": pre.mle_metrics, "start": trainer.start_eval, "best": trainer.best, "final": trainer.last_eval,
        "adversarial_wall_s": round(trainer.elapsed, 1), "threads": torch.get_num_threads(), "device": str(device),
    }  # fmt: skip
    atomic_write_text(json.dumps(summary, indent=2), out / "summary.json")
    try:
        plot_training_curves(
            out / "metrics.csv", out / "curves.png", pre.mle_metrics, title=f"{config.preset} seed {config.seed}"
        )
    except ImportError:
        log.warning("matplotlib is not installed: no curves.png (pip install matplotlib)")
    return TrainResult(trainer.generator, trainer.discriminator, summary)
