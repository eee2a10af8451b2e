"""A Hugging Face ``transformers`` causal LM as SeqGAN's generator, its rollouts continuing from the prefix's KV cache.

``TransformerGenerator`` wraps any ``AutoModelForCausalLM`` (GPT-2, Llama, or a ``save_pretrained`` folder) behind
the interface every path of the project uses (``models.interface``). Its prefix state is the model's key/value
cache (``KVState``): the Q of a prefix comes from N rollouts that start from its cached keys and values, repeated N
times, never from re-running the prefix. ``use_cache=False`` gives the same computation recomputing every prefix at
every step (same draws: the exactness tests compare the two).

Token ids are the task's: the first input of every sequence is ``start_token`` (the oracle's start token, an
ordinary word as in the paper, or text's BOS); token i is the model's id i; a model whose vocabulary is larger
than the task's has its extra logits dropped. Rows of one batch may have read different numbers of tokens: the
cache holds the union of their columns and a boolean mask per row says which it attends to (its positions are
counted over its own columns), so prefixes of every length roll out in one batch.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.nn import functional as F

from seqgan_rl.config import TransformerConfig
from seqgan_rl.models.interface import GeneratorBase
from seqgan_rl.models.sampling import chunk_rows
from seqgan_rl.utils import (
    check_temperature,
    check_token_batch,
    mark_home_process,
    require_transformers,
    valid_mask,
)

ROLLOUT_CHUNK_ROWS = 1024
"""Rows rolled out together: their caches (rows x columns x layers x 2 x width floats) stay a few tens of MB."""


class KVState:
    """The prefix state of R rows: key/value caches stored for S rows, and per row which stored row and which of its
    columns it has read. Selecting rows (``select``) only indexes ``rows`` and ``mask``: N repeats of a prefix share
    its stored cache until a rollout step copies the rows it runs.

    Attributes:
        keys, values: per layer ``(S, heads, L, head_dim)``, or ``None`` while no column is cached (or without a
            cache: ``TransformerGenerator(use_cache=False)`` reads ``inputs`` instead).
        inputs: ``(S, L)`` the token read at each column.
        rows: ``(R,)`` the stored row of each row, or ``None``: rows 0..R-1 themselves.
        mask: ``(R, L)`` bool, the columns each row attends to.
    """

    __slots__ = ("keys", "values", "inputs", "rows", "mask")

    def __init__(
        self, keys: list[torch.Tensor] | None, values: list[torch.Tensor] | None, inputs: torch.Tensor,
        rows: torch.Tensor | None, mask: torch.Tensor,
    ) -> None:  # fmt: skip
        self.keys, self.values, self.inputs, self.rows, self.mask = keys, values, inputs, rows, mask

    def __len__(self) -> int:
        return self.mask.shape[0]

    @property
    def lengths(self) -> torch.Tensor:
        """``(R,)`` tokens read by each row (the position of its next input)."""
        return self.mask.sum(dim=1)

    def select(self, index: torch.Tensor | slice) -> KVState:
        """Rows ``index`` (indices, a bool mask or a slice; repeats allowed), sharing the stored caches."""
        if self.rows is None and isinstance(index, slice) and index.step in (None, 1) and index.start in (None, 0):
            return KVState(self.keys, self.values, self.inputs, None, self.mask[index])
        rows = torch.arange(len(self), device=self.mask.device) if self.rows is None else self.rows
        return KVState(self.keys, self.values, self.inputs, rows[index], self.mask[index])

    def dense(self) -> KVState:
        """The same rows with their own storage (``rows`` is ``None``) and no column that no row reads."""
        n, keep = len(self), self.mask.any(dim=0)
        cols = None if bool(keep.all()) else keep.nonzero().squeeze(1)

        def take(t: torch.Tensor, dim: int) -> torch.Tensor:
            t = t[:n] if self.rows is None else t[self.rows]  # a view for leading rows
            return t if cols is None else t.index_select(dim, cols)

        mask = self.mask if cols is None else self.mask[:, cols]
        keys = _map(lambda k: take(k, 2), self.keys)
        values = _map(lambda v: take(v, 2), self.values)
        return KVState(keys, values, take(self.inputs, 1), None, mask)


def _map(fn: Any, tensors: list[torch.Tensor] | None) -> list[torch.Tensor] | None:
    return None if tensors is None else [fn(t) for t in tensors]


def _pad_columns(state: KVState, width: int) -> KVState:
    """A dense state widened to ``width`` columns (new columns unread, zero)."""
    extra = width - state.mask.shape[1]
    if extra == 0:
        return state
    wider = lambda t: F.pad(t, (0, 0, 0, extra))  # noqa: E731  (the column dim of (S, heads, L, d))
    return KVState(
        _map(wider, state.keys), _map(wider, state.values), F.pad(state.inputs, (0, extra)), None,
        F.pad(state.mask, (0, extra)),
    )  # fmt: skip


def init_weights(model: torch.nn.Module, rng: torch.Generator | None = None) -> None:
    """Draw a ``transformers`` model's weights from ``rng``: matrices N(0, 0.02) (GPT-2's and Llama's initializer
    range), biases 0, norm scales 1 (the transformer generator's and discriminator's ``reset_parameters``)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=rng) * 0.02)
            elif name.endswith("bias"):
                p.zero_()
            else:
                p.fill_(1.0)


