"""Pre-training: maximum likelihood for the generator, and the discriminator's schedule.

The pieces are small and composable (one step, one epoch, one discriminator round) so that scripts can
show progress, evaluate and checkpoint between them; ``run_pretraining`` puts them together for any task
(the oracle benchmark, real text), resumable from atomic checkpoints. All randomness comes from explicit
generators, except D's dropout (torch's global generator, whose state every checkpoint saves).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch.nn import functional as F

from seqgan_rl import distributed
from seqgan_rl.config import DiscriminatorTrainConfig, MLEConfig, PretrainConfig
from seqgan_rl.data.oracle_data import iterate_minibatches, random_permutation, split_validation
from seqgan_rl.models import Generator, build_discriminator, build_generator
from seqgan_rl.models.discriminator import Discriminator
from seqgan_rl.training.evaluators import Evaluator, WithValidation
from seqgan_rl.training.logger import MetricsLogger
from seqgan_rl.training.metrics import sample_in_eval_mode
from seqgan_rl.training.run_folder import Folder, RunFolder, open_folder, save_generator
from seqgan_rl.training.tasks import OracleTask, Task
from seqgan_rl.training.tracking import Tracking
from seqgan_rl.utils import (
    check_finite,
    check_nll,
    derive_seed,
    global_rng_state,
    located,
    make_rng,
    seed_everything,
    set_global_rng_state,
    valid_mask,
)

log = logging.getLogger(__name__)


def make_generator_optimizer(generator: Generator, lr: float) -> torch.optim.Adam:
    """Adam; ``foreach``: the multi-tensor implementation, the same values as the per-tensor loop, faster on CPU."""
    return torch.optim.Adam(generator.parameters(), lr=lr, foreach=True)


def make_discriminator_optimizer(
    discriminator: Discriminator, lr: float, weight_decay: float = 0.0
) -> torch.optim.Adam:
    return torch.optim.Adam(discriminator.parameters(), lr=lr, weight_decay=weight_decay, foreach=True)


def mle_loss(generator: Generator, tokens: torch.Tensor) -> torch.Tensor:
    """Teacher-forced per-token mean NLL of ``(B, T)`` tokens (the reference ``pretrain_loss``). With an
    end token (real text), the mean is over the positions up to and including it (padding is ignored)."""
    eos = generator.config.eos_token
    if eos is None:
        return generator.mle_loss(tokens)  # = cross_entropy(generator(tokens)), bit for bit, faster
    logits = generator(tokens)  # (B, T, V)
    nll = F.cross_entropy(logits.flatten(0, 1), tokens.flatten(), reduction="none")  # (B*T,)
    m = valid_mask(tokens, eos).flatten().to(nll.dtype)
    return (nll * m).sum() / m.sum().clamp(min=1)


def mle_step(generator: Generator, optimizer: torch.optim.Optimizer, tokens: torch.Tensor, grad_clip: float) -> float:
    """One Adam step on the MLE loss with global grad-norm clipping; returns the loss. Under torchrun each rank
    takes its share of ``tokens`` (the same minibatch on every rank) and the gradients are summed."""
    if distributed.enabled():
        return _mle_step_sharded(generator, optimizer, tokens, grad_clip)
    generator.train()
    loss = mle_loss(generator, tokens)
    check_nll("the MLE loss", loss)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    check_finite("the MLE gradient norm", torch.nn.utils.clip_grad_norm_(generator.parameters(), grad_clip))
    optimizer.step()
    return float(loss.detach())


def _mle_step_sharded(
    generator: Generator, optimizer: torch.optim.Optimizer, tokens: torch.Tensor, grad_clip: float
) -> float:
    """``mle_step`` data-parallel: this rank's rows of the minibatch, its NLL summed and divided by the whole
    minibatch's token count, so that the summed gradient is the gradient of the minibatch's mean NLL."""
    generator.train()
    eos = generator.config.eos_token
    count = tokens.numel() if eos is None else int(valid_mask(tokens, eos).sum())
    local = tokens[distributed.shard(tokens.shape[0])]
    optimizer.zero_grad(set_to_none=True)
    part = torch.zeros(1, device=generator.device)
    if local.shape[0]:
        logits = generator(local)  # (b, T, V)
        nll = F.cross_entropy(logits.flatten(0, 1), local.flatten(), reduction="none")  # (b*T,)
        if eos is not None:
            nll = nll * valid_mask(local, eos).flatten().to(nll.dtype)
        loss = nll.sum() / max(count, 1)
        loss.backward()
        part = loss.detach().reshape(1)
    total = distributed.sum_gradients(generator.parameters(), part)
    check_nll("the MLE loss", total[0])
    check_finite("the MLE gradient norm", torch.nn.utils.clip_grad_norm_(generator.parameters(), grad_clip))
    optimizer.step()
    return float(total[0])


def mle_epoch(
    generator: Generator, optimizer: torch.optim.Optimizer, train_tokens: torch.Tensor, config: MLEConfig,
    rng: torch.Generator | None = None,
) -> float:  # fmt: skip
    """One pass over ``train_tokens`` in shuffled minibatches; returns the mean training loss."""
    losses = [
        mle_step(generator, optimizer, batch.to(generator.device), config.grad_clip)
        for batch in iterate_minibatches(train_tokens, config.batch_size, rng)
    ]
    return sum(losses) / max(len(losses), 1)


def discriminator_step(
    discriminator: Discriminator, optimizer: torch.optim.Optimizer, tokens: torch.Tensor, labels: torch.Tensor
) -> tuple[float, float]:
    """One Adam step on D's loss; returns (loss, accuracy on this batch)."""
    discriminator.train()
    loss, acc = discriminator.train_loss(tokens, labels)
    check_finite("the discriminator's loss", loss)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach()), float(acc)


