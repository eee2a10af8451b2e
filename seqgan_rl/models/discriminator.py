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
from seqgan_rl.utils import check_token_batch


class Discriminator(nn.Module):
    def __init__(self, config: DiscriminatorConfig | None = None) -> None:
        super().__init__()
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
        x = self.embedding(tokens).transpose(1, 2)  # (B, E, T)
        pooled = [F.relu(conv(x)).amax(dim=2) for conv in self.convs]  # each (B, n_w)
        h = torch.cat(pooled, dim=1)  # (B, F)
        gate = torch.sigmoid(self.highway_gate(h))
        h = gate * F.relu(self.highway_hidden(h)) + (1.0 - gate) * h  # highway
        return self.output(self.dropout(h))  # (B, 2)

    def l2_penalty(self) -> torch.Tensor:
        """``l2_reg * (sum(W**2) + sum(b**2)) / 2`` over the output layer only (the reference)."""
        w, b = self.output.weight, self.output.bias
        return self.config.l2_reg * 0.5 * (w.square().sum() + b.square().sum())

    def loss(self, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy (real = 1, fake = 0) plus the L2 penalty on the output layer."""
        return F.cross_entropy(self(tokens), labels) + self.l2_penalty()

    @torch.no_grad()
    def prob_real(self, tokens: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """``D(Y)`` = P(real) for ``(B, T)`` tokens, ``(B,)``, in eval mode (no dropout), chunked."""
        check_token_batch(tokens, self.vocab_size, self.seq_len)
        was_training = self.training
        self.eval()
        try:
            out = []
            for i in range(0, tokens.shape[0], batch_size):
                logits = self(tokens[i : i + batch_size].to(self.device))
                out.append(torch.sigmoid(logits[:, 1] - logits[:, 0]))  # = softmax(logits)[:, 1]
        finally:
            self.train(was_training)
        return torch.cat(out) if out else torch.zeros(0, device=self.device)


def _truncated_normal(shape: torch.Size, std: float, rng: torch.Generator | None) -> torch.Tensor:
    """N(0, std) redrawn outside two standard deviations (TensorFlow's truncated_normal)."""
    x = torch.randn(shape, generator=rng)
    bad = x.abs() > 2
    while bad.any():
        x[bad] = torch.randn(int(bad.sum()), generator=rng)
        bad = x.abs() > 2
    return x * std