class TransformerGenerator(GeneratorBase):
    """A ``transformers`` causal LM as the generator: ``TransformerGenerator(model, seq_len)``,
    ``TransformerGenerator.from_config(TransformerConfig(...))`` or ``TransformerGenerator.from_pretrained(path)``.

    Args:
        model: an ``AutoModelForCausalLM`` (anything whose forward takes ``input_ids``, ``attention_mask``,
            ``position_ids`` and a ``DynamicCache``).
        config: the ``TransformerConfig`` it was built from (sizes, tokens); ``None``: read from ``model.config``
            with ``seq_len``, ``vocab_size`` (default: the model's) and the token ids given.
        use_cache: ``False`` recomputes every prefix at every step (the reference the cached rollouts are tested
            against; slower, same numbers up to rounding).
    """

    def __init__(
        self, model: Any, config: TransformerConfig | None = None, *, seq_len: int = 20, vocab_size: int | None = None,
        start_token: int = 0, eos_token: int | None = None, pad_token: int | None = None, use_cache: bool = True,
    ) -> None:  # fmt: skip
        super().__init__()
        mark_home_process(self)
        hf = model.config
        if config is None:
            config = TransformerConfig(
                vocab_size=vocab_size or hf.vocab_size, seq_len=seq_len, architecture=hf.model_type,
                num_layers=hf.num_hidden_layers, hidden_dim=hf.hidden_size, num_heads=hf.num_attention_heads,
                start_token=start_token, eos_token=eos_token, pad_token=pad_token,
                pretrained=getattr(hf, "_name_or_path", None) or "(given model)",
            )  # fmt: skip
        if config.vocab_size > hf.vocab_size:
            raise ValueError(
                f"the model's vocabulary ({hf.vocab_size} ids) is smaller than the task's ({config.vocab_size})"
            )
        self.config, self.model, self.use_cache = config, model, use_cache
        forward = inspect.signature(model.forward).parameters
        self._cache_arg = "cache" if "cache" in forward else "past_key_values"  # transformers 5.2x / earlier

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, config: TransformerConfig, **hf_options: Any) -> TransformerGenerator:
        """A fresh model of ``config``'s size (GPT-2- or Llama-style, tied embeddings; GPT-2's tanh GELU as torch's
        fused kernel instead of ``gelu_new``'s Python-level ops, the same function), or, with ``config.pretrained``,
        the model saved there. ``hf_options`` override fields of the HF config."""
        if config.pretrained is not None:
            return cls.from_pretrained(config.pretrained, config=config)
        transformers = require_transformers()
        c, tokens = config, {"bos_token_id": config.start_token, "eos_token_id": config.eos_token}
        tokens["pad_token_id"] = config.pad_token
        if c.architecture == "gpt2":
            hf = transformers.GPT2Config(
                vocab_size=c.vocab_size, n_positions=c.seq_len + 1, n_embd=c.hidden_dim, n_layer=c.num_layers,
                n_head=c.num_heads, resid_pdrop=c.dropout, embd_pdrop=c.dropout, attn_pdrop=c.dropout,
                activation_function="gelu_pytorch_tanh", tie_word_embeddings=True, **tokens, **hf_options,
            )  # fmt: skip
        else:
            hf = transformers.LlamaConfig(
                vocab_size=c.vocab_size, max_position_embeddings=c.seq_len + 1, hidden_size=c.hidden_dim,
                intermediate_size=4 * c.hidden_dim, num_hidden_layers=c.num_layers, num_attention_heads=c.num_heads,
                num_key_value_heads=c.num_heads, attention_dropout=c.dropout, tie_word_embeddings=True, **tokens,
                **hf_options,
            )  # fmt: skip
        return cls(transformers.AutoModelForCausalLM.from_config(hf), c)

    @classmethod
    def from_hf_config(cls, config: TransformerConfig, hf_config: dict[str, Any]) -> TransformerGenerator:
        """The architecture a checkpoint recorded (``hf_config``: ``model.config.to_dict()``), weights to load."""
        transformers = require_transformers()
        hf_config = dict(hf_config)
        hf = transformers.AutoConfig.for_model(hf_config.pop("model_type"), **hf_config)
        return cls(transformers.AutoModelForCausalLM.from_config(hf), config)

    @classmethod
    def from_pretrained(
        cls, path_or_id: str, config: TransformerConfig | None = None, *, seq_len: int = 20, **tokens: Any
    ) -> TransformerGenerator:
        """A model written by ``save_pretrained`` (or a hub id on a machine that reaches the hub)."""
        transformers = require_transformers()
        try:
            model = transformers.AutoModelForCausalLM.from_pretrained(path_or_id)
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot load a causal LM from {path_or_id!r}: {str(exc).splitlines()[0]}") from exc
        return cls(model, config, seq_len=seq_len, **tokens)

    def save_pretrained(self, path: str) -> None:
        """The wrapped model in ``transformers``' format (``from_pretrained`` and ``--generator-from`` read it)."""
        self.model.save_pretrained(path)

    def reset_parameters(self, rng: torch.Generator | None = None) -> None:
        """A fresh model drawn from ``rng``: matrices N(0, 0.02) (GPT-2's and Llama's initializer range), biases 0,
        norm scales 1. A model loaded from ``pretrained`` keeps its weights."""
        if self.config.pretrained is None:
            init_weights(self.model, rng)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def num_layers(self) -> int:
        return self.model.config.num_hidden_layers

    @contextlib.contextmanager
    def _sampling(self) -> Iterator[None]:
        """No dropout while stepping and sampling (the policy that samples is the one whose gradient is taken)."""
        was = self.model.training
        if was:
            self.model.eval()
        try:
            yield
        finally:
            if was:
                self.model.train(True)

    # ------------------------------------------------------------------ teacher-forced scoring
    def _inputs(self, tokens: torch.Tensor) -> torch.Tensor:
        start = tokens.new_full((tokens.shape[0], 1), self.config.start_token)
        return torch.cat([start, tokens[:, :-1]], dim=1)  # (B, T)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits: ``(B, T) -> (B, T, V)``; position t scores y_t given the start token and y_<t."""
        check_token_batch(tokens, self.vocab_size)
        return self.model(input_ids=self._inputs(tokens), use_cache=False).logits[..., : self.vocab_size]

    def mle_loss(self, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced per-token mean NLL of ``(B, T)`` tokens, every position counted."""
        return F.cross_entropy(self(tokens).flatten(0, 1), tokens.flatten())

    @torch.no_grad()
    def sequence_nlls(
        self, tokens: torch.Tensor, temperatures: Sequence[float], batch_size: int = 64
    ) -> list[torch.Tensor]:
        """Per-sequence mean NLL at each temperature, ``[(B,), ...]`` (with an end token: up to and including it),
        from one pass of the model. The ``(chunk * T, V)`` logits and log-probabilities go into buffers reused by
        every chunk (fresh 25 MB temporaries per chunk and temperature fragment the heap: a 15-temperature sweep of
        9,984 sequences grew a process past 20 GB)."""
        for tau in temperatures:
            check_temperature(tau)
        out: list[list[torch.Tensor]] = [[] for _ in temperatures]
        buffers: list[torch.Tensor] = []
        with self._sampling():
            for i in range(0, tokens.shape[0], batch_size):
                chunk = tokens[i : i + batch_size].to(self.device)
                check_token_batch(chunk, self.vocab_size)
                n = chunk.numel()
                if not buffers or buffers[0].shape[0] < n:
                    buffers[:] = [torch.empty(n, self.vocab_size, device=self.device) for _ in range(3)]
                logits_buf, scaled_buf, logp_buf = buffers
                logits = self._teacher_forced_logits(chunk, logits_buf[:n])  # (b*T, V)
                m = None if self.config.eos_token is None else valid_mask(chunk, self.config.eos_token).float()
                for j, tau in enumerate(temperatures):
                    scaled = logits if tau == 1.0 else torch.div(logits, tau, out=scaled_buf[:n])
                    logp = torch.log_softmax(scaled, dim=-1, out=logp_buf[:n])
                    nll = logp.gather(1, chunk.reshape(-1, 1)).view(chunk.shape).neg_()  # (b, T)
                    out[j].append(nll.mean(dim=1) if m is None else (nll * m).sum(dim=1) / m.sum(dim=1))
        return [torch.cat(parts) if parts else torch.zeros(0, device=self.device) for parts in out]

    def _teacher_forced_logits(self, chunk: torch.Tensor, buffer: torch.Tensor) -> torch.Tensor:
        """``self(chunk)`` flattened to ``(b*T, V)``; written into ``buffer`` when the output layer is fused."""
        if not self._fused_head():
            return self(chunk).flatten(0, 1).float()
        hidden = self.model.base_model(input_ids=self._inputs(chunk), use_cache=False).last_hidden_state
        head = self.model.get_output_embeddings()
        logits = torch.mm(hidden.flatten(0, 1), head.weight[: self.vocab_size].T, out=buffer)
        return logits if head.bias is None else logits.add_(head.bias[: self.vocab_size])

    # ------------------------------------------------------------------ prefix states
    def initial_state(self, batch_size: int) -> KVState:
        """The state of ``batch_size`` rows that have read nothing (the start token is their first input)."""
        d = self.device
        empty = torch.zeros(batch_size, 0, dtype=torch.long, device=d)
        return KVState(None, None, empty, None, empty.bool())

    @torch.no_grad()
    def step(self, prev_tokens: torch.Tensor, state: KVState) -> tuple[torch.Tensor, KVState]:
        """Read one token per row: ``(logits (R, V), the state that has read it)``."""
        state = state.dense()
        r = prev_tokens.shape[0]
        mask = torch.cat([state.mask, state.mask.new_ones(r, 1)], dim=1)  # (R, L+1)
        inputs = torch.cat([state.inputs, prev_tokens.view(r, 1)], dim=1)
        full = bool(mask.all())
        with self._sampling():
            if self.use_cache:
                past = None if state.keys is None else list(zip(state.keys, state.values, strict=True))
                cache = require_transformers().DynamicCache(**({} if past is None else {"ddp_cache_data": past}))
                out = self.model(
                    input_ids=prev_tokens.view(r, 1), attention_mask=None if full else mask.long(),
                    position_ids=state.lengths.view(r, 1), use_cache=True, **{self._cache_arg: cache},
                )  # fmt: skip
                layers = _cache_of(out).layers
                keys, values = [layer.keys for layer in layers], [layer.values for layer in layers]
            else:  # recompute the whole prefix: positions count each row's own columns
                positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
                out = self.model(
                    input_ids=inputs, attention_mask=None if full else mask.long(), position_ids=positions,
                    use_cache=False, logits_to_keep=1,
                )  # fmt: skip
                keys = values = None
        logits = out.logits[:, -1, : self.vocab_size].float()
        return logits, KVState(keys, values, inputs, None, mask)

    def advance(self, prev_tokens: torch.Tensor, state: KVState) -> KVState:
        """Read one token per row and return the new state only."""
        return self.step(prev_tokens, state)[1]

    @torch.no_grad()
    def prefix_states(self, tokens: torch.Tensor) -> KVState:
        """The cache after every prefix of ``tokens`` ``(B, T)``, from one forward pass over the start token and
        y_1..y_{T-1}; ``prefix_state_rows`` picks the state after a given number of inputs from it."""
        check_token_batch(tokens, self.vocab_size)
        b, t = tokens.shape
        inputs = self._inputs(tokens)
        if not self.use_cache:
            return KVState(None, None, inputs, None, inputs.new_ones(b, t, dtype=torch.bool))
        with self._sampling():
            out = self.model(input_ids=inputs, use_cache=True, logits_to_keep=1)
        layers = _cache_of(out).layers
        keys, values = [layer.keys for layer in layers], [layer.values for layer in layers]
        return KVState(keys, values, inputs, None, inputs.new_ones(b, t, dtype=torch.bool))

    @staticmethod
    def prefix_state_rows(states: KVState, rows: torch.Tensor, index: torch.Tensor) -> KVState:
        """Row ``rows[i]`` of ``prefix_states``' output after ``index[i] + 1`` inputs (the LSTM's
        ``state_{index+1}``)."""
        cols = torch.arange(states.mask.shape[1], device=rows.device)
        base = states.rows[rows] if states.rows is not None else rows
        return KVState(states.keys, states.values, states.inputs, base, cols <= index.unsqueeze(1))

    @staticmethod
    def state_rows(state: KVState, rows: torch.Tensor | slice) -> KVState:
        """The states of ``rows`` (indices, a mask or a slice; repeats allowed), sharing the stored caches."""
        return state.select(rows)

    @staticmethod
    def set_state_rows(state: KVState, rows: torch.Tensor, new: KVState) -> KVState:
        """``state`` with the rows ``rows`` replaced by ``new`` (columns merged; unread columns dropped)."""
        full, new = state.dense(), new.dense()
        width = max(full.mask.shape[1], new.mask.shape[1])
        full, new = _pad_columns(full, width), _pad_columns(new, width)

        def put(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            a = a.clone()
            a[rows] = b
            return a

        keys = values = None
        if full.keys is not None or new.keys is not None:
            full, new = _with_cache(full, new), _with_cache(new, full)
            keys = [put(a, b) for a, b in zip(full.keys, new.keys, strict=True)]
            values = [put(a, b) for a, b in zip(full.values, new.values, strict=True)]
        merged = KVState(keys, values, put(full.inputs, new.inputs), None, put(full.mask, new.mask))
        return merged.dense()

    # ------------------------------------------------------------------ sampling
    def logit_bound(self) -> None:
        """No bound is known for a transformer's logits: the sampler subtracts each row's maximum."""
        return None

    @torch.no_grad()
    def sample_step(
        self, prev_tokens: torch.Tensor, state: KVState, rng: torch.Generator | None = None, temperature: float = 1.0,
        bound: float | None = None, chunk_size: int | None = None, uniforms: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, KVState]:  # fmt: skip
        """``step`` then sample: ``(tokens (R,), state)``; ``uniforms``: the ``(R, 1)`` draws to use."""
        logits, state = self.step(prev_tokens, state)
        return self.sample_next(logits, rng, temperature, overwrite=True, uniforms=uniforms), state

    @torch.no_grad()
    def complete(
        self, tokens: torch.Tensor, prefix_len: torch.Tensor, state: KVState, rng: torch.Generator | None = None,
        temperature: float = 1.0, eos_token: int | None = None, pad_token: int | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """``rollout.rollout_completions`` for this model: complete each row's prefix to length T from ``state``
        (the state having read the start token and the first ``prefix_len - 1`` tokens; the last is fed next).

        Rows are ordered by the tokens they still need and run in chunks of ``ROLLOUT_CHUNK_ROWS``: the rows of a
        chunk still sampling at each step are a leading slice (its cache rows are views, not copies), and the
        columns no row of a chunk reads (the rest of a longer prefix) are dropped before its first step.
        """
        r, t_len = tokens.shape
        out = tokens.clone()
        if r == 0:
            return out
        remaining = t_len - prefix_len
        if eos_token is not None:
            in_prefix = torch.arange(t_len, device=tokens.device) < prefix_len.unsqueeze(1)  # (R, T)
            out[~in_prefix] = pad_token
            finished = ((tokens == eos_token) & in_prefix).any(dim=1)
            remaining = remaining.masked_fill(finished, 0)
        order = torch.argsort(remaining, descending=True, stable=True)
        order = order[remaining[order] > 0]
        for start in range(0, order.numel(), ROLLOUT_CHUNK_ROWS):
            rows = order[start : start + ROLLOUT_CHUNK_ROWS]
            self._continue(out, rows, prefix_len[rows].clone(), tokens[rows, prefix_len[rows] - 1],
                           state.select(rows), rng, temperature, eos_token)  # fmt: skip
        return out

    def _continue(
        self, out: torch.Tensor, rows: torch.Tensor, pos: torch.Tensor, prev: torch.Tensor, state: KVState,
        rng: torch.Generator | None, temperature: float, eos_token: int | None,
    ) -> None:  # fmt: skip
        """Sample ``out[rows[i], pos[i]:]`` (rows ordered by what they still need, longest first) until the last
        column or, with ``eos_token``, the end token. With the cache, the chunk's keys and values grow in place in
        buffers sized for its last step (``_GrowingCache``) and the output layer runs fused with the sampler in row
        chunks (``_sample_hidden``); without it, ``step`` re-runs each row's whole prefix. The draws are the same."""
        width = out.shape[1]
        state = state.dense()
        fused = self.use_cache and self._fused_head()
        run = _GrowingCache(self, state, int((width - pos).max())) if fused else None
        with self._sampling():
            while rows.numel():
                u = torch.rand(rows.numel(), 1, generator=rng, device=out.device)
                if run is not None:
                    prev = self._sample_hidden(run.forward(prev), temperature, u)
                else:
                    logits, state = self.step(prev, state)
                    prev = self.sample_next(logits, temperature=temperature, overwrite=True, uniforms=u)
                out[rows, pos] = prev
                pos = pos + 1
                going = pos < width
                if eos_token is None:
                    a = int(going.sum())  # rows are ordered by length: the ones going on lead
                    keep: torch.Tensor | slice = slice(0, a)
                else:
                    keep = going & (prev != eos_token)
                rows, pos, prev = rows[keep], pos[keep], prev[keep]
                if run is not None:
                    run.keep(keep)
                else:
                    state = state.select(keep)

    def _fused_head(self) -> bool:
        """Whether logits are exactly the output layer of the base model's last hidden state (GPT-2, Llama): then the
        rollouts compute them in row chunks beside the sampler instead of through the model's own head."""
        head = self.model.get_output_embeddings()
        return self.model.config.model_type in ("gpt2", "llama") and isinstance(head, torch.nn.Linear)

    def _sample_hidden(self, hidden: torch.Tensor, temperature: float, uniforms: torch.Tensor) -> torch.Tensor:
        """Tokens ``(R,)`` from last hidden states ``(R, H)``: the output layer and the sampler run together in row
        chunks (``sampling.chunk_rows``), so each chunk's logits are sampled while still in cache."""
        head = self.model.get_output_embeddings()
        w = head.weight[: self.vocab_size]
        b = None if head.bias is None else head.bias[: self.vocab_size]
        n, size = hidden.shape[0], chunk_rows(hidden.device)
        tokens = torch.empty(n, dtype=torch.long, device=hidden.device)
        for i in range(0, n, size):
            logits = torch.mm(hidden[i : i + size], w.T)
            if b is not None:
                logits.add_(b)
            rows = slice(i, i + size)
            tokens[rows] = self.sample_next(logits, temperature=temperature, overwrite=True, uniforms=uniforms[rows])
        return tokens

    @torch.no_grad()
    def sample(
        self, num: int, rng: torch.Generator | None = None, temperature: float = 1.0, batch_size: int = 512
    ) -> torch.Tensor:
        """Sample ``num`` whole sequences: ``(num, T)`` int64 (real text: padded after the first end token)."""
        if num < 0:
            raise ValueError(f"num must be >= 0, got {num}")
        t, chunks = self.seq_len, []
        for start in range(0, num, batch_size):
            b = min(batch_size, num - start)
            out = torch.full((b, t), self.config.pad_token or 0, dtype=torch.long, device=self.device)
            rows = torch.arange(b, device=self.device)
            self._continue(
                out, rows, torch.zeros_like(rows), self.start_tokens(b), self.initial_state(b), rng, temperature,
                self.config.eos_token,
            )  # fmt: skip
            chunks.append(out)
        if not chunks:
            return torch.empty(0, t, dtype=torch.long, device=self.device)
        return self.pad_after_eos(torch.cat(chunks))


