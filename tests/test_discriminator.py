"""The CNN discriminator: shapes, P(real), dropout only in training, the L2 term, presets and bad input."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from seqgan_rl.config import PAPER_FILTER_SIZES, DiscriminatorConfig
from seqgan_rl.models import Discriminator
from seqgan_rl.utils import make_rng

VOCAB, SEQ_LEN = 10, 8
B = 6


@pytest.fixture
def disc_config() -> DiscriminatorConfig:
    return DiscriminatorConfig(
        vocab_size=VOCAB, seq_len=SEQ_LEN, embed_dim=8, filter_sizes=(1, 2, 3), num_filters=(4, 6, 5), dropout=0.5
    )


@pytest.fixture
def discriminator(disc_config: DiscriminatorConfig) -> Discriminator:
    d = Discriminator(disc_config)
    d.reset_parameters(make_rng(99))
    return d


@pytest.fixture
def tokens() -> torch.Tensor:
    return torch.randint(0, VOCAB, (B, SEQ_LEN), generator=make_rng(0))


def test_output_shapes(discriminator, tokens):
    logits = discriminator(tokens)
    assert logits.shape == (B, 2) and logits.dtype == torch.float32
    p = discriminator.prob_real(tokens)
    assert p.shape == (B,)
    assert discriminator.prob_real(tokens[:0]).shape == (0,)


def test_prob_real_is_softmax_of_eval_logits(discriminator, tokens):
    discriminator.eval()
    expected = torch.softmax(discriminator(tokens), dim=-1)[:, 1]
    p = discriminator.prob_real(tokens, batch_size=4)  # chunked: 4 + 2
    torch.testing.assert_close(p, expected.detach(), atol=1e-6, rtol=0)
    assert ((p > 0) & (p < 1)).all()


def test_prob_real_has_no_dropout_and_keeps_the_mode(discriminator, tokens):
    discriminator.train()
    a = discriminator.prob_real(tokens)
    b = discriminator.prob_real(tokens)
    assert torch.equal(a, b)
    assert discriminator.training  # restored
    discriminator.eval()
    assert torch.equal(discriminator.prob_real(tokens), a)
    assert not discriminator.training


def test_dropout_only_in_train_mode(discriminator, tokens):
    discriminator.eval()
    assert torch.equal(discriminator(tokens), discriminator(tokens))
    discriminator.train()
    torch.manual_seed(0)
    a = discriminator(tokens)
    b = discriminator(tokens)
    assert not torch.equal(a, b)  # dropout 0.5 on the features: different masks


def test_no_dropout_configured_means_deterministic_training_forward(disc_config, tokens):
    cfg = DiscriminatorConfig(**{**disc_config.__dict__, "dropout": 0.0})
    d = Discriminator(cfg).train()
    assert torch.equal(d(tokens), d(tokens))


def test_l2_penalty_hand_computed(discriminator):
    with torch.no_grad():
        discriminator.output.weight.fill_(0.5)  # (2, 15): 30 entries of 0.25
        discriminator.output.bias.copy_(torch.tensor([1.0, -2.0]))  # 1 + 4
    expected = 0.2 * 0.5 * (30 * 0.25 + 5.0)
    assert discriminator.config.l2_reg == 0.2
    assert float(discriminator.l2_penalty().detach()) == pytest.approx(expected)


def test_l2_penalty_is_on_the_output_layer_only(discriminator):
    before = float(discriminator.l2_penalty().detach())
    with torch.no_grad():
        discriminator.highway_hidden.weight.mul_(10)
        discriminator.convs[0].weight.mul_(10)
        discriminator.embedding.weight.mul_(10)
    assert float(discriminator.l2_penalty().detach()) == before


def test_loss_is_cross_entropy_plus_l2(discriminator, tokens):
    discriminator.eval()
    labels = torch.tensor([1, 0, 1, 1, 0, 0])
    expected = F.cross_entropy(discriminator(tokens), labels) + discriminator.l2_penalty()
    torch.testing.assert_close(discriminator.loss(tokens, labels), expected)


def test_reference_initialisation(discriminator):
    d = discriminator
    assert d.embedding.weight.abs().max() <= 1.0
    for layer in [*d.convs, d.output]:
        assert layer.weight.abs().max() <= 0.2  # truncated N(0, 0.1) at two standard deviations
        assert torch.all(layer.bias == 0.1)
    for layer in (d.highway_gate, d.highway_hidden):
        assert torch.count_nonzero(layer.bias) == 0


def test_reset_parameters_is_seeded(disc_config):
    a, b = Discriminator(disc_config), Discriminator(disc_config)
    a.reset_parameters(make_rng(5))
    b.reset_parameters(make_rng(5))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


# ---------------------------------------------------------------------------------------------- presets
def test_paper_preset():
    cfg = DiscriminatorConfig.paper()
    assert cfg.filter_sizes == (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20) == PAPER_FILTER_SIZES
    assert cfg.total_filters == 1720
    assert (cfg.embed_dim, cfg.dropout, cfg.l2_reg, cfg.vocab_size, cfg.seq_len) == (64, 0.25, 0.2, 5000, 20)
    d = Discriminator(cfg)
    assert [conv.kernel_size[0] for conv in d.convs] == list(cfg.filter_sizes)
    assert sum(conv.out_channels for conv in d.convs) == 1720
    assert d.highway_gate.in_features == d.output.in_features == 1720
    assert d(torch.zeros(2, 20, dtype=torch.long)).shape == (2, 2)


def test_paper_preset_drops_widths_longer_than_the_sequence():
    cfg = DiscriminatorConfig.paper(vocab_size=50, seq_len=10)
    assert cfg.filter_sizes == tuple(range(1, 11))
    assert cfg.total_filters == 1720 - 320


def test_light_preset_and_preset_lookup():
    cfg = DiscriminatorConfig.preset("light", vocab_size=VOCAB, seq_len=SEQ_LEN)
    assert cfg == DiscriminatorConfig.light(VOCAB, SEQ_LEN)
    assert cfg.filter_sizes == (2, 3, 4, 5) and cfg.num_filters == (64,) * 4
    assert DiscriminatorConfig.light(VOCAB, seq_len=3).filter_sizes == (2, 3)
    with pytest.raises(ValueError, match="unknown discriminator preset"):
        DiscriminatorConfig.preset("huge")


# ---------------------------------------------------------------------------------------------- bad configs and input
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"filter_sizes": (2, SEQ_LEN + 1), "num_filters": (4, 4)}, "filter_sizes"),
        ({"filter_sizes": (0,), "num_filters": (4,)}, "filter_sizes"),
        ({"filter_sizes": (2, 3), "num_filters": (4,)}, "equal length"),
        ({"filter_sizes": (), "num_filters": ()}, "non-empty"),
        ({"filter_sizes": (2,), "num_filters": (0,)}, "num_filters"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
        ({"l2_reg": -1.0}, "l2_reg"),
        ({"embed_dim": 0}, "embed_dim"),
        ({"vocab_size": 0}, "vocab_size"),
    ],
)
def test_bad_config_raises(kwargs, message):
    base = {"vocab_size": VOCAB, "seq_len": SEQ_LEN, "filter_sizes": (2,), "num_filters": (4,)}
    with pytest.raises(ValueError, match=message):
        DiscriminatorConfig(**{**base, **kwargs})


@pytest.mark.parametrize("length", [SEQ_LEN - 1, SEQ_LEN + 3])
def test_wrong_sequence_length_raises(discriminator, length):
    with pytest.raises(ValueError, match=f"length {SEQ_LEN}"):
        discriminator.prob_real(torch.zeros(2, length, dtype=torch.long))


def test_bad_token_ids_raise(discriminator):
    with pytest.raises(ValueError, match="token ids"):
        discriminator.prob_real(torch.full((2, SEQ_LEN), VOCAB))
    with pytest.raises(ValueError, match="int64"):
        discriminator.prob_real(torch.zeros(2, SEQ_LEN))
