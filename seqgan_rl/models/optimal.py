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

from seqgan_rl.models.generator import Generator
from seqgan_rl.models.oracle import OracleLSTM
from seqgan_rl.utils import check_temperature, check_token_batch, eval_mode


class OptimalDiscriminator:
    """D* for ``generator`` against ``oracle`` (the CNN ``Discriminator``'s scoring interface: ``prob_real``,
    ``prob_real_rollouts``, ``vocab_size``, ``seq_len``, ``device``; an empty state).

    Args:
        oracle: the real data's distribution (the benchmark's oracle).
        generator: G, read live (its weights as they are at each call).
        temperature: the temperature G samples at (p_G is that distribution).
        batch_size: positions per output-layer piece of an LSTM's likelihood pass (rows for other generators).
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
        with eval_mode(self.generator):
            lo = self._log_likelihoods(self.oracle, tokens, 1.0).sum(dim=1)
            lg = self._log_likelihoods(self.generator, tokens, self.temperature).sum(dim=1)
        return lo.to(lg.device) - lg

    def prob_real(self, tokens: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """D*(y) = sigmoid(log p_oracle(y) - log p_G(y)), ``(B,)`` float32 (with ``log``: its logarithm)."""
        return self._score(self.log_ratio(tokens))

    @torch.no_grad()
    def prob_real_rollouts(
        self, sequences: torch.Tensor, completions: torch.Tensor, batch_size: int = 1024
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """D* (or log D*) of completions ``(T-1, N, B, T)`` and of the sequences ``(B, T)``: ``(T-1, N, B)``,
        ``(B,)``.

        ``completions[t-1, n, b]`` shares its first t tokens with ``sequences[b]`` (``sample_prefix_completions``),
        and so their log-likelihood terms: those come from the sequences' own, and only the completed positions are
        scored (half the output-layer work of scoring every completion whole, which dominates an update)."""
        t_len, n = sequences.shape[1], completions.shape[1]
        check_token_batch(sequences, self.vocab_size, self.seq_len)
        prefix_len = torch.arange(1, t_len, device=completions.device).view(-1, 1, 1, 1)  # (T-1, 1, 1, 1)
        in_prefix = torch.arange(t_len, device=completions.device) < prefix_len  # (T-1, 1, 1, T)
        c_shape = completions.shape
        shaped = len(c_shape) == 4 and (c_shape[0], *c_shape[2:]) == (t_len - 1, *sequences.shape)
        if not shaped or (in_prefix & (completions != sequences.to(completions.device))).any():
            raise ValueError(
                "completions must be (T-1, N, B, T) with completions[t-1, n, b] starting with sequences[b]'s first "
                "t tokens (sample_prefix_completions); score other sequences with prob_real"
            )
        models = ((self.oracle, 1.0), (self.generator, self.temperature))
        with eval_mode(self.generator):
            seq = [self._log_likelihoods(m, sequences, tau).to(self.device) for m, tau in models]  # (B, T) float64
            prefix = [torch.cumsum(x, dim=1) for x in seq]  # [:, t-1]: the first t positions
            ratios = []
            for t in range(1, t_len):
                rows = completions[t - 1].reshape(-1, t_len)  # (N*B, T), row n*B + b completes sequences[b]
                lo, lg = (
                    self._log_likelihoods(m, rows, tau, start=t).to(self.device).sum(dim=1) + pre[:, t - 1].repeat(n)
                    for (m, tau), pre in zip(models, prefix, strict=True)
                )
                ratios.append(lo - lg)
        d_comp = self._score(torch.stack(ratios)).view(completions.shape[:3])
        return d_comp, self._score(seq[0].sum(dim=1) - seq[1].sum(dim=1))

    def _score(self, ratio: torch.Tensor) -> torch.Tensor:
        """D* (or log D*) of log-ratios, float32."""
        return (torch.nn.functional.logsigmoid(ratio) if self.log else torch.sigmoid(ratio)).float()

    def _log_likelihoods(self, model: Any, tokens: torch.Tensor, temperature: float, start: int = 0) -> torch.Tensor:
        """``log model(y_k | y_<k)`` for positions ``k >= start``: ``(B, T - start)`` float64.

        An LSTM (``Generator``, the oracle) runs its recurrence over whole rows and its output layer only on the
        positions asked for, in pieces of ``self.batch_size`` positions written into reused buffers (fresh
        ``(pieces, V)`` temporaries cost more in page faults than the arithmetic: ``Generator.sequence_nlls``);
        any other generator scores whole rows with ``log_probs``."""
        b, t_len = tokens.shape
        tokens = tokens.to(model.device)
        if b == 0:
            return torch.zeros(0, t_len - start, dtype=torch.float64, device=model.device)
        if not isinstance(model, Generator):
            size = self.batch_size
            whole = torch.cat([model.log_probs(tokens[i : i + size], temperature) for i in range(0, b, size)])
            return whole[:, start:].double()
        hidden = model.hidden(tokens)[:, start:].reshape(-1, model.config.hidden_dim)  # (B * (T-start), H)
        targets = tokens[:, start:].reshape(-1, 1)
        out = torch.empty(hidden.shape[0], dtype=torch.float64, device=model.device)
        logits_buf = hidden.new_empty(min(self.batch_size, hidden.shape[0]), model.vocab_size)
        logp_buf = torch.empty_like(logits_buf)
        for i in range(0, hidden.shape[0], self.batch_size):
            n = min(self.batch_size, hidden.shape[0] - i)
            logits = torch.addmm(model.output.bias, hidden[i : i + n], model.output.weight.T, out=logits_buf[:n])
            if temperature != 1.0:
                logits.div_(temperature)
            logp = torch.log_softmax(logits, dim=-1, out=logp_buf[:n])
            out[i : i + n] = logp.gather(1, targets[i : i + n]).squeeze(1)
        return out.view(b, t_len - start)

    def state_dict(self) -> dict[str, Any]:
        """Nothing to save: D* is a function of the oracle and G."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...