class _GrowingCache:
    """The key/value cache of a chunk of rows during its rollouts: per layer a buffer with room for every step, written
    in place (``DynamicCache`` concatenates, copying the whole cache at every step), rows dropped as leading slices.

    Args:
        generator: the model.
        state: the chunk's dense prefix state.
        steps: the most tokens any row will read.
    """

    def __init__(self, generator: TransformerGenerator, state: KVState, steps: int) -> None:
        transformers = require_transformers()
        r, width = state.mask.shape
        self.generator, self.width = generator, width
        self.mask = state.mask.new_zeros(r, width + steps)
        self.mask[:, :width] = state.mask
        self.positions = state.lengths
        self.full = bool(state.mask.all())
        layer_class = _growing_layer_class(transformers)
        self.layers = [layer_class(width + steps) for _ in range(generator.num_layers)]
        if state.keys is not None:
            for layer, k, v in zip(self.layers, state.keys, state.values, strict=True):
                layer.update(k, v)
        self.cache = transformers.Cache(layers=self.layers)
        base = generator.model.base_model
        self.base = base
        self.cache_arg = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"

    def forward(self, prev: torch.Tensor) -> torch.Tensor:
        """Read one token per row: the last hidden states ``(R, H)``."""
        r = prev.shape[0]
        self.mask[:, self.width] = True
        self.width += 1
        mask = None if self.full else self.mask[:, : self.width].long()
        out = self.base(
            input_ids=prev.view(r, 1), attention_mask=mask, position_ids=self.positions.view(r, 1), use_cache=True,
            **{self.cache_arg: self.cache},
        )  # fmt: skip
        self.positions = self.positions + 1
        return out.last_hidden_state[:, -1]

    def keep(self, rows: torch.Tensor | slice) -> None:
        """Only these rows go on (a leading slice stays a view of the buffers)."""
        self.mask, self.positions = self.mask[rows], self.positions[rows]
        for layer in self.layers:
            layer.keep_rows(rows)


