"""A Hugging Face sequence classifier as SeqGAN's discriminator (the ``hf`` extra).

``TransformerDiscriminator`` wraps any ``transformers`` ``AutoModelForSequenceClassification`` with two labels
(index 1 = real, as the CNN's) behind the CNN ``Discriminator``'s interface: ``forward`` (class logits),
``prob_real``, ``prob_real_rollouts``, ``train_loss``, ``l2_penalty``, ``vocab_size``, ``seq_len``, ``device``. It
reads the task's token ids, so it shares G's tokenizer or vocabulary. On real text the positions after the end
token are masked out of its attention and it pools at the end token (the model's ``pad_token_id`` is set to the
task's pad id; on the oracle benchmark, to an id outside the vocabulary: every position is read, the last pooled).
"""

from __future__ import annotations

from typing import Any

import torch

from seqgan_rl.config import TransformerDiscriminatorConfig, load_hf_config
from seqgan_rl.models.discriminator import SequenceClassifier
from seqgan_rl.models.transformer import init_weights
from seqgan_rl.utils import check_token_batch, pad_after_eos, require_transformers, valid_mask


class TransformerDiscriminator(SequenceClassifier):
    """D as a ``transformers`` sequence classifier. Build it with ``from_config`` (a fresh model of the config's
    size, or its ``pretrained`` folder), or wrap a model: ``TransformerDiscriminator(model, config)``.

    Args:
        model: an ``AutoModelForSequenceClassification`` with ``num_labels == 2`` and at least
            ``config.vocab_size`` input ids.
        config: the task's sizes and tokens (``vocab_size``, ``seq_len``, ``eos_token``, ``pad_token``).

    Raises:
        ValueError: a model with another number of labels, or fewer input ids than the task has.
    """

    def __init__(self, model: Any, config: TransformerDiscriminatorConfig) -> None:
        super().__init__()
        if model.config.num_labels != 2:
            labels = model.config.num_labels
            raise ValueError(f"the discriminator must have 2 labels (fake, real), this model has {labels}")
        if model.config.vocab_size < config.vocab_size:
            raise ValueError(
                f"the discriminator's vocabulary ({model.config.vocab_size} ids) is smaller than the task's "
                f"({config.vocab_size}): it was made for another tokenizer"
            )
        self.model, self.config = model, config
        # pooling: the last position that is not padding (the end token on text; the last position on the oracle)
        model.config.pad_token_id = config.pad_token if config.pad_token is not None else model.config.vocab_size

    @classmethod
    def from_config(cls, config: TransformerDiscriminatorConfig) -> TransformerDiscriminator:
        """A fresh GPT-2- or Llama-style classifier of ``config``'s size (initialised as ``transformers`` does), or
        the one saved in ``config.pretrained``."""
        transformers = require_transformers()
        if config.pretrained is not None:
            try:
                model = transformers.AutoModelForSequenceClassification.from_pretrained(config.pretrained)
            except (OSError, ValueError) as exc:
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise ValueError(
                    f"--discriminator-from {config.pretrained}: not a transformers sequence classifier ({first})"
                ) from exc
            return cls(model, config)
        c, d = config, config.dropout
        if c.architecture == "gpt2":
            hf = transformers.GPT2Config(
                vocab_size=c.vocab_size, n_positions=c.seq_len, n_embd=c.hidden_dim, n_layer=c.num_layers,
                n_head=c.num_heads, resid_pdrop=d, embd_pdrop=d, attn_pdrop=d, bos_token_id=None, eos_token_id=None,
            )  # fmt: skip
        else:
            hf = transformers.LlamaConfig(
                vocab_size=c.vocab_size, max_position_embeddings=c.seq_len, hidden_size=c.hidden_dim,
                intermediate_size=4 * c.hidden_dim, num_hidden_layers=c.num_layers, num_attention_heads=c.num_heads,
                num_key_value_heads=c.num_heads, attention_dropout=d, bos_token_id=None, eos_token_id=None,
            )  # fmt: skip
        hf.num_labels = 2
        return cls(transformers.AutoModelForSequenceClassification.from_config(hf), config)

    def reset_parameters(self, rng: torch.Generator | None = None) -> None:
        """A fresh classifier drawn from ``rng`` (as the transformer generator's); one loaded from ``pretrained``
        keeps its weights."""
        if self.config.pretrained is None:
            init_weights(self.model, rng)

    # ------------------------------------------------------------------------------------------ sizes
    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    @property
    def seq_len(self) -> int:
        return self.config.seq_len

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ------------------------------------------------------------------------------------------ scores
    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Class logits ``(B, 2)`` (index 1 = real) for ``(B, T)`` token ids."""
        if tokens.dim() != 2 or tokens.shape[1] != self.seq_len:
            raise ValueError(f"discriminator expects (B, {self.seq_len}) token ids, got shape {tuple(tokens.shape)}")
        c = self.config
        if c.eos_token is not None:  # padding after the end token, whatever followed it: pooled at the end token
            tokens = pad_after_eos(tokens, c.eos_token, c.pad_token)
        mask = valid_mask(tokens, c.eos_token).long()
        return self.model(input_ids=tokens, attention_mask=mask).logits.float()

    @torch.no_grad()
    def prob_real_rollouts(
        self, sequences: torch.Tensor, completions: torch.Tensor, batch_size: int = 1024
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """D of Monte-Carlo completions ``(T-1, N, B, T)`` and of the sequences ``(B, T)``: ``(T-1, N, B)``,
        ``(B,)`` (the CNN's interface; every completion is scored whole)."""
        check_token_batch(sequences, self.vocab_size, self.seq_len, "sequences")
        t_len = sequences.shape[1]
        if completions.dim() != 4 or completions.shape[0] != t_len - 1 or completions.shape[2:] != sequences.shape:
            raise ValueError(
                f"completions must be (T-1, N, B, T) = ({t_len - 1}, N, {sequences.shape[0]}, {t_len}), got "
                f"{tuple(completions.shape)}"
            )
        d_comp = self.prob_real(completions.reshape(-1, t_len), batch_size).view(completions.shape[:3])
        return d_comp, self.prob_real(sequences, batch_size)


def check_pretrained_discriminator(path: str, vocab_size: int) -> None:
    """Refuse, before any work, a ``--discriminator-from`` folder that holds no sequence classifier, one with
    another number of labels than 2, or one with fewer input ids than the task's ``vocab_size``."""
    hf = load_hf_config(path, "--discriminator-from")
    if hf.num_labels != 2:
        raise ValueError(
            f"--discriminator-from {path}: a classifier with {hf.num_labels} labels; D needs 2 (fake, real)"
        )
    if hf.vocab_size < vocab_size:
        raise ValueError(
            f"--discriminator-from {path}: its vocabulary ({hf.vocab_size} ids) is smaller than the task's "
            f"({vocab_size}): it was made for another tokenizer"
        )