def discriminator_round(
    discriminator: Discriminator, optimizer: torch.optim.Optimizer, real_tokens: torch.Tensor, generator: Generator,
    config: DiscriminatorTrainConfig, rng: torch.Generator | None = None, temperature: float = 1.0,
) -> dict[str, float]:  # fmt: skip
    """One round of D training: draw fresh negatives from ``generator``, then ``config.epochs`` passes
    over real (label 1) + generated (label 0) in shuffled minibatches (capped by ``max_steps_per_round``).
    With fewer negatives than real sequences, a random subset of the real ones of the same size is used.

    Returns:
        ``{"d/loss": mean loss, "d/accuracy": mean batch accuracy, "d/steps": steps taken}``.

    Under torchrun each rank draws its share of the negatives, takes its share of the real data and of each
    minibatch, and the gradients are summed (``_discriminator_round_sharded``).
    """
    if distributed.enabled():
        return _discriminator_round_sharded(discriminator, optimizer, real_tokens, generator, config, rng, temperature)
    num_neg = config.num_negatives or real_tokens.shape[0]
    real = real_tokens.cpu()
    if num_neg < real.shape[0]:  # keep the classes balanced: a random subset of the real data
        real = real[random_permutation(real.shape[0], rng)[:num_neg]]
    fake = sample_in_eval_mode(generator, num_neg, rng, temperature).cpu()
    tokens = torch.cat([real, fake])
    labels = torch.cat([torch.ones(real.shape[0], dtype=torch.long), torch.zeros(num_neg, dtype=torch.long)])
    losses, accs, device = [], [], discriminator.device
    for _ in range(config.epochs):
        order = random_permutation(tokens.shape[0], rng)
        for i in range(0, tokens.shape[0], config.batch_size):
            if config.max_steps_per_round is not None and len(losses) >= config.max_steps_per_round:
                break
            idx = order[i : i + config.batch_size]
            loss, acc = discriminator_step(discriminator, optimizer, tokens[idx].to(device), labels[idx].to(device))
            losses.append(loss)
            accs.append(acc)
    n = max(len(losses), 1)
    return {"d/loss": sum(losses) / n, "d/accuracy": sum(accs) / n, "d/steps": float(len(losses))}


