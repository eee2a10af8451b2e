"""The LSTM generator: SeqGAN's policy G_theta(y_t | Y_{1:t-1}).

One model serves every use, batched: teacher-forced scores (``forward``, ``log_probs``: MLE, REINFORCE,
NLL-test), one step (``step``: env, rollouts), whole sequences (``sample``), continuations from given states
(``rollout``) and the state after every prefix of given sequences (``prefix_states``, cached for rollouts).

State convention: ``state_k`` is the LSTM state after reading the first ``k`` inputs (the start token,
then y_1..y_{k-1}); ``output(top(h_k))`` are the logits of y_k. To continue after the prefix Y_{1:t}, feed
y_t to ``state_t``. With several layers the state holds them side by side, ``(B, L*H)``, so every user of it
(rollouts, prefix caches, the envs) indexes rows the same way whatever the depth.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from seqgan_rl.config import GeneratorConfig
from seqgan_rl.models.interface import GeneratorBase
from seqgan_rl.models.losses import linear_cross_entropy
from seqgan_rl.models.sampling import chunk_rows
from seqgan_rl.utils import (
    check_temperature,
    check_token_batch,
    mark_home_process,
    parallel_map,
    valid_mask,
    worker_threads,
)

State = tuple[torch.Tensor, torch.Tensor]
"""LSTM state ``(h, c)``, each ``(B, L*H)``: layer l in columns ``l*H:(l+1)*H`` (``(B, H)`` for one layer)."""


class Generator(GeneratorBase):
    """Embedding -> LSTM (``num_layers`` stacked; the paper: one) -> linear output layer over the vocabulary.

    The LSTM is the plain recurrence of the paper's oracle (gates i, f, o; candidate tanh; no peepholes),
    stored in ``torch.nn.LSTM``'s layout. All parameters, biases included, start as N(0, init_std). With
    ``dropout`` (variational, ``GeneratorConfig.dropout``), teacher-forced scoring in training mode multiplies
    each layer's input and the last layer's output by a mask drawn once per sequence (torch's global generator,
    as D's dropout); everything else (sampling, stepping, NLL, eval mode) runs without it.
    """

    def __init__(self, config: GeneratorConfig | None = None) -> None:
        super().__init__()
        mark_home_process(self)
        self.config = config or GeneratorConfig()
        c = self.config
        self.embedding = nn.Embedding(c.vocab_size, c.embed_dim)
        self.lstm = nn.LSTM(c.embed_dim, c.hidden_dim, num_layers=c.num_layers, batch_first=True)
        self.output = nn.Linear(c.hidden_dim, c.vocab_size)
        self.reset_parameters()

    def reset_parameters(self, rng: torch.Generator | None = None) -> None:
        """Draw every parameter from N(0, init_std) (the reference generator's init), or with ``init="torch"``
        as PyTorch's modules do (embedding N(0, 1), the rest U(-1/sqrt(H), 1/sqrt(H))), from ``rng``."""
        with torch.no_grad():
            for name, p in self.named_parameters():
                if self.config.init == "normal":
                    p.copy_(torch.randn(p.shape, generator=rng) * self.config.init_std)
                elif name.startswith("embedding."):
                    p.copy_(torch.randn(p.shape, generator=rng))
                else:
                    bound = self.config.hidden_dim**-0.5
                    p.copy_(torch.rand(p.shape, generator=rng).mul_(2 * bound).sub_(bound))

    @property
    def device(self) -> torch.device:
        return self.output.weight.device

    # ------------------------------------------------------------------ teacher-forced scoring
    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits: ``(B, T) -> (B, T, V)``; position t scores y_t given y_<t."""
        return self.output(self.hidden(tokens))  # (B, T, V)

    def hidden(self, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced inputs of the output layer, ``(B, T) -> (B, T, H)`` (the last layer's outputs; position t
        has read the start token and y_<t)."""
        check_token_batch(tokens, self.vocab_size)
        start = tokens.new_full((tokens.shape[0], 1), self.config.start_token)
        inputs = torch.cat([start, tokens[:, :-1]], dim=1)  # (B, T)
        return self._hidden(self.embedding(inputs))

    def mle_loss(self, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced per-token mean NLL of ``(B, T)`` tokens with its gradient: ``cross_entropy(self(tokens))``
        bit for bit, computed in cache-sized chunks (``losses.linear_cross_entropy``: an MLE step of the paper's G 1.13x
        faster at 1 thread, 1.16x at 2; the strong preset's 1.04-1.06x; ``benchmarks/bench_mle_loss.py``).
        Every position counts (use ``training.pretrain.mle_loss`` for sequences with an end token). On a GPU, where
        the logits are not the bottleneck and more chunks mean more kernel launches, autograd's own path."""
        if self.device.type != "cpu":
            return F.cross_entropy(self(tokens).flatten(0, 1), tokens.flatten())
        h = self.hidden(tokens).flatten(0, 1)  # (B*T, H)
        return linear_cross_entropy(h, self.output.weight, self.output.bias, tokens.flatten())

    def _hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The last layer's outputs ``(B, T, H)`` for inputs ``(B, T, E)``; in training mode with dropout, each
        layer's input and the last output are multiplied by one mask per sequence, the same at every step."""
        p = self.config.dropout
        if not (self.training and p > 0):
            return self.lstm(x)[0]
        for layer in range(self.config.num_layers):
            x = x * _sequence_mask(x, p)
            zero = x.new_zeros(1, x.shape[0], self.config.hidden_dim)
            x = torch.lstm(x, (zero, zero), self._layer_weights(layer), True, 1, 0.0, True, False, True)[0]
        return x * _sequence_mask(x, p)

    def _layer_weights(self, layer: int) -> list[torch.Tensor]:
        """``[W_ih, W_hh, b_ih, b_hh]`` of one layer (``torch.nn.LSTM``'s names)."""
        return [getattr(self.lstm, f"{name}_l{layer}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]

    def top(self, h: torch.Tensor) -> torch.Tensor:
        """The last layer's part of a state's ``h`` (``(..., L*H) -> (..., H)``): what the output layer reads."""
        return h if self.config.num_layers == 1 else h[..., -self.config.hidden_dim :]

    @torch.no_grad()
    def sequence_nlls(
        self, tokens: torch.Tensor, temperatures: Sequence[float], batch_size: int = 64
    ) -> list[torch.Tensor]:
        """``sequence_nll`` at each of several temperatures, ``[(B,), ...]``, each bit for bit as a call of its own,
        from one pass of the LSTM and the output layer (what a temperature sweep costs once instead of K times).

        The ``(chunk * T, V)`` logits and log-probabilities are written into buffers reused by every chunk:
        fresh 25 MB temporaries per chunk cost more in page faults than the arithmetic (3-4x the time on CPU).
        On the CPU the chunks run side by side on torch's threads (``utils.parallel_map``; one set of buffers
        per thread). The values are those of ``cross_entropy(self(chunk))``, bit for bit."""
        for tau in temperatures:
            check_temperature(tau)
        buffers: dict[int, list[torch.Tensor]] = {}  # per thread: logits, scaled logits, log-probabilities

        def chunk(i: int) -> list[torch.Tensor]:
            chunk = tokens[i : i + batch_size].to(self.device)
            check_token_batch(chunk, self.vocab_size)
            start = chunk.new_full((chunk.shape[0], 1), self.config.start_token)
            hidden, _ = self.lstm(self.embedding(torch.cat([start, chunk[:, :-1]], dim=1)))  # (b, T, H)
            hidden = hidden.flatten(0, 1)  # (b*T, H)
            n = hidden.shape[0]
            bufs = buffers.setdefault(threading.get_ident(), [])
            if not bufs or bufs[0].shape[0] < n:
                bufs[:] = (hidden.new_empty(n, self.vocab_size) for _ in range(3))
            logits_buf, scaled_buf, logp_buf = bufs
            logits = torch.addmm(self.output.bias, hidden, self.output.weight.T, out=logits_buf[:n])  # (b*T, V)
            m = None if self.config.eos_token is None else valid_mask(chunk, self.config.eos_token).to(hidden.dtype)
            per_tau = []
            for tau in temperatures:
                scaled = logits if tau == 1.0 else torch.div(logits, tau, out=scaled_buf[:n])
                logp = torch.log_softmax(scaled, dim=-1, out=logp_buf[:n])
                nll = logp.gather(1, chunk.reshape(-1, 1)).view(chunk.shape).neg_()  # (b, T)
                per_tau.append(nll.mean(dim=1) if m is None else (nll * m).sum(dim=1) / m.sum(dim=1))
            return per_tau

        parts = parallel_map(chunk, range(0, tokens.shape[0], batch_size), self.device)
        if not parts:
            return [torch.zeros(0, device=self.device) for _ in temperatures]
        return [torch.cat(per_tau) for per_tau in zip(*parts, strict=True)]

    # ------------------------------------------------------------------ step API
    def initial_state(self, batch_size: int) -> State:
        """Zero state ``(h, c)``, each ``(B, L*H)``."""
        z = torch.zeros(batch_size, self.config.num_layers * self.config.hidden_dim, device=self.device)
        return z, z.clone()

    def step(self, prev_tokens: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Read one token and return the next token's logits.

        Args:
            prev_tokens: ``(B,)`` the previous token (``start_tokens`` at the first position).
            state: ``(h, c)`` before reading it.

        Returns:
            ``(logits (B, V), (h, c))``.
        """
        h, c = self.advance(prev_tokens, state)  # (B, L*H) each
        return self.output(self.top(h)), (h, c)

    def advance(self, prev_tokens: torch.Tensor, state: State) -> State:
        """Read one token and return the new state only (no output layer): ``step`` without the logits."""
        x = self.embedding(prev_tokens)  # (B, E)
        if self.config.num_layers == 1:
            return torch.lstm_cell(x, state, *self._layer_weights(0))
        (h, c), size, hs, cs = state, self.config.hidden_dim, [], []
        for layer in range(self.config.num_layers):
            part = slice(layer * size, (layer + 1) * size)
            x, c_layer = torch.lstm_cell(x, (h[:, part], c[:, part]), *self._layer_weights(layer))  # (B, H) each
            hs.append(x)
            cs.append(c_layer)
        return torch.cat(hs, dim=1), torch.cat(cs, dim=1)

    @torch.no_grad()
    def prefix_states(self, tokens: torch.Tensor) -> State:
        """States after every prefix: ``(h, c)``, each ``(B, T, L*H)``; index k-1 holds ``state_k`` (module doc)."""
        check_token_batch(tokens, self.vocab_size)
        b, t = tokens.shape
        state, prev, states = self.initial_state(b), self.start_tokens(b), []
        for k in range(t):
            state, prev = self.advance(prev, state), tokens[:, k]
            states.append(state)
        return torch.stack([h for h, _ in states], 1), torch.stack([c for _, c in states], 1)

    @staticmethod
    def prefix_state_rows(states: State, rows: torch.Tensor, index: torch.Tensor) -> State:
        """From ``prefix_states``' output: row ``rows[i]``'s state at time index ``index[i]`` (``state_{index+1}``)."""
        return states[0][rows, index], states[1][rows, index]

    @staticmethod
    def state_rows(state: State, rows: torch.Tensor | slice) -> State:
        """The states of ``rows`` (indices, a mask or a slice; repeats allowed): ``(h[rows], c[rows])``."""
        return state[0][rows], state[1][rows]

    @staticmethod
    def set_state_rows(state: State, rows: torch.Tensor, new: State) -> State:
        """Write ``new`` into the rows ``rows`` of ``state`` (in place) and return it."""
        state[0][rows], state[1][rows] = new
        return state

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def logit_bound(self) -> float:
        """A bound on ``|logits|``: since the last layer's ``|h| < 1``, ``|logit_k| <= sum_j |W_kj| + |b_k|``."""
        w, b = self.output.weight, self.output.bias
        return float((w.abs().sum(dim=1) + b.abs()).max())

    @torch.no_grad()
    def sample_step(
        self, prev_tokens: torch.Tensor, state: State, rng: torch.Generator | None = None, temperature: float = 1.0,
        bound: float | None = None, chunk_size: int | None = None, uniforms: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, State]:  # fmt: skip
        """``step`` then sample, with the LSTM cell, the output layer and the sampler run in row chunks so the
        ``(chunk, V)`` logits stay in cache (a (20k, 5000) logits tensor would not); ``chunk_size=None``: the
        device's default (``sampling.chunk_rows``: 512 rows on the CPU, large chunks on a GPU). On the CPU the
        chunks run on torch's threads side by side (``utils.parallel_map``), from draws made first, in order:
        the tokens are those of the serial loop. ``uniforms``: the ``(B, 1)`` draws to use instead of ``rng``.

        Returns:
            ``(tokens (B,), (h, c))``.
        """
        n, size = prev_tokens.shape[0], state[0].shape[1]
        tokens, h_out, c_out = torch.empty_like(prev_tokens), state[0].new_empty(n, size), state[1].new_empty(n, size)
        chunk_size = chunk_size or chunk_rows(prev_tokens.device)
        w, b = self.output.weight, self.output.bias
        if uniforms is None:
            uniforms = torch.rand(n, 1, generator=rng, device=prev_tokens.device, dtype=w.dtype)

        def chunk(i: int) -> None:
            rows = slice(i, i + chunk_size)
            h, c = self.advance(prev_tokens[rows], (state[0][rows], state[1][rows]))  # (rows, L*H) each, row by row
            h_out[rows], c_out[rows] = h, c
            # = self.output(top): the same values (tested), without addmm's broadcast copy of the bias first
            logits = torch.mm(self.top(h), w.T).add_(b)
            tokens[rows] = self.sample_next(
                logits, temperature=temperature, bound=bound, overwrite=True, uniforms=uniforms[rows]
            )

        parallel_map(chunk, range(0, n, chunk_size), prev_tokens.device)
        return tokens, (h_out, c_out)

    @torch.no_grad()
    def rollout(
        self, prev_tokens: torch.Tensor, state: State, num_steps: int, rng: torch.Generator | None = None,
        temperature: float = 1.0, uniforms: torch.Tensor | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """Continue ``num_steps`` tokens from ``state`` after ``prev_tokens``: returns ``(B, num_steps)``. With an
        end token (real text), a row stops being sampled once it has drawn it: the rest of it is ``pad_token``.
        ``uniforms``: without an end token, the ``(num_steps, B, 1)`` draws to use instead of ``rng``."""
        b, eos = prev_tokens.shape[0], self.config.eos_token
        if eos is not None:
            out = prev_tokens.new_full((b, num_steps), self.config.pad_token)
            rows = torch.arange(b, device=prev_tokens.device)
            return self.sample_until_end(out, rows, torch.zeros_like(rows), prev_tokens, state, rng, temperature)
        bound = self.logit_bound()
        out = prev_tokens.new_empty(b, num_steps)
        with worker_threads():  # the chunks of every step side by side (sample_step)
            for k in range(num_steps):
                u = None if uniforms is None else uniforms[k]
                prev_tokens, state = self.sample_step(prev_tokens, state, rng, temperature, bound, uniforms=u)
                out[:, k] = prev_tokens
        return out

    @torch.no_grad()
    def sample_until_end(
        self, out: torch.Tensor, rows: torch.Tensor, pos: torch.Tensor, prev_tokens: torch.Tensor, state: State,
        rng: torch.Generator | None = None, temperature: float = 1.0, eos_token: int | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """Real text: sample ``out[rows[i], pos[i]]``, ``out[rows[i], pos[i] + 1]``, ... from ``state`` after
        ``prev_tokens`` until row i draws the end token (``eos_token``, default the config's) or fills ``out``'s
        last column. A finished row leaves the batch: only sequences still going are computed (captions end
        after ~12 of 37 positions). ``out`` is written in place and returned; other entries are left as they are."""
        eos = self.config.eos_token if eos_token is None else eos_token
        bound, width = self.logit_bound(), out.shape[1]
        keep = pos < width
        rows, pos, prev_tokens, state = rows[keep], pos[keep], prev_tokens[keep], (state[0][keep], state[1][keep])
        with worker_threads():  # the chunks of every step side by side (sample_step)
            while rows.numel():
                prev_tokens, (h, c) = self.sample_step(prev_tokens, state, rng, temperature, bound)
                out[rows, pos] = prev_tokens
                pos = pos + 1
                keep = (prev_tokens != eos) & (pos < width)
                rows, pos, prev_tokens, state = rows[keep], pos[keep], prev_tokens[keep], (h[keep], c[keep])
        return out

    @torch.no_grad()
    def sample(
        self, num: int, rng: torch.Generator | None = None, temperature: float = 1.0, batch_size: int = 512
    ) -> torch.Tensor:
        """Sample ``num`` whole sequences: ``(num, T)`` int64 on the model's device (real text: padded
        with ``pad_token`` after the first ``eos_token``)."""
        if num < 0:
            raise ValueError(f"num must be >= 0, got {num}")
        sizes = [min(batch_size, num - start) for start in range(0, num, batch_size)]
        if not sizes:
            return torch.empty(0, self.seq_len, dtype=torch.long, device=self.device)
        if self.config.eos_token is not None or self.device.type != "cpu":
            chunks = [
                self.rollout(self.start_tokens(b), self.initial_state(b), self.seq_len, rng, temperature) for b in sizes
            ]
        else:
            # the batches side by side (utils.parallel_map), each from the draws it makes in the serial loop, in pieces
            # of at most PIECE_ROWS rows (rows are sampled independently) so that the threads share the work evenly
            u = [torch.rand(self.seq_len, b, 1, generator=rng, dtype=self.output.weight.dtype) for b in sizes]
            pieces = [(j, r, min(b, r + PIECE_ROWS)) for j, b in enumerate(sizes) for r in range(0, b, PIECE_ROWS)]

            def piece(item: tuple[int, int, int]) -> torch.Tensor:
                j, start, end = item
                rows, draws = end - start, u[j][:, start:end]
                state = self.initial_state(rows)
                return self.rollout(self.start_tokens(rows), state, self.seq_len, None, temperature, draws)

            chunks = parallel_map(piece, pieces)
        return self.pad_after_eos(torch.cat(chunks))


PIECE_ROWS = 256
"""Rows per work item when ``Generator.sample`` runs its batches side by side on the CPU (the draws do not depend
on it)."""


def _sequence_mask(x: torch.Tensor, p: float) -> torch.Tensor:
    """A dropout mask for ``(B, T, D)`` inputs that is the same at every step: ``(B, 1, D)``, entries 0 or
    ``1 / (1 - p)``, drawn from torch's global generator."""
    return x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1.0 - p).div_(1.0 - p)
