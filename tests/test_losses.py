"""The chunked MLE loss equals autograd's cross_entropy(linear(...)) bit for bit: loss and every gradient."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from seqgan_rl.config import GeneratorConfig
from seqgan_rl.models import Generator
from seqgan_rl.models.losses import linear_cross_entropy


def _grads(model: torch.nn.Module, loss_fn) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    loss = loss_fn()
    loss.backward()
    return loss.detach(), [p.grad for p in model.parameters()]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("n, chunk", [(120, 64), (64, 64), (7, 3), (50, 1000)])
def test_linear_cross_entropy_is_autograds_bit_for_bit(n, chunk, threads):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(n)
        layer = torch.nn.Linear(16, 300)
        h = torch.randn(n, 16, generator=g, requires_grad=True)
        target = torch.randint(0, 300, (n,), generator=g)
        ref = F.cross_entropy(layer(h), target)
        ref_grads = torch.autograd.grad(ref, [h, layer.weight, layer.bias])
        new = linear_cross_entropy(h, layer.weight, layer.bias, target, chunk_rows=chunk)
        new_grads = torch.autograd.grad(new, [h, layer.weight, layer.bias])
    finally:
        torch.set_num_threads(before)
    assert torch.equal(new, ref)
    for a, b in zip(new_grads, ref_grads, strict=True):
        assert torch.equal(a, b) and a.stride() == b.stride()


@pytest.mark.parametrize(
    "config",
    [
        GeneratorConfig(vocab_size=500, seq_len=7, embed_dim=8, hidden_dim=12),
        GeneratorConfig(vocab_size=500, seq_len=7, embed_dim=8, hidden_dim=12, num_layers=2, dropout=0.5),
    ],
    ids=["paper-shape", "two-layers-dropout"],
)
def test_generator_mle_loss_equals_cross_entropy_of_its_logits(config):
    torch.manual_seed(0)
    gen = Generator(config)
    gen.train()
    tokens = torch.randint(0, 500, (37, 7), generator=torch.Generator().manual_seed(1))

    def reference():
        torch.manual_seed(5)  # the same dropout masks for both
        return F.cross_entropy(gen(tokens).flatten(0, 1), tokens.flatten())

    def chunked():
        torch.manual_seed(5)
        return gen.mle_loss(tokens)

    ref_loss, ref_grads = _grads(gen, reference)
    loss, grads = _grads(gen, chunked)
    assert torch.equal(loss, ref_loss)
    for a, b in zip(grads, ref_grads, strict=True):
        assert torch.equal(a, b)


def test_linear_cross_entropy_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match=r"h must be \(N, H\) and target \(N,\)"):
        linear_cross_entropy(torch.zeros(4, 3), torch.zeros(5, 3), torch.zeros(5), torch.zeros(3, dtype=torch.long))


def test_a_second_backward_is_refused_not_wrong():
    layer = torch.nn.Linear(4, 9)
    h = torch.randn(6, 4, requires_grad=True)
    loss = linear_cross_entropy(h, layer.weight, layer.bias, torch.randint(0, 9, (6,)))
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()
