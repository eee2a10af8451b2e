"""SeqGAN on real text: MLE pre-training, D pre-training, then the adversarial loop, scored by BLEU.

The same pieces as the oracle pipeline (``mle_epoch``, ``discriminator_round``, ``AdversarialTrainer`` with
its D-retraining and checkpoint callbacks) on a ``TextDataset``: the generator's config carries the end and
padding tokens, so samples are padded after ``<eos>``, MLE and NLL count the positions up to and including
it, rollouts pad what follows an end token, and REINFORCE masks the positions after it. The evaluation is
the text benchmarks': BLEU-2..5 of ``num_samples`` generated sentences against the whole test set,
Self-BLEU-2..4 of those sentences (leave-one-out), and NLL-test (per token, ``<eos>`` included).
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

from seqgan_rl.config import (
    AdversarialConfig,
    DiscriminatorConfig,
    DiscriminatorTrainConfig,
    GeneratorConfig,
    MLEConfig,
    OracleDataConfig,
    PretrainConfig,
    ReinforceConfig,
    TrainConfig,
)
from seqgan_rl.data.text import TextDataset, Vocabulary
from seqgan_rl.models.discriminator import Discriminator
from seqgan_rl.models.generator import Generator
from seqgan_rl.training.adversarial import METRIC_FIELDS, AdversarialTrainer
from seqgan_rl.training.bleu import BleuReferences, self_bleu
from seqgan_rl.training.callbacks import Callback, CallbackList, CheckpointCallback, DiscriminatorRetrainCallback
from seqgan_rl.training.logger import MetricsLogger
from seqgan_rl.training.pretrain import (
    _bar,
    discriminator_round,
    make_discriminator_optimizer,
    make_generator_optimizer,
    mle_epoch,
)
from seqgan_rl.utils import (
    atomic_torch_save,
    atomic_write_text,
    check_saved_config,
    derive_seed,
    make_rng,
    seed_everything,
)

log = logging.getLogger(__name__)

BLEU_ORDERS = (2, 3, 4, 5)
SELF_BLEU_ORDERS = (2, 3, 4)
TEXT_EVAL_FIELDS = [
    "eval/nll_test", *(f"eval/bleu{n}" for n in BLEU_ORDERS), *(f"eval/self_bleu{n}" for n in SELF_BLEU_ORDERS),
    "eval/mean_len",
]  # fmt: skip
TEXT_PRESETS = ("text",)


def text_preset(vocab: Vocabulary, seq_len: int, seed: int = 0, bleu_samples: int = 1000) -> TrainConfig:
    """The ``text`` preset for 2 CPU cores (Texygen's SeqGAN generator, 32/32; the light CNN).

    - MLE: 15 epochs (Adam 0.01, batch 64, clip 5), evaluated every 5.
    - D pre-training: 5 rounds x 200 steps over 6,400 fresh negatives and as many real sentences, Adam 1e-3.
    - Adversarial: 20 updates of 64 sentences with N 16 rollouts (the paper's summed, un-baselined loss),
      each followed by 50 D steps (1,600 negatives, Adam 3e-4), evaluated every 10 updates.

    About 15 minutes per seed on one thread of this 2-core machine (``benchmarks/results/coco_seqgan.md``).
    """
    v = len(vocab)
    g = GeneratorConfig(
        vocab_size=v, seq_len=seq_len, start_token=vocab.bos_id, eos_token=vocab.eos_id, pad_token=vocab.pad_id
    )
    pre = PretrainConfig(
        seed=seed,
        generator=g,
        discriminator=DiscriminatorConfig.light(vocab_size=v, seq_len=seq_len),
        data=OracleDataConfig(num_eval_samples=bleu_samples),
        mle=MLEConfig(epochs=15, eval_every=5),
        d_pretrain=DiscriminatorTrainConfig(rounds=5, epochs=1, lr=1e-3, num_negatives=6400, max_steps_per_round=200),
    )
    adv = AdversarialConfig(
        iterations=20,
        eval_every=10,
        checkpoint_every=5,
        d_train=DiscriminatorTrainConfig(rounds=1, epochs=1, lr=3e-4, num_negatives=1600, max_steps_per_round=50),
    )
    return TrainConfig(preset="text", seed=seed, pretrain=pre, agent=ReinforceConfig(), adversarial=adv)


@torch.no_grad()
def generate_sentences(
    generator: Generator, vocab: Vocabulary, num: int, rng: torch.Generator | None = None, temperature: float = 1.0
) -> list[list[str]]:
    """``num`` sampled sentences, decoded to words (up to their end token)."""
    was_training = generator.training
    generator.eval()
    try:
        ids = generator.sample(num, rng, temperature=temperature)
    finally:
        generator.train(was_training)
    return vocab.decode_batch(ids.cpu())


def evaluate_text(
    generator: Generator,
    vocab: Vocabulary,
    references: BleuReferences,
    test_tokens: torch.Tensor,
    num_samples: int = 1000,
    rng: torch.Generator | None = None,
    temperature: float = 1.0,
) -> dict[str, float]:
    """BLEU-2..5 (vs. ``references``) and Self-BLEU-2..4 of ``num_samples`` generated sentences, NLL-test,
    all with the generator at ``temperature``."""
    sents = generate_sentences(generator, vocab, num_samples, rng, temperature)
    bleu = references.corpus_scores(sents, BLEU_ORDERS)
    sb = self_bleu(sents, SELF_BLEU_ORDERS)
    return {
        "eval/nll_test": generator.nll(test_tokens, temperature),
        **{f"eval/bleu{n}": s for n, s in bleu.items()},
        **{f"eval/self_bleu{n}": s for n, s in sb.items()},
        "eval/mean_len": sum(map(len, sents)) / len(sents),
    }


class TextEvalCallback(Callback):
    """The text metrics every ``every`` updates and before the first (each from its own seeded stream)."""

    def __init__(self, vocab: Vocabulary, references: BleuReferences, every: int = 10, num_samples: int = 1000):
        super().__init__()
        self.vocab, self.references, self.every, self.num_samples = vocab, references, every, num_samples

    def _on_training_start(self) -> None:
        if self.trainer.iteration == 0 and self.trainer.start_eval is None:
            self._evaluate()

    def _on_step(self) -> bool:
        tr = self.trainer
        if tr.iteration % self.every == 0 or tr.iteration == tr.total_iterations:
            self._evaluate()
        return True

    def _evaluate(self) -> None:
        tr = self.trainer
        rng = make_rng(derive_seed(tr.seed, "text-eval", tr.iteration), tr.device)
        m = evaluate_text(tr.generator, self.vocab, self.references, tr.test_data, self.num_samples, rng)
        tr.last_eval = {"iteration": tr.iteration, **m}
        tr.best = tr.last_eval  # no model selection on the test set: "best" is the latest
        tr.pending_metrics.update(m)
        if tr.iteration == 0:
            tr.start_eval = dict(tr.last_eval)


class TextAdversarialTrainer(AdversarialTrainer):
    metric_fields = [f for f in METRIC_FIELDS if not f.startswith("eval/")] + TEXT_EVAL_FIELDS


class TextTrainResult(NamedTuple):
    generator: Generator
    discriminator: Discriminator
    summary: dict[str, Any]


PRETRAINED = "pretrained.pt"


def run_text_training(
    config: TrainConfig,
    dataset: TextDataset,
    out_dir: str | os.PathLike,
    device: torch.device,
    resume: bool = False,
    progress: Callable[..., Any] | None = None,
) -> TextTrainResult:
    """MLE + D pre-training (reused from ``out_dir/pretrain`` when there), then the adversarial phase.

    Writes ``config.json``, ``vocab.json``, ``pretrain/{metrics.csv,pretrained.pt}``, ``metrics.csv``,
    ``adversarial_checkpoint.pt``, ``generator_final.pt`` (with the vocabulary: what ``scripts/sample.py``
    loads) and ``summary.json`` (MLE and final metrics, wall times) to ``out_dir``.
    """
    out = Path(out_dir)
    g_cfg = config.pretrain.generator
    if (g_cfg.vocab_size, g_cfg.seq_len, g_cfg.eos_token) != (
        len(dataset.vocab),
        dataset.seq_len,
        dataset.vocab.eos_id,
    ):
        raise ValueError(
            f"the config's generator (V={g_cfg.vocab_size}, T={g_cfg.seq_len}, eos={g_cfg.eos_token}) does not "
            f"match the dataset (V={len(dataset.vocab)}, T={dataset.seq_len}, eos={dataset.vocab.eos_id}): "
            "build it with text_preset(dataset.vocab, dataset.seq_len)"
        )
    if not resume and ((out / "summary.json").exists() or (out / "adversarial_checkpoint.pt").exists()):
        raise FileExistsError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    config_text = json.dumps(dataclasses.asdict(config), indent=2)
    if resume:
        check_saved_config(out / "config.json", dataclasses.asdict(config))
    atomic_write_text(config_text, out / "config.json")
    vocab_json = json.dumps({"dataset": dataset.name, "words": dataset.vocab.words, "stats": dataset.stats})
    atomic_write_text(vocab_json, out / "vocab.json")
    references = BleuReferences(dataset.test_sentences, max(BLEU_ORDERS))
    num_samples = config.pretrain.data.num_eval_samples

    t0 = time.perf_counter()
    generator, discriminator, mle_metrics = _pretrain(config, dataset, references, out / "pretrain", device, progress)
    pretrain_s = time.perf_counter() - t0

    trainer = TextAdversarialTrainer(generator, discriminator, None, dataset, config, device, out)  # type: ignore[arg-type]
    ckpt = out / "adversarial_checkpoint.pt"
    if resume and ckpt.exists():
        trainer.load_checkpoint(ckpt)
    adv = config.adversarial
    callbacks: list[Callback] = []
    if adv.reward == "mc":
        callbacks.append(DiscriminatorRetrainCallback(adv.d_train, adv.d_every))
    callbacks += [
        TextEvalCallback(dataset.vocab, references, adv.eval_every, num_samples),
        CheckpointCallback(adv.checkpoint_every),
    ]
    trainer.train(CallbackList(callbacks), progress)
    save_text_generator(trainer.generator, dataset.vocab, out / "generator_final.pt")
    summary = {
        "dataset": dataset.name, "preset": config.preset, "seed": config.seed, "reward": adv.reward,
        "iterations": trainer.iteration, "mle": mle_metrics, "start": trainer.start_eval, "final": trainer.last_eval,
        "pretrain_wall_s": round(pretrain_s, 1), "adversarial_wall_s": round(trainer.elapsed, 1),
        "threads": torch.get_num_threads(), "device": str(device), "data_stats": dataset.stats,
    }  # fmt: skip
    atomic_write_text(json.dumps(summary, indent=2), out / "summary.json")
    return TextTrainResult(trainer.generator, trainer.discriminator, summary)


def _pretrain(
    config: TrainConfig,
    dataset: TextDataset,
    references: BleuReferences,
    pdir: Path,
    device: torch.device,
    progress: Callable[..., Any] | None,
) -> tuple[Generator, Discriminator, dict[str, float]]:
    pre = config.pretrain
    generator = Generator(pre.generator)
    generator.reset_parameters(make_rng(derive_seed(config.seed, "g-init")))
    generator.to(device)
    discriminator = Discriminator(pre.discriminator)
    discriminator.reset_parameters(make_rng(derive_seed(config.seed, "d-init")))
    discriminator.to(device)
    final = pdir / PRETRAINED
    if final.exists():
        state = torch.load(final, map_location=device, weights_only=True)
        generator.load_state_dict(state["generator"])
        discriminator.load_state_dict(state["discriminator"])
        seed_everything(derive_seed(config.seed, "global"))
        return generator, discriminator, state["mle_metrics"]
    pdir.mkdir(parents=True, exist_ok=True)
    g_opt = make_generator_optimizer(generator, pre.mle.lr)
    d_opt = make_discriminator_optimizer(discriminator, pre.d_pretrain.lr, pre.d_pretrain.weight_decay)
    rng = make_rng(derive_seed(config.seed, "pretrain"), device)
    seed_everything(derive_seed(config.seed, "global"))
    fields = ["phase", "epoch", "train/loss", *TEXT_EVAL_FIELDS, "d/loss", "d/accuracy", "time/elapsed_s"]
    logger = MetricsLogger(pdir / "metrics.csv", fields)
    started = time.perf_counter()
    num_samples = pre.data.num_eval_samples

    def evaluate_now(epoch: int, loss: float | None) -> dict[str, float]:
        eval_rng = make_rng(derive_seed(config.seed, "text-eval-mle", epoch), device)
        m = evaluate_text(generator, dataset.vocab, references, dataset.test, num_samples, eval_rng)
        row = {"phase": "mle", "epoch": epoch, **m, "time/elapsed_s": round(time.perf_counter() - started, 2)}
        if loss is not None:
            row["train/loss"] = loss
        logger.log(epoch, row)
        return m

    metrics = evaluate_now(0, None)
    bar = _bar(progress, pre.mle.epochs, "MLE", 0)
    for epoch in range(1, pre.mle.epochs + 1):
        loss = mle_epoch(generator, g_opt, dataset.train, pre.mle, rng)
        bar.update(1)
        if epoch % pre.mle.eval_every == 0 or epoch == pre.mle.epochs:
            metrics = evaluate_now(epoch, loss)
            bar.set_postfix({"bleu3": f"{metrics['eval/bleu3']:.3f}", "nll_test": f"{metrics['eval/nll_test']:.3f}"})
    bar.close()
    bar = _bar(progress, pre.d_pretrain.rounds, "D pre-train", 0)
    for r in range(1, pre.d_pretrain.rounds + 1):
        stats = discriminator_round(discriminator, d_opt, dataset.train, generator, pre.d_pretrain, rng)
        bar.update(1)
        logger.log(
            pre.mle.epochs + r,
            {"phase": "d_pretrain", "epoch": r, "d/loss": stats["d/loss"], "d/accuracy": stats["d/accuracy"],
             "time/elapsed_s": round(time.perf_counter() - started, 2)},
        )  # fmt: skip
    bar.close()
    logger.close()
    atomic_torch_save(
        {"generator": generator.state_dict(), "discriminator": discriminator.state_dict(), "mle_metrics": metrics},
        final,
    )
    save_text_generator(generator, dataset.vocab, pdir / "generator_mle.pt")
    return generator, discriminator, metrics


def save_text_generator(generator: Generator, vocab: Vocabulary, path: str | os.PathLike) -> None:
    """A self-contained generator checkpoint: weights, config and vocabulary (``load_text_generator``)."""
    atomic_torch_save(
        {
            "generator": generator.state_dict(),
            "generator_config": dataclasses.asdict(generator.config),
            "vocab": vocab.words,
        },
        path,
    )


def load_text_generator(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[Generator, Vocabulary]:
    """Load what ``save_text_generator`` wrote.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file is not a text generator checkpoint (no vocabulary in it).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} not found")
    state = torch.load(path, map_location=device, weights_only=True)
    if not isinstance(state, dict) or "vocab" not in state or "generator_config" not in state:
        raise ValueError(f"{path} is not a text generator checkpoint (expected generator, generator_config, vocab)")
    generator = Generator(GeneratorConfig(**state["generator_config"])).to(device)
    generator.load_state_dict(state["generator"])
    return generator.eval(), Vocabulary(state["vocab"])