def _discriminator_round_sharded(
    discriminator: Discriminator, optimizer: torch.optim.Optimizer, real_tokens: torch.Tensor, generator: Generator,
    config: DiscriminatorTrainConfig, rng: torch.Generator | None, temperature: float,
) -> dict[str, float]:  # fmt: skip
    """``discriminator_round`` data-parallel. Rank q holds its shard of the real data and its share of the
    negatives (n_q sequences in all) and takes b_q of each minibatch of ``batch_size``; each step's loss is
    its cross-entropy summed and divided by the whole step's row count (known to every rank from the shares)
    plus 1/K of the L2 penalty, so the summed gradient is that of the step's mean loss over all ranks. Every
    rank takes the same number of steps (a rank whose data is used up contributes nothing)."""
    k, me = distributed.world_size(), distributed.rank()
    if config.batch_size < k:
        raise ValueError(f"D's batch size {config.batch_size} is smaller than the {k} processes: use at least {k}")
    n_real, num_neg = real_tokens.shape[0], config.num_negatives or real_tokens.shape[0]
    reals, negs, batch = (distributed.shard_sizes(n) for n in (n_real, num_neg, config.batch_size))
    sizes = [min(r, g) + g for r, g in zip(reals, negs, strict=True)]  # rows per rank: balanced classes
    steps_per_epoch = max(-(-n // b) for n, b in zip(sizes, batch, strict=True))
    real = real_tokens[distributed.shard(n_real)].cpu()
    if negs[me] < real.shape[0]:
        real = real[random_permutation(real.shape[0], rng)[: negs[me]]]
    fake = sample_in_eval_mode(generator, negs[me], rng, temperature).cpu()
    tokens = torch.cat([real, fake])
    labels = torch.cat([torch.ones(real.shape[0], dtype=torch.long), torch.zeros(negs[me], dtype=torch.long)])
    d, device, losses, accs = discriminator, discriminator.device, [], []
    for _ in range(config.epochs):
        order = random_permutation(tokens.shape[0], rng)
        for i in range(steps_per_epoch):
            if config.max_steps_per_round is not None and len(losses) >= config.max_steps_per_round:
                break
            rows = sum(max(0, min(b, n - i * b)) for n, b in zip(sizes, batch, strict=True))
            idx = order[i * batch[me] : (i + 1) * batch[me]]
            loss, acc = sharded_discriminator_step(d, optimizer, tokens[idx].to(device), labels[idx].to(device), rows)
            losses.append(loss)
            accs.append(acc)
    n = max(len(losses), 1)
    return {"d/loss": sum(losses) / n, "d/accuracy": sum(accs) / n, "d/steps": float(len(losses))}


def sharded_discriminator_step(
    discriminator: Discriminator, optimizer: torch.optim.Optimizer, tokens: torch.Tensor, labels: torch.Tensor,
    rows: int,
) -> tuple[float, float]:  # fmt: skip
    """``discriminator_step`` on this rank's part (possibly empty) of a minibatch of ``rows`` rows over all
    ranks: its summed cross-entropy / ``rows`` + L2 / K, gradients summed over the ranks (one all-reduce that
    also carries the loss and the accuracy). Returns the whole minibatch's (loss, accuracy)."""
    d = discriminator
    d.train()
    optimizer.zero_grad(set_to_none=True)
    loss = d.l2_penalty() / distributed.world_size()
    correct = torch.zeros((), device=d.device)
    if len(tokens):
        logits = d(tokens)
        loss = loss + F.cross_entropy(logits, labels, reduction="sum") / rows
        correct = (logits.argmax(dim=1) == labels).sum().float()
    loss.backward()
    stats = distributed.sum_gradients(d.parameters(), torch.stack([loss.detach(), correct / rows]))
    check_finite("the discriminator's loss", stats[0])
    optimizer.step()
    return float(stats[0]), float(stats[1])


# ---------------------------------------------------------------------------------------------- a whole run
class PretrainResult(NamedTuple):
    generator: Generator
    discriminator: Discriminator
    data: Any
    """The task's training and test tokens (``.train``, ``.test``); ``.train`` without the validation sequences
    when ``MLEConfig.num_valid`` holds some out (the evaluator has them)."""
    mle_metrics: dict[str, float]
    """The evaluation of the final MLE generator."""
    evaluator: Evaluator
    """The task's evaluator (what the adversarial phase evaluates with too)."""


CHECKPOINT = "pretrain_checkpoint.pt"
"""Resumable state, rewritten atomically after every MLE epoch and every D round."""
FINAL = "pretrained.pt"
"""Final generator and discriminator (what the adversarial phase loads)."""
MLE_GENERATOR = "generator_mle.pt"
"""The MLE generator alone, in ``save_generator``'s format (``scripts/sample.py`` reads it)."""


def run_pretraining(
    config: PretrainConfig, out_dir: str | os.PathLike, device: torch.device, task: Task | None = None,
    resume: bool = False, progress: Callable[..., Any] | None = None, force: bool = False, reporter: Any = None,
    report_to: Sequence[str] | None = None,
) -> PretrainResult:  # fmt: skip
    """MLE pre-training of G, then D pre-training, with evaluation, CSV metrics and atomic checkpoints.

    Args:
        config: what to run (``seqgan_rl.presets.pretrain_preset`` gives the presets).
        out_dir: run folder (``seqgan_rl.training.run_folder``): ``run.json``, ``config.json``, ``data.pt``
            (oracle samples), ``metrics.csv``, checkpoints, ``generator_mle.pt``.
        device: where the models live.
        task: the data and its evaluator; ``None``: the paper's oracle benchmark.
        resume: continue from ``out_dir``'s checkpoint, or load its finished pre-training (read-only, so
            several runs can share it). Without it, a folder that already holds a run is an error.
        progress: a tqdm-like factory ``progress(total=..., desc=...)``; ``None`` shows nothing.
        force: write into a non-empty folder that holds no pre-training run.
        reporter: where the metrics rows also go (``Tracking.phase("pretrain")``: a whole run's trackers).
        report_to: trackers of this pre-training alone (``seqgan_rl.training.tracking.check_report_to``'s list),
            started in the folder once it is claimed; nothing is reported when a finished one is loaded.

    Returns:
        A ``PretrainResult``. A finished pre-training continues the global random generator where it left
        it, so a run that loads it equals one that ran it.
    """
    task = task if task is not None else OracleTask()
    task.check(config)
    config_dict = {**dataclasses.asdict(config), "runtime": runtime(device)}

    def claim() -> RunFolder:
        finished = RunFolder.open_finished(out_dir, "pretrain", FINAL, config_dict) if resume else None
        return finished or RunFolder.open(out_dir, "pretrain", config_dict, resume=resume, **_CLAIM, force=force)

    with open_folder(claim, out_dir) as folder:
        if report_to is None or reporter is not None or not getattr(folder, "writable", True):
            return _pretrain(config, folder, device, task, progress, reporter)
        tracking = Tracking(report_to, folder.path, config_dict, folder.writes)
        try:
            return _pretrain(config, folder, device, task, progress, tracking.phase("pretrain"))
        finally:
            tracking.close()


_CLAIM = {"markers": (CHECKPOINT, FINAL), "what": "pre-training run"}


def check_pretraining(
    config: PretrainConfig, out_dir: str | os.PathLike, device: torch.device, resume: bool = False
) -> None:
    """Raise what ``run_pretraining`` with the same arguments would refuse about ``out_dir``, writing nothing:
    a run that shares or nests a pre-training checks it before it writes into its own folder."""
    config_dict = {**dataclasses.asdict(config), "runtime": runtime(device)}
    if not (resume and RunFolder.check_finished(out_dir, "pretrain", FINAL, config_dict)):
        RunFolder.check(out_dir, "pretrain", config_dict, resume=resume, **_CLAIM)


def _pretrain(
    config: PretrainConfig, folder: Folder, device: torch.device, task: Task, progress: Callable[..., Any] | None,
    reporter: Any = None,
) -> PretrainResult:  # fmt: skip
    out, mle = folder.path, config.mle
    data = folder.main_only(lambda f: task.load_data(config, f, device))
    train, valid = split_validation(data.train, mle.num_valid, config.seed)
    data = data._replace(train=train)  # G and D train on the rest; the validation set is held out of both
    evaluator = task.evaluator(config, data, device)
    if valid is not None:
        evaluator = WithValidation(evaluator, valid)
    generator = build_generator(config.generator).to(device)
    generator.reset_parameters(make_rng(derive_seed(config.seed, "g-init")))
    discriminator = build_discriminator(config.discriminator)
    discriminator.reset_parameters(make_rng(derive_seed(config.seed, "d-init")))
    discriminator.to(device)
    g_opt = make_generator_optimizer(generator, config.mle.lr)
    d_opt = make_discriminator_optimizer(discriminator, config.d_pretrain.lr, config.d_pretrain.weight_decay)
    rng = make_rng(distributed.rank_seed(derive_seed(config.seed, "pretrain")), device)
    seed_everything(distributed.rank_seed(derive_seed(config.seed, "global")))  # D's dropout: the global generator

    if folder.has(FINAL):
        state = folder.load_torch(FINAL, device)
        generator.load_state_dict(state["generator"])
        discriminator.load_state_dict(state["discriminator"])
        if "global_rng" in state:  # pre-trainings written before it was saved reseed the generator instead
            try:
                set_global_rng_state(distributed.own(state["global_rng"]))
            except ValueError:  # a shared pre-training run by another number of processes: reseeded, as above
                log.info("%s was written by another number of processes: dropout reseeded", FINAL)
        return PretrainResult(generator, discriminator, data, state["mle_metrics"], evaluator)

    epoch, d_round, elapsed, mle_metrics = 0, 0, 0.0, {}
    best = {"nll": None, "epoch": 0, "generator": None, "done": False}  # the validation set's best epoch
    resume_step = logged = None
    if folder.has(CHECKPOINT):
        state = folder.load_torch(CHECKPOINT, device)
        generator.load_state_dict(state["generator"])
        discriminator.load_state_dict(state["discriminator"])
        g_opt.load_state_dict(state["g_optim"])
        d_opt.load_state_dict(state["d_optim"])
        rng.set_state(distributed.own(state["rng"]))
        set_global_rng_state(distributed.own(state["global_rng"]))
        epoch, d_round, elapsed = state["epoch"], state["round"], state["elapsed"]
        mle_metrics, resume_step, logged = state["mle_metrics"], state["step"], state.get("logged_steps")
        best = state.get("best_valid", best)
        log.info("resuming pre-training at epoch %d, D round %d", epoch, d_round)
    fields = ["phase", "epoch", "train/loss", *evaluator.fields, "d/loss", "d/accuracy", "time/elapsed_s"]
    logger = MetricsLogger(
        out / "metrics.csv", fields, resume_step, expected_steps=logged, folder=folder, reporter=reporter
    )
    started = time.perf_counter() - elapsed

    def checkpoint(step: int) -> None:
        folder.save_torch(
            CHECKPOINT,
            {
                "step": step, "epoch": epoch, "round": d_round, "elapsed": time.perf_counter() - started,
                "generator": generator.state_dict(), "discriminator": discriminator.state_dict(),
                "g_optim": g_opt.state_dict(), "d_optim": d_opt.state_dict(),
                "rng": distributed.per_rank(rng.get_state()), "global_rng": distributed.per_rank(global_rng_state()),
                "mle_metrics": mle_metrics, "logged_steps": logger.steps, "best_valid": best,
            },
        )  # fmt: skip

    def log_row(step: int, row: dict[str, Any]) -> None:
        logger.log(step, {**row, "time/elapsed_s": round(time.perf_counter() - started, 2)})

    def evaluate_now(
        train_loss: float | None, step: int, phase: str = "mle", at: int | None = None
    ) -> dict[str, float]:
        """Evaluate the generator of epoch ``at`` (default: the current one) on that epoch's stream."""
        at = epoch if at is None else at
        eval_rng = make_rng(distributed.rank_seed(derive_seed(config.seed, evaluator.streams["mle"], at)), device)
        metrics = evaluator.checked(generator, eval_rng)
        row = {"phase": phase, "epoch": at, **metrics}
        if train_loss is not None:
            row["train/loss"] = train_loss
        log_row(step, row)
        return metrics

    bar = progress_bar(progress, mle.epochs, "MLE", epoch)
    if epoch == 0 and resume_step is None:
        if mle.eval_every:  # a curve: it starts at the fresh generator
            mle_metrics = evaluate_now(None, 0)
        checkpoint(0)
    while epoch < mle.epochs and not best["done"]:
        with located(f"pre-training, MLE epoch {epoch + 1}"):
            # under torchrun every rank walks the same minibatches (a stream shared by the ranks) and takes its share
            order = make_rng(derive_seed(config.seed, "mle-order", epoch), device) if distributed.enabled() else rng
            loss = mle_epoch(generator, g_opt, data.train, mle, order)
        epoch += 1
        bar.update(1)
        with located(f"pre-training, evaluation after MLE epoch {epoch}"):
            if valid is None:
                if epoch == mle.epochs or (mle.eval_every and epoch % mle.eval_every == 0):
                    mle_metrics = evaluate_now(loss, epoch)
            else:
                mle_metrics = _validated_epoch(generator, evaluator, mle, best, epoch, loss, evaluate_now, log_row)
                best["done"] = best["done"] or epoch == mle.epochs
                if best["done"]:  # the generator the adversarial phase starts from, evaluated at step epochs + 1
                    if mle.use_best:
                        generator.load_state_dict(best["generator"])
                    at = best["epoch"] if mle.use_best else epoch
                    mle_metrics = evaluate_now(None, mle.epochs + 1, "mle_selected", at)
        bar.set_postfix({**(evaluator.postfix(mle_metrics) if mle_metrics else {}), "loss": f"{loss:.3f}"})
        checkpoint(mle.epochs + 1 if best["done"] else epoch)  # every epoch (a few MB): a kill loses at most one
    bar.close()

    dcfg = config.d_pretrain
    d_step0 = mle.epochs + (valid is not None)  # step mle.epochs + 1: the selected generator's evaluation
    bar = progress_bar(progress, dcfg.rounds, "D pre-train", d_round)
    while d_round < dcfg.rounds:
        with located(f"pre-training, D round {d_round + 1}"):
            stats = discriminator_round(discriminator, d_opt, data.train, generator, dcfg, rng)
        d_round += 1
        bar.update(1)
        bar.set_postfix({"acc": f"{stats['d/accuracy']:.3f}"})
        logger.log(
            d_step0 + d_round,
            {"phase": "d_pretrain", "epoch": d_round, "d/loss": stats["d/loss"], "d/accuracy": stats["d/accuracy"],
             "time/elapsed_s": round(time.perf_counter() - started, 2)},
        )  # fmt: skip
        checkpoint(d_step0 + d_round)
    bar.close()
    logger.close()

    save_generator(generator, folder, MLE_GENERATOR, task.vocab)
    folder.save_torch(  # last: it marks the pre-training finished
        FINAL,
        {"generator": generator.state_dict(), "discriminator": discriminator.state_dict(),
         "generator_config": dataclasses.asdict(config.generator),
         "discriminator_config": dataclasses.asdict(config.discriminator), "mle_metrics": mle_metrics,
         "mle_epoch": best["epoch"] if valid is not None and mle.use_best else epoch,
         "global_rng": distributed.per_rank(global_rng_state())},
    )  # fmt: skip
    return PretrainResult(generator, discriminator, data, mle_metrics, evaluator)


def _validated_epoch(
    generator: Generator, evaluator: WithValidation, mle: MLEConfig, best: dict[str, Any], epoch: int, loss: float,
    evaluate_now: Callable[..., dict[str, float]], log_row: Callable[[int, dict[str, Any]], None],
) -> dict[str, float]:  # fmt: skip
    """After an MLE epoch with a validation set: its NLL (the whole evaluation on ``eval_every`` epochs), logged;
    ``best`` keeps the epoch of lowest validation NLL and a copy of its generator, and is ``done`` once
    ``patience`` epochs have passed without improvement. Returns the evaluation's metrics (``{}`` when there was
    none)."""
    if mle.eval_every and epoch % mle.eval_every == 0:
        metrics = evaluate_now(loss, epoch)
        nll = metrics["eval/nll_valid"]
    else:
        metrics, nll = {}, evaluator.validation_nll(generator)
        check_nll("eval/nll_valid", nll)
        log_row(epoch, {"phase": "mle", "epoch": epoch, "train/loss": loss, "eval/nll_valid": nll})
    if best["nll"] is None or nll < best["nll"]:
        best.update(nll=nll, epoch=epoch, generator=copy.deepcopy(generator.state_dict()))
    best["done"] = mle.patience is not None and epoch - best["epoch"] >= mle.patience
    return metrics


def runtime(device: torch.device | str) -> dict[str, Any]:
    """What a run's numbers depend on besides its config: the thread count, the device and, under torchrun, the
    number of processes (saved in ``config.json`` and checked when the run resumes)."""
    out = {"threads": torch.get_num_threads(), "device": str(device)}
    if distributed.enabled():  # a torchrun job resumes with the same number of processes
        out["world_size"] = distributed.world_size()
    return out


class _NoBar:
    def update(self, n: int = 1) -> None: ...
    def set_postfix(self, *args: Any, **kwargs: Any) -> None: ...
    def close(self) -> None: ...


def progress_bar(progress: Callable[..., Any] | None, total: int, desc: str, initial: int) -> Any:
    """``progress(total=, desc=, initial=)`` (e.g. tqdm), or a bar that shows nothing."""
    return progress(total=total, desc=desc, initial=initial) if progress is not None else _NoBar()
