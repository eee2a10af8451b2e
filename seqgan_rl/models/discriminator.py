"""SeqGAN's CNN discriminator D_phi(Y) = P(Y is real).

Embedding -> one convolution per width (ReLU, max over time) -> concatenation -> one highway layer ->
dropout -> linear layer to two classes (fake = 0, real = 1). ``DiscriminatorConfig.paper()`` is the
reference model (widths 1-10, 15, 20; 1,720 filters); ``DiscriminatorConfig.light()`` is a CPU preset.
Initialisation follows the reference: embeddings U(-1, 1), convolution and output weights truncated
N(0, 0.1) with biases 0.1, highway layers Glorot-uniform with zero biases.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from seqgan_rl.config import DiscriminatorConfig
from seqgan_rl.utils import check_token_batch, eval_mode, mark_home_process, parallel_map


class SequenceClassifier(nn.Module):
    """What a D that scores whole sequences with its ``forward`` logits shares (the recurrent and the transformer D):
    cross-entropy without an L2 term (use the optimizer's weight decay), and ``prob_real`` as the softmax of
    ``forward`` in eval mode, chunked. A subclass gives ``forward``, ``vocab_size``, ``seq_len`` and ``device``."""

    def train_loss(self, tokens: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy and accuracy of a labelled batch (no L2 term: use the optimizer's weight decay)."""
        logits = self(tokens)
        return F.cross_entropy(logits, labels), (logits.detach().argmax(dim=1) == labels).float().mean()

    def loss(self, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.train_loss(tokens, labels)[0]

    def l2_penalty(self) -> torch.Tensor:
        return torch.zeros((), device=self.device)

    @torch.no_grad()
    def prob_real(self, tokens: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """``D(Y)`` = P(real) for ``(B, T)`` tokens, ``(B,)``, in eval mode (no dropout), chunked."""
        check_token_batch(tokens, self.vocab_size, self.seq_len)
        with eval_mode(self):
            out = [
                torch.softmax(self(tokens[i : i + batch_size].to(self.device)), dim=1)[:, 1]
                for i in range(0, len(tokens), batch_size)
            ]
        return torch.cat(out) if out else torch.zeros(0, device=self.device)


class Discriminator(nn.Module):
    def __init__(self, config: DiscriminatorConfig | None = None) -> None:
        super().__init__()
        mark_home_process(self)
        self.config = config or DiscriminatorConfig.paper()
        c = self.config
        self.embedding = nn.Embedding(c.vocab_size, c.embed_dim)
        self.convs = nn.ModuleList(
            nn.Conv1d(c.embed_dim, n, w) for w, n in zip(c.filter_sizes, c.num_filters, strict=True)
        )
        f = c.total_filters
        self.highway_gate = nn.Linear(f, f)
        self.highway_hidden = nn.Linear(f, f)
        self.dropout = nn.Dropout(c.dropout)
        self.output = nn.Linear(f, 2)
        self._tables: list[torch.Tensor] = []  # inference cache, see window_tables()
        self._tables_key: tuple | None = None
        self.reset_parameters()

    def reset_parameters(self, rng: torch.Generator | None = None) -> None:
        with torch.no_grad():
            self.embedding.weight.copy_(torch.rand(self.embedding.weight.shape, generator=rng) * 2 - 1)
            for layer in [*self.convs, self.output]:
                layer.weight.copy_(_truncated_normal(layer.weight.shape, 0.1, rng))
                layer.bias.fill_(0.1)
            for layer in (self.highway_gate, self.highway_hidden):
                fan_out, fan_in = layer.weight.shape
                limit = (6.0 / (fan_in + fan_out)) ** 0.5
                layer.weight.copy_((torch.rand(layer.weight.shape, generator=rng) * 2 - 1) * limit)
                layer.bias.zero_()

    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    @property
    def seq_len(self) -> int:
        return self.config.seq_len

    @property
    def device(self) -> torch.device:
        return self.output.weight.device

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Class logits ``(B, 2)`` (index 1 = real) for ``(B, T)`` token ids."""
        if tokens.dim() != 2 or tokens.shape[1] != self.seq_len:
            raise ValueError(f"discriminator expects (B, {self.seq_len}) token ids, got shape {tuple(tokens.shape)}")
        return self.head(self._conv_pooled(tokens))

    def _conv_pooled(self, tokens: torch.Tensor) -> torch.Tensor:
        """Embedding -> convolutions -> ReLU -> max over time, concatenated ``(B, F)`` (the training path)."""
        x = self.embedding(tokens).transpose(1, 2)  # (B, E, T)
        return torch.cat([F.relu(conv(x)).amax(dim=2) for conv in self.convs], dim=1)  # each width (B, n_w)

    def head(self, pooled: torch.Tensor) -> torch.Tensor:
        """Highway -> dropout -> output: pooled features ``(B, F)`` to class logits ``(B, 2)``."""
        return self.output(self.dropout(self._highway(pooled)))  # (B, 2)

    def _highway(self, pooled: torch.Tensor) -> torch.Tensor:
        """The highway layer, ``(B, F)`` to ``(B, F)``."""
        gate = torch.sigmoid(self.highway_gate(pooled))
        return gate * F.relu(self.highway_hidden(pooled)) + (1.0 - gate) * pooled

    def l2_penalty(self) -> torch.Tensor:
        """``l2_reg * (sum(W**2) + sum(b**2)) / 2`` over the output layer only (the reference)."""
        w, b = self.output.weight, self.output.bias
        return self.config.l2_reg * 0.5 * (w.square().sum() + b.square().sum())

    def loss(self, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy (real = 1, fake = 0) plus the L2 penalty on the output layer."""
        return self.train_loss(tokens, labels)[0]

    def train_loss(self, tokens: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The training step's loss (``loss``) and the batch's accuracy (no gradient)."""
        logits = self(tokens)
        loss = F.cross_entropy(logits, labels) + self.l2_penalty()
        return loss, (logits.detach().argmax(dim=1) == labels).float().mean()

    @torch.no_grad()
    def prob_real(self, tokens: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """``D(Y)`` = P(real) for ``(B, T)`` tokens, ``(B,)``, in eval mode (no dropout), chunked.

        Uses the window tables (``window_tables``): equal to ``softmax(self(tokens))[:, 1]`` in eval mode
        up to float rounding, several times faster on a CPU.
        """
        check_token_batch(tokens, self.vocab_size, self.seq_len)
        with eval_mode(self):
            out = [
                self._prob(self._pooled(tokens[i : i + batch_size].to(self.device)))
                for i in range(0, len(tokens), batch_size)
            ]
        return torch.cat(out) if out else torch.zeros(0, device=self.device)

    @torch.no_grad()
    def prob_real_rollouts(
        self, sequences: torch.Tensor, completions: torch.Tensor, batch_size: int = 1024
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """D of Monte-Carlo completions that share their prefixes with ``sequences``, reusing the prefix.

        ``completions[t-1, n, b]`` must equal ``sequences[b]`` on its first ``t`` tokens. A convolution
        window that lies inside those ``t`` tokens has the same value for the completion as for
        ``sequences[b]``, so it is taken from ``sequences``' own pass (a running max over windows) and
        only the windows that touch the sampled suffix are computed (2/3 of the convolution work for the
        paper's CNN). The result equals ``prob_real`` of each completion up to float rounding.

        Args:
            sequences: ``(B, T)`` the sampled sequences Y.
            completions: ``(T-1, N, B, T)`` completions of the prefixes Y_{1:t}, t = 1..T-1.
            batch_size: rows per chunk.

        Returns:
            ``(D(completions) (T-1, N, B), D(sequences) (B,))``.
        """
        check_token_batch(sequences, self.vocab_size, self.seq_len, "sequences")
        b, t_len = sequences.shape
        if completions.dim() != 4 or completions.shape[0] != t_len - 1 or completions.shape[2:] != (b, t_len):
            raise ValueError(
                f"completions must be (T-1, N, B, T) = ({t_len - 1}, N, {b}, {t_len}), got {tuple(completions.shape)}"
            )
        with eval_mode(self):
            sums = self._window_sums(sequences.to(self.device))  # each (B, windows_w, n_w), before bias/ReLU
            d_full = self._prob(self._activate([a.amax(dim=1) for a in sums]))
            running = [a.cummax(dim=1).values for a in sums]  # [:, j] = max over windows 0..j
            n = completions.shape[1]
            out = torch.empty(t_len - 1, n * b, device=self.device)
            rows = completions.reshape(t_len - 1, n * b, t_len).to(self.device)

            def chunk(item: tuple[int, int]) -> None:
                t, i = item
                part = rows[t - 1, i : i + batch_size]
                firsts = [max(0, t - w + 1) for w in self.config.filter_sizes]  # first window touching the suffix
                seq_idx = torch.arange(i, i + part.shape[0], device=self.device) % b  # row -> sequence
                window_max = [a.amax(dim=1) for a in self._window_sums(part, firsts)]
                for k, first in enumerate(firsts):
                    if first > 0:  # windows 0..first-1 lie in the prefix
                        window_max[k] = torch.maximum(window_max[k], running[k][seq_idx, first - 1])
                out[t - 1, i : i + part.shape[0]] = self._prob(self._activate(window_max))

            items = [(t, i) for t in range(1, t_len) for i in range(0, n * b, batch_size)]
            parallel_map(chunk, items, self.device)  # on the CPU side by side (the tables are built: read only)
        return out.view(t_len - 1, n, b), d_full

    # ------------------------------------------------------------------ fast inference
    @torch.no_grad()
    def window_tables(self) -> list[torch.Tensor]:
        """Per width w, a table ``(w * V, n_w)`` whose row ``k * V + y`` is ``embedding[y] @ W_w[:, :, k]``.

        A convolution window is then the sum of w table rows: one ``embedding_bag`` gather-sum instead of
        a (w x E)-deep dot product per filter (measured ~4x faster on a CPU; exact up to rounding). Built
        once (8 GFLOP and 250 MB for the paper CNN) and cached until D's weights change.
        """
        key = tuple((p.data_ptr(), p._version) for p in [self.embedding.weight, *(c.weight for c in self.convs)])
        if self._tables_key != key:
            emb = self.embedding.weight.detach()  # (V, E)
            tables = []
            for conv in self.convs:
                n, e, w = conv.weight.shape
                proj = emb @ conv.weight.detach().permute(1, 2, 0).reshape(e, w * n)  # (V, w * n)
                tables.append(proj.view(-1, w, n).transpose(0, 1).reshape(-1, n).contiguous())  # (w * V, n)
            self._tables, self._tables_key = tables, key
        return self._tables

    def _window_sums(self, tokens: torch.Tensor, firsts: list[int] | None = None) -> list[torch.Tensor]:
        """Convolution outputs before bias and ReLU, ``(B, windows, n_w)`` per width, for the windows
        starting at ``firsts[k]`` (default 0), by table look-up."""
        v = self.vocab_size
        sums = []
        for k, (conv, table) in enumerate(zip(self.convs, self.window_tables(), strict=True)):
            w = conv.kernel_size[0]
            first = 0 if firsts is None else firsts[k]
            idx = tokens[:, first:].unfold(1, w, 1) + torch.arange(w, device=tokens.device) * v  # (B, win, w)
            sums.append(
                F.embedding_bag(idx.reshape(-1, w), table, mode="sum").view(tokens.shape[0], -1, table.shape[1])
            )
        return sums

    def _activate(self, window_max: list[torch.Tensor]) -> torch.Tensor:
        """ReLU(max + bias) per width, concatenated ``(B, F)``: the max over windows of ReLU(window + bias),
        since x -> ReLU(x + b) is non-decreasing; taking the max first touches far fewer values."""
        return torch.cat([F.relu(m + conv.bias) for m, conv in zip(window_max, self.convs, strict=True)], dim=1)

    def _pooled(self, tokens: torch.Tensor) -> torch.Tensor:
        """Max over windows of the ReLU'd convolutions, concatenated: ``(B, F)``."""
        return self._activate([a.amax(dim=1) for a in self._window_sums(tokens)])

    def _prob(self, pooled: torch.Tensor) -> torch.Tensor:
        logits = self.head(pooled)  # (B, 2)
        return torch.sigmoid(logits[:, 1] - logits[:, 0])  # = softmax(logits)[:, 1]


class Ranker(Discriminator):
    """RankGAN's ranker (Lin et al. 2017, "Adversarial Ranking for Language Generation"): D's CNN and highway
    layer as a feature map f (the output layer unused), scoring a sequence by how it ranks against human ones.

    With cosine similarities alpha(s | u) = cos(f(s), f(u)) to each reference sequence u of ``references`` (U,
    human-written), the rank score of s among a comparison set C is (the paper's eq. 3)

        R(s | U, C) = mean_u  exp(gamma alpha(s|u)) / sum_{s' in C + {s}} exp(gamma alpha(s'|u)).

    ``prob_real`` (and the rollouts' ``prob_real_rollouts``) returns the reward of a generated sequence,
    ``(K + 1) R(s | U, C+)`` with C+ = ``comparison`` (K human sequences), so that a sequence ranked like the
    average human one gets about 1 (the paper's raw R would be ~1/(K+1): REINFORCE's steps would shrink by
    K+1). ``train_loss`` is the ranker's objective (the paper's eq. 2), on a batch of human (label 1) and
    generated (label 0) sequences, each ranked against the *other* class of the batch:

        loss = - mean_{h human} log R(h | U, C-) - mean_{g generated} log(1 - R(g | U, C+)).

    U and C+ are drawn once from the training data (``from_discriminator``) and saved with the weights.
    """

    def __init__(
        self, config: DiscriminatorConfig, references: torch.Tensor, comparison: torch.Tensor, gamma: float = 1.0
    ) -> None:
        super().__init__(config)
        if not gamma > 0:
            raise ValueError(f"Ranker: gamma={gamma} must be > 0")
        check_token_batch(references, config.vocab_size, config.seq_len, "references")
        check_token_batch(comparison, config.vocab_size, config.seq_len, "comparison")
        self.gamma = float(gamma)
        self.register_buffer("references", references.clone())
        self.register_buffer("comparison", comparison.clone())

    @classmethod
    def from_discriminator(
        cls, discriminator: Discriminator, real: torch.Tensor, rng: torch.Generator, num_references: int = 16,
        comparison_size: int = 63, gamma: float = 1.0,
    ) -> Ranker:  # fmt: skip
        """A ranker with ``discriminator``'s weights (its features: the pre-trained D's CNN), references and a
        comparison set drawn without replacement from the human sequences ``real``."""
        if num_references + comparison_size > real.shape[0]:
            raise ValueError(f"Ranker: {num_references} + {comparison_size} sequences needed, {real.shape[0]} given")
        idx = torch.randperm(real.shape[0], generator=rng)[: num_references + comparison_size]
        picked = real[idx].to(discriminator.device)
        ranker = cls(discriminator.config, picked[:num_references], picked[num_references:], gamma)
        ranker.load_state_dict({**discriminator.state_dict(), "references": ranker.references,
                                "comparison": ranker.comparison})  # fmt: skip
        return ranker.to(discriminator.device)

    def features(self, tokens: torch.Tensor) -> torch.Tensor:
        """f(tokens), unit-normalised, ``(B, F)`` (dropout in training mode)."""
        return F.normalize(self.dropout(self._highway(self._conv_pooled(tokens))), dim=1)

    def rank_scores(self, alpha: torch.Tensor, alpha_set: torch.Tensor) -> torch.Tensor:
        """R(s | U, C) for similarities ``alpha`` ``(n, U)`` of the sequences and ``alpha_set`` ``(K, U)`` of C."""
        e = torch.exp(self.gamma * alpha)  # (n, U)
        z = torch.exp(self.gamma * alpha_set).sum(dim=0)  # (U,)
        return (e / (e + z)).mean(dim=1)

    def train_loss(self, tokens: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The ranker's loss on a batch (each class ranked against the other), and the share of (human,
        generated) pairs whose mean similarity to the references puts the human one first."""
        alpha = self.features(tokens) @ self.features(self.references).T  # (B, U)
        human, gen = labels == 1, labels == 0
        r_h = self.rank_scores(alpha[human], alpha[gen])
        r_g = self.rank_scores(alpha[gen], alpha[human])
        loss = -torch.log(r_h).sum() / max(len(r_h), 1) - torch.log1p(-r_g).sum() / max(len(r_g), 1)
        mean_sim = alpha.detach().mean(dim=1)
        pairs = (mean_sim[human].unsqueeze(1) > mean_sim[gen].unsqueeze(0)).float()
        return loss, pairs.mean() if pairs.numel() else torch.tensor(0.0)

    def _prob(self, pooled: torch.Tensor) -> torch.Tensor:
        """The reward ``(K + 1) R(s | U, C+)`` of each row of pooled CNN features (eval mode: no dropout)."""
        f = F.normalize(self._highway(pooled), dim=1)
        refs = F.normalize(self._highway(self._pooled(self.references)), dim=1)  # (U, F)
        comp = F.normalize(self._highway(self._pooled(self.comparison)), dim=1)  # (K, F)
        return (self.comparison.shape[0] + 1) * self.rank_scores(f @ refs.T, comp @ refs.T)


def _truncated_normal(shape: torch.Size, std: float, rng: torch.Generator | None) -> torch.Tensor:
    """N(0, std) redrawn outside two standard deviations (TensorFlow's truncated_normal)."""
    x = torch.randn(shape, generator=rng)
    bad = x.abs() > 2
    while bad.any():
        x[bad] = torch.randn(int(bad.sum()), generator=rng)
        bad = x.abs() > 2
    return x * std