_GROWING_LAYER: dict[int, type] = {}


def _growing_layer_class(transformers: Any) -> type:
    """A ``DynamicLayer`` that writes into a preallocated buffer (made once, from the installed ``transformers``)."""
    if id(transformers) in _GROWING_LAYER:
        return _GROWING_LAYER[id(transformers)]

    class GrowingLayer(transformers.cache_utils.DynamicLayer):
        def __init__(self, capacity: int) -> None:
            super().__init__()
            self.capacity, self.is_initialized = capacity, False
            self.keys = self.values = self.key_buffer = self.value_buffer = None

        def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
            r, heads, _, d = key_states.shape
            self.device, self.dtype = key_states.device, key_states.dtype
            self.key_buffer = key_states.new_empty(r, heads, self.capacity, d)
            self.value_buffer = value_states.new_empty(r, heads, self.capacity, value_states.shape[-1])
            self.keys, self.values = self.key_buffer[:, :, :0], self.value_buffer[:, :, :0]
            self.is_initialized = True

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            start, n = self.keys.shape[-2], key_states.shape[-2]
            self.key_buffer[:, :, start : start + n] = key_states
            self.value_buffer[:, :, start : start + n] = value_states
            self.keys = self.key_buffer[:, :, : start + n]
            self.values = self.value_buffer[:, :, : start + n]
            return self.keys, self.values

        def keep_rows(self, rows: torch.Tensor | slice) -> None:
            if not self.is_initialized:
                return
            length = self.keys.shape[-2]
            self.key_buffer, self.value_buffer = self.key_buffer[rows], self.value_buffer[rows]
            self.keys, self.values = self.key_buffer[:, :, :length], self.value_buffer[:, :, :length]

    _GROWING_LAYER[id(transformers)] = GrowingLayer
    return GrowingLayer


def _cache_of(out: Any) -> Any:
    cache = getattr(out, "cache", None)  # transformers 5.2x; earlier: past_key_values
    return cache if cache is not None else out.past_key_values


def _with_cache(state: KVState, like: KVState) -> KVState:
    """``state`` with zero keys and values shaped as ``like``'s when it has none yet (a row that read nothing)."""
    if state.keys is not None:
        return state
    shape = lambda t: (state.mask.shape[0], t.shape[1], state.mask.shape[1], t.shape[3])  # noqa: E731
    zeros = [t.new_zeros(shape(t)) for t in like.keys]
    return KVState(zeros, [z.clone() for z in zeros], state.inputs, None, state.mask)
