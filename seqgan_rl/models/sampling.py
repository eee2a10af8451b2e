"""Exact categorical sampling, fast on CPU.

``torch.multinomial`` costs ~100 us per row of 5,000 logits on this kind of machine. This module
samples by inverting the CDF in two levels: the vocabulary is split into ~sqrt(V) blocks of ~sqrt(V)
tokens; a uniform draw u in [0, total mass) picks a block from the cumulative block masses, then a token
from the cumulative masses inside that block. Token k is returned iff u falls in its interval, whose
length is exp(logit_k): an exact draw from softmax(logits). It avoids a serial cumulative sum over all
V entries per row (measured ~2x faster than a flat cumsum + searchsorted, ~10x faster than multinomial).
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from seqgan_rl.utils import NonFiniteError, parallel_map

# exp(x) for |x| <= 80 is finite and non-zero in float32 (5.5e34 * 5000 < 3.4e38; exp(-80) > 1.2e-38).
SAFE_EXP_RANGE = 80.0

CPU_CHUNK_ROWS = 512
"""Rows per chunk on the CPU: a (512, 5000) float32 chunk is 10 MB, near the caches (the committed draws use it)."""
CUDA_CHUNK_ROWS = 16384
"""Rows per chunk on a GPU: few, large kernels (a 512-row chunking is ~7,000 launches per reward batch)."""


def chunk_rows(device: torch.device) -> int:
    """The default row chunk for ``device`` (``CPU_CHUNK_ROWS`` or ``CUDA_CHUNK_ROWS``)."""
    return CUDA_CHUNK_ROWS if device.type == "cuda" else CPU_CHUNK_ROWS


def block_size_for(vocab_size: int) -> int:
    """Tokens per block: a divisor of V near sqrt(V) when one exists (no padding), else ceil(sqrt(V))."""
    root = math.isqrt(vocab_size)
    for k in sorted(range(max(1, root // 2), 2 * root + 1), key=lambda k: abs(k - root)):
        if vocab_size % k == 0 and k > 1:
            return k
    return max(1, math.ceil(math.sqrt(vocab_size)))


def sample_categorical(
    logits: torch.Tensor, rng: torch.Generator | None = None, *, num_samples: int | None = None,
    max_abs_logit: float | None = None, chunk_size: int | None = None, overwrite: bool = False,
    uniforms: torch.Tensor | None = None,
) -> torch.Tensor:  # fmt: skip
    """Draw indices from ``softmax(logits)``, independently per row (and per sample).

    Args:
        logits: ``(N, V)`` float tensor (already divided by any temperature); ``-inf`` marks tokens
            with zero probability (never drawn). Each row needs at least one finite logit.
        rng: generator on ``logits.device``; ``None`` uses torch's global generator.
        num_samples: ``None`` draws one index per row, ``(N,)``; an integer S draws S independent
            indices per row from the same distribution, ``(N, S)``, at the cost of one exp per logit.
        max_abs_logit: a bound on the finite ``|logits|`` known to the caller (the generator derives
            one from its output layer). When it is at most 80, the row-max subtraction is skipped (exp
            can neither overflow nor underflow), which is exact and faster. ``None`` always subtracts it.
        chunk_size: rows per chunk (keeps the work in cache); ``None``: ``chunk_rows(logits.device)``.
        overwrite: ``logits`` is a temporary of the caller's: the exponentials are written over it (the same
            values, one 10 MB buffer less per chunk).
        uniforms: ``(N, S)`` draws from U[0, 1) to use instead of drawing them from ``rng`` (the same as drawing
            them here: one ``torch.rand`` or one per chunk give the same numbers on the CPU).

    Returns:
        int64 indices in ``[0, V)``: ``(N,)``, or ``(N, S)`` with ``num_samples``.
    """
    if logits.dim() != 2:
        raise ValueError(f"logits must be (N, V), got shape {tuple(logits.shape)}")
    if num_samples is not None and num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    n, v = logits.shape
    s = num_samples or 1
    chunk_size = chunk_size or chunk_rows(logits.device)
    out = torch.empty(n, s, dtype=torch.long, device=logits.device)
    # on a GPU the rare rounding fallback is computed always and the check for non-finite logits is read once,
    # after the last chunk: no host sync inside the loop (on the CPU the branch is cheaper)
    invalid = torch.zeros((), dtype=torch.bool, device=logits.device) if logits.is_cuda else None
    shift = max_abs_logit is None or max_abs_logit > SAFE_EXP_RANGE
    k = block_size_for(v)
    nb = -(-v // k)
    if uniforms is None:
        uniforms = torch.rand(n, s, generator=rng, device=logits.device, dtype=logits.dtype)
    elif uniforms.shape != (n, s):
        raise ValueError(f"uniforms must be ({n}, {s}) for these logits, got shape {tuple(uniforms.shape)}")

    def chunk(start: int) -> None:
        x = logits[start : start + chunk_size]
        r = x.shape[0]
        if shift:
            x = x - x.amax(dim=-1, keepdim=True)  # a copy: overwritten below
        mass = x.exp_() if shift or overwrite else torch.exp(x)  # (r, V), unnormalised
        if nb * k != v:
            mass = F.pad(mass, (0, nb * k - v))
        blocks = mass.view(r, nb, k)  # (r, NB, K)
        block_cdf = blocks.sum(dim=-1).cumsum_(dim=-1)  # (r, NB)
        u = uniforms[start : start + r] * block_cdf[:, -1:]  # (r, S)
        if invalid is not None:
            total = block_cdf[:, -1]
            invalid.logical_or_(~(torch.isfinite(total) & (total > 0)).all())
        b = _search(block_cdf, u, invalid is None)  # (r, S)
        below = torch.where(b > 0, block_cdf.gather(1, (b - 1).clamp(min=0)), torch.zeros_like(u))
        inner_cdf = blocks.gather(1, b.unsqueeze(-1).expand(r, s, k)).cumsum_(dim=-1)  # (r, S, K)
        j = _search(inner_cdf.view(r * s, k), (u - below).view(r * s, 1), invalid is None).view(r, s)
        out[start : start + r] = b * k + j

    parallel_map(chunk, range(0, n, chunk_size), logits.device)
    if invalid is not None and bool(invalid):
        raise NonFiniteError("sampling: the logits are NaN or infinite (non-finite weights or inputs)")
    return out if num_samples is not None else out.squeeze(1)


def _search(cdf: torch.Tensor, u: torch.Tensor, check: bool = True) -> torch.Tensor:
    """Per row of ``cdf`` (n, M) and each value of ``u`` (n, S): the smallest index i with cdf[i] > u.
    When rounding puts u at or past the row's total: the last index carrying mass (never a zero-mass one).
    ``check=False`` (GPU): no branch on the data; the caller checks the totals."""
    idx = torch.searchsorted(cdf, u, right=True)  # (n, S)
    over = idx >= cdf.shape[1]
    if not check:
        last = torch.searchsorted(cdf, cdf[:, -1:].contiguous(), right=False)
        return torch.where(over, last.expand_as(idx), idx)
    if bool(over.any()):  # rare with finite logits; always with NaN, infinite or all -inf ones (checked here)
        total = cdf[:, -1]
        if not bool((torch.isfinite(total) & (total > 0)).all()):
            raise NonFiniteError("sampling: the logits are NaN or infinite (non-finite weights or inputs)")
        last = torch.searchsorted(cdf, cdf[:, -1:].contiguous(), right=False)  # first index reaching the total
        idx = torch.where(over, last.expand_as(idx), idx)
    return idx
