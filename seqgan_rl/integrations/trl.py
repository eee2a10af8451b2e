"""SeqGAN's adversarial reward inside TRL (``pip install -e ".[trl]"``).

TRL's online trainers (``GRPOTrainer``, ``RLOOTrainer``) optimise a language model against reward functions
but have no discriminator: nothing scores a completion by how real it looks, and nothing retrains that score
as the model moves. This module adds both, for any causal LM and tokenizer TRL trains:

- ``DiscriminatorReward``: a reward function in TRL's ``reward_funcs`` form, D's P(real) of each completion
  (this project's CNN discriminator over the tokenizer's ids). It remembers the most recent completions.
- ``DiscriminatorCallback``: a ``transformers.TrainerCallback`` that retrains D every ``every`` steps on those
  completions (label 0) against as many real sequences (label 1): the adversarial loop, inside TRL. D, its
  optimizer, its random stream and the remembered completions are saved in every trainer checkpoint
  (``seqgan_discriminator.pt``) and restored when the trainer resumes from it.

What TRL cannot do and this project's own loop does: TRL's rewards are one number per completion (token-level
rewards were declined, trl#1395, trl#3090), so the reward here is D(Y) of the whole sequence. SeqGAN's
per-token Q, D's expected score of Monte-Carlo completions of every prefix (``seqgan_rl.envs.mc_q_values``),
needs the project's loop: ``scripts/train_agent.py --generator-from PATH`` (docs/huggingface.md).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from seqgan_rl.models.discriminator import Discriminator
from seqgan_rl.training.pretrain import discriminator_step, make_discriminator_optimizer
from seqgan_rl.utils import assert_finite_state, atomic_write_bytes, make_rng

TRL_EXTRA = 'pip install -e ".[trl]"'

try:
    from transformers import TrainerCallback
except ImportError as exc:  # pragma: no cover - the extra is installed wherever the tests run
    raise ImportError(f"seqgan_rl.integrations.trl needs transformers and trl: {TRL_EXTRA}") from exc

__all__ = ["CHECKPOINT_FILE", "DiscriminatorCallback", "DiscriminatorReward", "TRL_EXTRA"]

CHECKPOINT_FILE = "seqgan_discriminator.pt"
"""What ``DiscriminatorCallback`` adds to each ``checkpoint-<step>`` folder of the trainer."""


class DiscriminatorReward:
    """D's P(real) of each completion, as a TRL reward function: ``GRPOTrainer(..., reward_funcs=[reward])``.

    A completion is scored as this project's text sequences are: its token ids up to and including the first
    end token, cut at D's length T, padded after with the pad token (real text is encoded the same way by
    ``encode_texts``). The last ``keep`` completions scored are remembered (``recent``) as the negatives of
    D's next retraining (``DiscriminatorCallback``).

    Args:
        discriminator: D over the tokenizer's ids (``Discriminator(DiscriminatorConfig.light(vocab_size=
            len(tokenizer), seq_len=T))``); scored in eval mode, trained in place by the callback.
        eos_token_id: the end token (a completion's first one ends it).
        pad_token_id: the padding written after the end token.
        keep: how many of the most recent completions to remember.
    """

    __name__ = "discriminator"
    """TRL names a reward function's logged columns after its ``__name__`` (``rewards/discriminator/mean``)."""

    def __init__(self, discriminator: Discriminator, eos_token_id: int, pad_token_id: int, keep: int = 1024) -> None:
        vocab = discriminator.vocab_size
        for name, token in (("eos_token_id", eos_token_id), ("pad_token_id", pad_token_id)):
            if not 0 <= token < vocab:
                raise ValueError(f"{name}={token} is not an id of the discriminator's vocabulary [0, {vocab})")
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.discriminator, self.eos, self.pad, self.keep = discriminator, eos_token_id, pad_token_id, keep
        self.recent = torch.zeros(0, discriminator.seq_len, dtype=torch.long)
        """``(n <= keep, T)``: the most recent completions scored, oldest first."""
        self.pending_metrics: dict[str, float] = {}
        """D's training figures of its last retraining, logged through TRL with the next rewards."""

    @classmethod
    def from_tokenizer(cls, discriminator: Discriminator, tokenizer: Any, keep: int = 1024) -> DiscriminatorReward:
        """The reward for completions of ``tokenizer``'s ids: its end token, and its pad token (else the end
        token) after it.

        Raises:
            ValueError: if the tokenizer has no end token, or more ids than D's vocabulary.
        """
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no end token: set tokenizer.eos_token (what ends a completion)")
        if len(tokenizer) > discriminator.vocab_size:
            raise ValueError(
                f"the tokenizer has {len(tokenizer)} ids but the discriminator's vocabulary has "
                f"{discriminator.vocab_size}: build D with vocab_size=len(tokenizer)"
            )
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        return cls(discriminator, tokenizer.eos_token_id, pad, keep)

    def encode(self, completion_ids: Iterable[Sequence[int]]) -> torch.Tensor:
        """``(B, T)`` int64: each row's ids up to its first end token (kept), at most T, then padding.

        Raises:
            ValueError: for an id outside D's vocabulary.
        """
        seq_len, vocab = self.discriminator.seq_len, self.discriminator.vocab_size
        rows = []
        for ids in completion_ids:
            ids = [int(i) for i in ids]
            if self.eos in ids:
                ids = ids[: ids.index(self.eos) + 1]
            ids = ids[:seq_len]
            bad = [i for i in ids if not 0 <= i < vocab]
            if bad:
                raise ValueError(
                    f"token id {bad[0]} is outside the discriminator's vocabulary [0, {vocab}): build D with "
                    "vocab_size=len(tokenizer) of the model's tokenizer"
                )
            rows.append(ids + [self.pad] * (seq_len - len(ids)))
        return torch.tensor(rows, dtype=torch.long).view(-1, seq_len)

    def encode_texts(self, texts: Iterable[str], tokenizer: Any) -> torch.Tensor:
        """Real sentences as D sees a completion: ``tokenizer``'s ids (no special tokens) + the end token."""
        ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return self.encode([row + [self.eos] for row in ids])

    def remember(self, tokens: torch.Tensor) -> None:
        """Append ``(B, T)`` completions to ``recent``, keeping the last ``keep``."""
        self.recent = torch.cat([self.recent, tokens.cpu()])[-self.keep :]

    @torch.no_grad()
    def __call__(
        self, prompts: Any = None, completions: Any = None, completion_ids: Any = None, log_metric: Any = None,
        **kwargs: Any,
    ) -> list[float]:  # fmt: skip
        """D's P(real) of each completion (TRL passes ``completion_ids``; ``log_metric`` where it offers one)."""
        if completion_ids is None:
            raise ValueError("DiscriminatorReward scores token ids: call it with completion_ids= (TRL passes them)")
        tokens = self.encode(completion_ids)
        self.remember(tokens)
        p_real = self.discriminator.prob_real(tokens).float().cpu()
        if log_metric is not None:  # TRL logs the rewards themselves (rewards/discriminator/mean)
            for name, value in self.pending_metrics.items():
                log_metric(name, value)
            self.pending_metrics = {}
        return p_real.tolist()


class DiscriminatorCallback(TrainerCallback):
    """Retrains D every ``every`` optimizer steps of a TRL (or any ``transformers``) trainer: ``epochs``
    passes in shuffled minibatches over the reward's remembered completions (label 0) and as many real
    sequences drawn at random (label 1), Adam at ``lr``; the reward scores with the retrained D from the next
    generation on. Saved in each trainer checkpoint and restored on resume (see the module's docstring).

    Args:
        reward: the ``DiscriminatorReward`` the trainer scores with.
        real_tokens: ``(N, T)`` real sequences (``reward.encode_texts(texts, tokenizer)``).
        every: retrain after every this many optimizer steps.
        epochs: passes over real + generated per retraining.
        batch_size: D's minibatch.
        lr: D's Adam learning rate.
        weight_decay: D's Adam weight decay.
        seed: the stream of real subsets and minibatch orders.
        resume_from: the checkpoint folder a resumed trainer starts from, when it is not
            ``<output_dir>/checkpoint-<step>`` (the folder ``trainer.train(resume_from_checkpoint=...)`` names).
    """

    def __init__(
        self, reward: DiscriminatorReward, real_tokens: torch.Tensor, every: int = 1, epochs: int = 1,
        batch_size: int = 64, lr: float = 1e-4, weight_decay: float = 0.0, seed: int = 0,
        resume_from: str | Path | None = None,
    ) -> None:  # fmt: skip
        seq_len = reward.discriminator.seq_len
        if real_tokens.dim() != 2 or real_tokens.shape[1] != seq_len or len(real_tokens) == 0:
            raise ValueError(
                f"real_tokens must be (N >= 1, {seq_len}) token ids (reward.encode_texts(texts, tokenizer)), "
                f"got shape {tuple(real_tokens.shape)}"
            )
        for name, value in (("every", every), ("epochs", epochs), ("batch_size", batch_size)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.reward, self.real_tokens = reward, real_tokens.cpu()
        self.every, self.epochs, self.batch_size = every, epochs, batch_size
        self.resume_from = None if resume_from is None else Path(resume_from)
        self.optimizer = make_discriminator_optimizer(reward.discriminator, lr, weight_decay)
        self.rng = make_rng(seed)
        self.history: list[dict[str, float]] = []
        """One entry per retraining: ``step``, ``discriminator/loss``, ``discriminator/accuracy``."""

    def retrain(self, step: int) -> dict[str, float]:
        """One retraining of D on the remembered completions; returns and records its loss and accuracy."""
        d = self.reward.discriminator
        fake = self.reward.recent
        n = min(len(fake), len(self.real_tokens))
        fake = fake[len(fake) - n :]
        real = self.real_tokens[torch.randperm(len(self.real_tokens), generator=self.rng)[:n]]
        tokens = torch.cat([real, fake])
        labels = torch.cat([torch.ones(n, dtype=torch.long), torch.zeros(n, dtype=torch.long)])
        losses, accuracies = [], []
        for _ in range(self.epochs):
            order = torch.randperm(len(tokens), generator=self.rng)
            for i in range(0, len(tokens), self.batch_size):
                idx = order[i : i + self.batch_size]
                loss, acc = discriminator_step(d, self.optimizer, tokens[idx].to(d.device), labels[idx].to(d.device))
                losses.append(loss)
                accuracies.append(acc)
        stats = {
            "discriminator/loss": sum(losses) / len(losses),
            "discriminator/accuracy": sum(accuracies) / len(accuracies),
        }
        self.history.append({"step": float(step), **stats})
        self.reward.pending_metrics.update(stats)
        return stats

    # ------------------------------------------------------------------------------------ trainer events
    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step % self.every == 0 and len(self.reward.recent):
            self.retrain(state.global_step)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        state_dict = self.state_dict()
        path = Path(args.output_dir) / f"checkpoint-{state.global_step}" / CHECKPOINT_FILE
        assert_finite_state(state_dict, str(path))
        buf = io.BytesIO()
        torch.save(state_dict, buf)
        atomic_write_bytes(buf.getvalue(), path)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == 0:  # a fresh run
            return
        folder = self.resume_from or Path(args.output_dir) / f"checkpoint-{state.global_step}"
        path = folder / CHECKPOINT_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"the trainer resumes at step {state.global_step} but {path} does not exist: resume from a "
                "checkpoint saved with this callback, or pass DiscriminatorCallback(resume_from=<its folder>)"
            )
        self.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))

    # ------------------------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """D, its optimizer, the random stream, the remembered completions and the history."""
        return {
            "discriminator": self.reward.discriminator.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": self.rng.get_state(),
            "recent": self.reward.recent,
            "pending_metrics": dict(self.reward.pending_metrics),
            "history": list(self.history),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.reward.discriminator.load_state_dict(state["discriminator"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.set_state(state["rng"])
        self.reward.recent = state["recent"]
        self.reward.pending_metrics = dict(state["pending_metrics"])
        self.history = list(state["history"])
