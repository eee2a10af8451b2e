"""The Bayes-optimal discriminator of the oracle benchmark: a diagnostic with oracle access, never a benchmark row.

When the real data is an oracle's samples and G's likelihood is known, the discriminator that minimises D's
cross-entropy between real and generated sequences is

    D*(y) = p_oracle(y) / (p_oracle(y) + p_G(y)) = sigmoid(log p_oracle(y) - log p_G(y))

(Goodfellow et al. 2014, Prop. 1), computed here from the two sequence log-likelihoods in float64. Through SeqGAN's
Monte-Carlo rollouts it gives Q_t = E[D*(Y) | y_1..t] with Y completed by G: the reward SeqGAN's D approximates,
without the error of a D learned from 10,000 sequences. It reads G's *current* weights (the optimal D of the G
being trained) at G's sampling temperature, has no parameters and is never trained.

With ``log=True`` it scores log D*(y) = logsigmoid(log p_oracle - log p_G) instead (``reward="optimal_log"``): the
non-saturating generator objective of Goodfellow et al. For a G far from the oracle, log p_oracle - log p_G is tens
of nats below zero on nearly every sequence, so D* itself is exponentially small and one sequence of a batch carries
most of its total (``benchmarks/dstar_diagnostic.py``); its log keeps the ranking and the scale.
"""

from __future__ import annotations

from typing import Any

import torch

from seqgan_rl.models.oracle import OracleLSTM
from seqgan_rl.utils import check_temperature, check_token_batch, eval_mode


class OptimalDiscriminator:
    """D* for ``generator`` against ``oracle`` (the CNN ``Discriminator``'s scoring interface: ``prob_real``,
    ``prob_real_rollouts``, ``vocab_size``, ``seq_len``, ``device``; an empty state).

    Args:
        oracle: the real data's distribution (the benchmark's oracle).
        generator: G, read live (its weights as they are at each call).
        temperature: the temperature G samples at (p_G is that distribution).
        batch_size: rows per likelihood pass.
        log: score log D* (<= 0) instead of D* (``prob_real`` then returns log-probabilities).

    Raises:
        ValueError: if the oracle and G differ in vocabulary or length, or G has an end token (the oracle
            benchmark has none).
    """

    def __init__(
        self, oracle: OracleLSTM, generator: Any, temperature: float = 1.0, batch_size: int = 1024, log: bool = False
    ) -> None:
        if (oracle.vocab_size, oracle.seq_len) != (generator.vocab_size, generator.seq_len):
            raise ValueError(
                f"the optimal discriminator needs the oracle (V={oracle.vocab_size}, T={oracle.seq_len}) and G "
                f"(V={generator.vocab_size}, T={generator.seq_len}) on the same sequences"
            )
        if generator.config.eos_token is not None:
            raise ValueError("the optimal discriminator is defined on the oracle benchmark (no end token)")
        self.oracle, self.generator = oracle, generator
        self.temperature, self.batch_size, self.log = check_temperature(temperature), batch_size, log

    @property
    def vocab_size(self) -> int:
        return self.oracle.vocab_size

    @property
    def seq_len(self) -> int:
        return self.oracle.seq_len

    @property
    def device(self) -> torch.device:
        return self.generator.device

    @torch.no_grad()
    def log_ratio(self, tokens: torch.Tensor) -> torch.Tensor:
        """``log p_oracle(y) - log p_G(y)`` per sequence, ``(B,)`` float64 (G in eval mode, at its temperature)."""
        check_token_batch(tokens, self.vocab_size, self.seq_len)
        out = []
        with eval_mode(self.generator):
            for i in range(0, len(tokens), self.batch_size):
                part = tokens[i : i + self.batch_size]
                lo = self.oracle.log_probs(part.to(self.oracle.device)).double().sum(dim=1)
                lg = self.generator.log_probs(part.to(self.device), self.temperature).double().sum(dim=1)
                out.append(lo.to(lg.device) - lg)
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64, device=self.device)

    def prob_real(self, tokens: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """D*(y) = sigmoid(log p_oracle(y) - log p_G(y)), ``(B,)`` float32 (with ``log``: its logarithm)."""
        ratio = self.log_ratio(tokens)
        return (torch.nn.functional.logsigmoid(ratio) if self.log else torch.sigmoid(ratio)).float()

    @torch.no_grad()
    def prob_real_rollouts(
        self, sequences: torch.Tensor, completions: torch.Tensor, batch_size: int = 1024
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """D* (or log D*) of completions ``(T-1, N, B, T)`` and of the sequences ``(B, T)``: ``(T-1, N, B)``,
        ``(B,)``."""
        t_len = sequences.shape[1]
        d_comp = self.prob_real(completions.reshape(-1, t_len)).view(completions.shape[:3])
        return d_comp, self.prob_real(sequences)

    def state_dict(self) -> dict[str, Any]:
        """Nothing to save: D* is a function of the oracle and G."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...
