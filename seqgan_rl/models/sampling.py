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

# exp(x) for |x| <= 80 is finite and non-zero in float32 (5.5e34 * 5000 < 3.4e38; exp(-80) > 1.2e-38).
SAFE_EXP_RANGE = 80.0


def block_size_for(vocab_size: int) -> int:
    """Tokens per block: a divisor of V near sqrt(V) when one exists (no padding), else ceil(sqrt(V))."""
    root = math.isqrt(vocab_size)
    for k in sorted(range(max(1, root // 2), 2 * root + 1), key=lambda k: abs(k - root)):
        if vocab_size % k == 0 and k > 1:
            return k
    return max(1, math.ceil(math.sqrt(vocab_size)))


def sample_categorical(
    logits: torch.Tensor,
    rng: torch.Generator | None = None,
    *,
    max_abs_logit: float | None = None,
    chunk_size: int = 512,
) -> torch.Tensor:
    """Draw one index per row from ``softmax(logits)``.

    Args:
        logits: ``(N, V)`` float tensor (already divided by any temperature); ``-inf`` marks tokens
            with zero probability (never drawn). Each row needs at least one finite logit.
        rng: generator on ``logits.device``; ``None`` uses torch's global generator.
        max_abs_logit: a bound on the finite ``|logits|`` known to the caller (the generator derives
            one from its output layer). When it is at most 80, the row-max subtraction is skipped (exp
            can neither overflow nor underflow), which is exact and faster. ``None`` always subtracts it.
        chunk_size: rows per chunk (keeps the work in cache).

    Returns:
        ``(N,)`` int64 tensor of indices in ``[0, V)``.
    """
    if logits.dim() != 2:
        raise ValueError(f"logits must be (N, V), got shape {tuple(logits.shape)}")
    n, v = logits.shape
    out = torch.empty(n, dtype=torch.long, device=logits.device)
    shift = max_abs_logit is None or max_abs_logit > SAFE_EXP_RANGE
    k = block_size_for(v)
    nb = -(-v // k)
    for start in range(0, n, chunk_size):
        x = logits[start : start + chunk_size]
        mass = torch.exp(x - x.amax(dim=-1, keepdim=True) if shift else x)  # (n, V), unnormalised
        if nb * k != v:
            mass = F.pad(mass, (0, nb * k - v))
        blocks = mass.view(-1, nb, k)  # (n, NB, K)
        block_cdf = blocks.sum(dim=-1).cumsum_(dim=-1)  # (n, NB)
        u = torch.rand(x.shape[0], 1, generator=rng, device=x.device, dtype=mass.dtype) * block_cdf[:, -1:]
        b = _search(block_cdf, u)  # (n, 1)
        below = torch.where(b > 0, block_cdf.gather(1, (b - 1).clamp_(min=0)), torch.zeros_like(u))
        inner_cdf = blocks.gather(1, b.unsqueeze(-1).expand(-1, 1, k)).squeeze(1).cumsum_(dim=-1)  # (n, K)
        j = _search(inner_cdf, u - below)
        out[start : start + chunk_size] = (b * k + j).squeeze(1)
    return out


def _search(cdf: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Smallest index i with cdf[i] > u, per row. When rounding puts u at or past the row's total, the
    last index carrying mass (never a zero-mass one)."""
    idx = torch.searchsorted(cdf, u, right=True)  # (n, 1)
    over = idx >= cdf.shape[1]
    if bool(over.any()):
        rows = over.squeeze(1)
        idx[rows] = torch.searchsorted(cdf[rows], cdf[rows, -1:], right=False)
    return idx
