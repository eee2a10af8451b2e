"""An LSTM classifier as SeqGAN's discriminator, optionally started from the LSTM generator's weights.

Embedding -> one LSTM layer -> [max over time, last output] -> dropout -> linear layer to two classes (fake = 0,
real = 1). ``RecurrentDiscriminator.from_generator(G)`` copies G's embedding and first LSTM layer, so D starts
from features that already model the language: the discriminator screen's best learner when it is fed enough
real data (``benchmarks/results/strong_d_screen_oracle.md``). The adversarial phase uses it with
``AdversarialConfig.d_kind="lstm_from_g"``.
"""

from __future__ import annotations

import torch
from torch import nn

from seqgan_rl.models.discriminator import SequenceClassifier
from seqgan_rl.models.generator import Generator
from seqgan_rl.utils import check_token_batch, eval_mode, mark_home_process


class RecurrentDiscriminator(SequenceClassifier):
    """D(Y) = P(real) of a whole sequence from an LSTM's outputs, with the CNN ``Discriminator``'s interface
    (``forward``, ``train_loss``, ``loss``, ``l2_penalty``, ``prob_real``, ``prob_real_rollouts``, ``vocab_size``,
    ``seq_len``, ``device``). Initialised as torch initialises its layers; no L2 term.

    Args:
        vocab_size, seq_len: the task's.
        embed_dim, hidden_dim: the embedding and LSTM sizes.
        dropout: on the pooled features, in training mode.
    """

    def __init__(
        self, vocab_size: int, seq_len: int, embed_dim: int = 64, hidden_dim: int = 128, dropout: float = 0.5
    ) -> None:
        super().__init__()
        if min(vocab_size, seq_len, embed_dim, hidden_dim) < 1 or not 0.0 <= dropout < 1.0:
            raise ValueError(
                f"RecurrentDiscriminator: sizes must be >= 1 and dropout in [0, 1), got vocab_size={vocab_size}, "
                f"seq_len={seq_len}, embed_dim={embed_dim}, hidden_dim={hidden_dim}, dropout={dropout}"
            )
        mark_home_process(self)
        self._seq_len = seq_len
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_dim, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(2 * hidden_dim, 2)

    @classmethod
    def from_generator(cls, generator: Generator, dropout: float = 0.5) -> RecurrentDiscriminator:
        """A fresh D of G's sizes whose embedding and LSTM are copies of G's embedding and first LSTM layer (the
        output layer is new). Raises ``ValueError`` for a generator that is not the LSTM ``Generator``."""
        if not isinstance(generator, Generator):
            raise ValueError(
                f"a recurrent D starts from the LSTM generator's weights; {type(generator).__name__} has no LSTM "
                "(use the pre-trained discriminator: d_kind='pretrained')"
            )
        c = generator.config
        d = cls(c.vocab_size, c.seq_len, c.embed_dim, c.hidden_dim, dropout)
        d.embedding.load_state_dict(generator.embedding.state_dict())
        d.lstm.load_state_dict({k: v for k, v in generator.lstm.state_dict().items() if k.endswith("_l0")})
        return d.to(generator.device)

    @property
    def vocab_size(self) -> int:
        return self.embedding.num_embeddings

    @property
    def seq_len(self) -> int:
        return self._seq_len

    @property
    def device(self) -> torch.device:
        return self.output.weight.device

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Class logits ``(B, 2)`` (index 1 = real) for ``(B, T)`` token ids."""
        if tokens.dim() != 2 or tokens.shape[1] != self.seq_len:
            raise ValueError(f"discriminator expects (B, {self.seq_len}) token ids, got shape {tuple(tokens.shape)}")
        out = self.lstm(self.embedding(tokens))[0]  # (B, T, H)
        return self.output(self.dropout(torch.cat([out.amax(dim=1), out[:, -1]], dim=1)))

    @torch.no_grad()
    def prob_real_rollouts(
        self, sequences: torch.Tensor, completions: torch.Tensor, batch_size: int = 1024
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """D of Monte-Carlo completions ``(T-1, N, B, T)`` that share their first t tokens with ``sequences[b]``,
        and of the sequences ``(B, T)``: ``(T-1, N, B)``, ``(B,)``. The LSTM reads each prefix once (from
        ``sequences``) and each completion only from its first sampled token on; equal to ``prob_real`` of each
        completion up to float rounding."""
        check_token_batch(sequences, self.vocab_size, self.seq_len, "sequences")
        b, t_len = sequences.shape
        if completions.dim() != 4 or completions.shape[0] != t_len - 1 or completions.shape[2:] != (b, t_len):
            raise ValueError(
                f"completions must be (T-1, N, B, T) = ({t_len - 1}, N, {b}, {t_len}), got {tuple(completions.shape)}"
            )
        n = completions.shape[1]
        with eval_mode(self):
            x = self.embedding(sequences.to(self.device))
            state, hs, cs = None, [], []
            for t in range(t_len):  # the state after each prefix
                _, state = self.lstm(x[:, t : t + 1], state)
                hs.append(state[0])
                cs.append(state[1])
            outs = torch.cat(hs).transpose(0, 1)  # (B, T, H): the output after each token
            d_full = self._prob(torch.cat([outs.amax(dim=1), outs[:, -1]], dim=1))
            running = outs.cummax(dim=1).values  # [:, t-1]: max over the first t outputs
            out = torch.empty(t_len - 1, n * b, device=self.device)
            rows = completions.reshape(t_len - 1, n * b, t_len).to(self.device)
            for t in range(1, t_len):
                for i in range(0, n * b, batch_size):
                    idx = torch.arange(i, min(i + batch_size, n * b), device=self.device) % b  # row -> sequence
                    start = (hs[t - 1][:, idx], cs[t - 1][:, idx])
                    suffix = self.lstm(self.embedding(rows[t - 1, i : i + len(idx), t:]), start)[0]  # (r, T-t, H)
                    pooled = torch.maximum(running[idx, t - 1], suffix.amax(dim=1))
                    out[t - 1, i : i + len(idx)] = self._prob(torch.cat([pooled, suffix[:, -1]], dim=1))
        return out.view(t_len - 1, n, b), d_full

    def _prob(self, features: torch.Tensor) -> torch.Tensor:
        logits = self.output(self.dropout(features))  # (B, 2)
        return torch.sigmoid(logits[:, 1] - logits[:, 0])  # = softmax(logits)[:, 1]
