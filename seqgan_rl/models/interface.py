"""What every path asks of a generator: the interface the LSTM ``Generator`` and the ``TransformerGenerator`` share.

The env and its rollouts, the vector env, the agents, pre-training, evaluation, checkpoints, ``sample.py`` and
torchrun call only the methods below. A *prefix state* is whatever a generator carries from one token to the next
(the LSTM: ``(h, c)``; a transformer: its key/value cache); callers never look inside it: they make one
(``initial_state``, ``prefix_states`` + ``prefix_state_rows``), advance it one token (``step``, ``advance``,
``sample_step``), pick rows of it (``state_rows``: a subset, a reordering or N repeats for N rollouts) and write
rows back (``set_state_rows``).

Teacher-forced scoring: ``forward`` (logits), ``log_probs``, ``mle_loss``, ``sequence_nlls`` / ``nll`` / ``nlls``.
Sampling: ``sample_next`` (exact, ``models.sampling``), ``sample_step``, ``sample``. Tokens: ``config.start_token``
is the first input of every sequence; real text adds ``config.eos_token`` and ``config.pad_token``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from seqgan_rl.models.sampling import sample_categorical
from seqgan_rl.utils import check_temperature, pad_after_eos, valid_mask


class GeneratorBase(nn.Module):
    """The methods every generator shares (computed from the model-specific ones), and the list of those.

    Model-specific (each generator implements them): ``reset_parameters(rng)``, ``forward(tokens) -> (B, T, V)``,
    ``mle_loss(tokens)``, ``sequence_nlls(tokens, temperatures, batch_size)``, ``initial_state(B)``,
    ``step(prev, state) -> (logits, state)``, ``advance(prev, state) -> state``, ``prefix_states(tokens)``,
    ``prefix_state_rows(states, rows, index)``, ``state_rows(state, rows)``, ``set_state_rows(state, rows, new)``,
    ``logit_bound()``, ``sample_step(prev, state, rng, temperature, bound) -> (tokens, state)`` and
    ``sample(num, rng, temperature, batch_size)``.
    """

    config: Any

    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    @property
    def seq_len(self) -> int:
        return self.config.seq_len

    def start_tokens(self, batch_size: int) -> torch.Tensor:
        """The first input of every sequence: ``(B,)`` filled with the start token."""
        return torch.full((batch_size,), self.config.start_token, dtype=torch.long, device=self.device)

    def log_probs(self, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """``log G(y_t | y_<t)`` for each position: ``(B, T)``, at the given sampling temperature."""
        logits = self(tokens)
        if temperature != 1.0:
            logits = logits / check_temperature(temperature)
        return torch.log_softmax(logits, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)

    @torch.no_grad()
    def sequence_nll(self, tokens: torch.Tensor, temperature: float = 1.0, batch_size: int = 64) -> torch.Tensor:
        """Per-sequence mean NLL in nats, ``(B,)`` (with an end token: over the positions up to and including it)."""
        return self.sequence_nlls(tokens, (temperature,), batch_size)[0]

    def nll(self, tokens: torch.Tensor, temperature: float = 1.0, batch_size: int = 64) -> float:
        """Per-token mean NLL in nats over all ``tokens`` (sequences have equal length; with an end token,
        over all positions up to and including each sequence's end token)."""
        return self.nlls(tokens, (temperature,), batch_size)[0]

    def nlls(self, tokens: torch.Tensor, temperatures: Sequence[float], batch_size: int = 64) -> list[float]:
        """``nll`` at each of several temperatures (one pass: ``sequence_nlls``)."""
        per_seq = self.sequence_nlls(tokens, temperatures, batch_size)
        if self.config.eos_token is None:
            return [float(x.mean()) for x in per_seq]
        lengths = valid_mask(tokens, self.config.eos_token).sum(dim=1).to(self.device)  # (B,)
        return [float((x * lengths).sum() / lengths.sum().clamp(min=1)) for x in per_seq]

    def sample_next(
        self, logits: torch.Tensor, rng: torch.Generator | None = None, temperature: float = 1.0,
        bound: float | None = None, num_samples: int | None = None, overwrite: bool = False,
        uniforms: torch.Tensor | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """Sample ``(B,)`` tokens (``(B, S)`` with ``num_samples``) from ``(B, V)`` logits at ``temperature``
        (exactly; see ``sampling``). ``overwrite``: the logits are a temporary the sampler may reuse;
        ``uniforms``: the ``(B, S)`` draws from U[0, 1) to use (``sample_categorical``)."""
        if temperature != 1.0:
            logits = logits / check_temperature(temperature)
            bound = None if bound is None else bound / temperature
            overwrite = True  # a copy of ours
        return sample_categorical(
            logits, rng, num_samples=num_samples, max_abs_logit=bound, overwrite=overwrite, uniforms=uniforms
        )

    def pad_after_eos(self, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens`` with ``pad_token`` after each row's first ``eos_token`` (unchanged without an end token)."""
        if self.config.eos_token is None:
            return tokens
        return pad_after_eos(tokens, self.config.eos_token, self.config.pad_token)
