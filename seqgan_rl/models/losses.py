"""The MLE loss of an output layer, computed in cache-sized row chunks, bit for bit as autograd computes it.

``linear_cross_entropy(h, W, b, y)`` is ``F.cross_entropy(F.linear(h, W, b), y)`` (mean over rows) for a generator's
last hidden states ``h`` ``(N, H)``. The ``(N, V)`` logits of an MLE minibatch are 25 MB (64 x 20 x 5,000 floats):
autograd's path reads and writes that much six times over in log-softmax, NLL and their backward passes (a zero
gradient tensor scattered into, the log-softmax gradient from it), far from the caches. Here the logits are made by
the same ``addmm`` call, then log-softmax, its gather and its gradient run ``CHUNK_ROWS`` rows at a time while they
are in cache, and the output layer's backward is the same ``mm`` calls that ``addmm``'s backward makes. Every value
(the loss, and the gradients of ``h``, ``W`` and ``b``) is the one autograd computes, bit for bit, at any thread
count: log-softmax works row by row, the loss reduces the same per-row values in the same order, and the weight
gradients come from the same matrix products over the whole minibatch (``tests/test_losses.py``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

CHUNK_ROWS = 64
"""Rows of logits per chunk: 64 x 5,000 floats (1.3 MB) stay in a core's L2 cache."""


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, target: torch.Tensor,
                chunk_rows: int) -> torch.Tensor:  # fmt: skip
        logp = torch.addmm(bias, h, weight.t())  # (N, V) logits: nn.Linear's own call; log-probs in place below
        n = logp.shape[0]
        picked = logp.new_empty(n, 1)
        for i in range(0, n, chunk_rows):
            rows = logp[i : i + chunk_rows]
            torch.log_softmax(rows, dim=-1, out=rows)  # row by row: the values of the full call
            torch.gather(rows, 1, target[i : i + chunk_rows, None], out=picked[i : i + chunk_rows])
        loss = F.nll_loss(picked, target.new_zeros(n))  # the mean of -picked, reduced as nll_loss reduces it
        ctx.save_for_backward(h, weight, logp, target)
        ctx.chunk_rows = chunk_rows
        return loss

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        h, weight, logp, target = ctx.saved_tensors
        n = logp.shape[0]
        # once only: the log-probs saved for it are overwritten (a second backward gets autograd's in-place error)
        # nll_loss's backward puts -grad / N at each row's target and 0 elsewhere; log-softmax's backward turns that
        # row into the logits' gradient, written over the log-probs (each element read before it is written)
        grad_picked = (-(grad_loss / n)).reshape(1, 1)
        for i in range(0, n, ctx.chunk_rows):
            rows = logp[i : i + ctx.chunk_rows]
            grad_rows = torch.zeros_like(rows).scatter_(1, target[i : i + ctx.chunk_rows, None],
                                                        grad_picked.expand(rows.shape[0], 1))  # fmt: skip
            torch._log_softmax_backward_data(grad_rows, rows, -1, rows.dtype, out=rows)
        grad = logp  # (N, V): the logits' gradient
        grad_h = grad.mm(weight) if ctx.needs_input_grad[0] else None  # addmm's backward, as autograd calls it
        grad_w = grad.t().mm(h) if ctx.needs_input_grad[1] else None
        grad_b = grad.sum(0) if ctx.needs_input_grad[2] else None
        return grad_h, grad_w, grad_b, None, None


def linear_cross_entropy(
    h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, target: torch.Tensor, chunk_rows: int | None = None
) -> torch.Tensor:
    """``F.cross_entropy(F.linear(h, weight, bias), target)``, bit for bit, in cache-sized chunks (module doc).

    Args:
        h: ``(N, H)`` contiguous inputs of the output layer.
        weight, bias: the output layer's ``(V, H)`` and ``(V,)``.
        target: ``(N,)`` int64 class indices.
        chunk_rows: rows per chunk (``None``: ``CHUNK_ROWS``); the values do not depend on it.
    """
    if h.dim() != 2 or target.shape != h.shape[:1]:
        raise ValueError(f"linear_cross_entropy: h must be (N, H) and target (N,), got {tuple(h.shape)} and "
                         f"{tuple(target.shape)}")  # fmt: skip
    return _LinearCrossEntropy.apply(h.contiguous(), weight, bias, target, chunk_rows or CHUNK_ROWS)
