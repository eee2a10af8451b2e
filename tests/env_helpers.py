"""Tiny models and test doubles shared by the environment tests."""

from __future__ import annotations

import torch

from seqgan_rl.config import DiscriminatorConfig, GeneratorConfig
from seqgan_rl.models import Discriminator, Generator
from seqgan_rl.utils import make_rng

V, T = 10, 6


def tiny_generator(seed: int = 0, vocab_size: int = V, seq_len: int = T, num_layers: int = 1) -> Generator:
    """A small generator with weights large enough for peaked distributions; ``num_layers`` 2 is a stacked LSTM
    whose embedding (8) and hidden (6) sizes differ."""
    sizes = {"embed_dim": 8, "hidden_dim": 8} if num_layers == 1 else {"embed_dim": 8, "hidden_dim": 6}
    g = Generator(GeneratorConfig(vocab_size=vocab_size, seq_len=seq_len, num_layers=num_layers, init_std=0.5, **sizes))
    g.reset_parameters(make_rng(seed))
    return g.eval()


def tiny_discriminator(seed: int = 1, vocab_size: int = V, seq_len: int = T) -> Discriminator:
    d = Discriminator(
        DiscriminatorConfig(
            vocab_size=vocab_size, seq_len=seq_len, embed_dim=8, filter_sizes=(1, 2, 3), num_filters=(4, 5, 6)
        )
    )
    d.reset_parameters(make_rng(seed))
    return d.eval()


class FirstTokenD:
    """A deterministic 'discriminator' that looks only at the first token: Q_t = D(Y) for every t >= 1,
    whatever the rollouts sample, so MC rewards become exactly predictable."""

    def __init__(self, vocab_size: int = V, seq_len: int = T) -> None:
        self.vocab_size, self.seq_len, self.device = vocab_size, seq_len, torch.device("cpu")

    def prob_real(self, tokens: torch.Tensor) -> torch.Tensor:
        return (tokens[:, 0].double() + 1.0) / (self.vocab_size + 1.0)
