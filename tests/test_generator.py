"""The generator policy: shapes, seeding, and exact agreement of its step, prefix and teacher-forced paths."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from seqgan_rl.config import GeneratorConfig
from seqgan_rl.models import Generator
from seqgan_rl.utils import make_rng, valid_mask

VOCAB, SEQ_LEN, EMBED, HIDDEN = 10, 8, 8, 16
B = 5


@pytest.fixture(params=[1, 2], ids=["1-layer", "2-layer"])
def gen_config(request) -> GeneratorConfig:
    """The paper's one-layer shape, and a stacked LSTM (state ``(B, 2*H)``): every path must agree for both."""
    return GeneratorConfig(
        vocab_size=VOCAB, seq_len=SEQ_LEN, embed_dim=EMBED, hidden_dim=HIDDEN, num_layers=request.param
    )


@pytest.fixture
def generator(gen_config: GeneratorConfig) -> Generator:
    """Parameters ~ N(0, 1), larger than the reference's N(0, 0.1), so that the distributions are far from
    uniform and the comparisons below discriminate."""
    g = Generator(gen_config)
    rng = make_rng(1234)
    with torch.no_grad():
        for p in g.parameters():
            p.copy_(torch.randn(p.shape, generator=rng))
    return g


@pytest.fixture
def tokens() -> torch.Tensor:
    return torch.randint(0, VOCAB, (B, SEQ_LEN), generator=make_rng(0))


def chained_log_probs(generator: Generator, tokens: torch.Tensor) -> torch.Tensor:
    """log G(y_t | y_<t) through the single-step API, one position at a time."""
    state = generator.initial_state(tokens.shape[0])
    prev = generator.start_tokens(tokens.shape[0])
    out = []
    for t in range(tokens.shape[1]):
        logits, state = generator.step(prev, state)
        out.append(torch.log_softmax(logits, -1).gather(1, tokens[:, t : t + 1]).squeeze(1))
        prev = tokens[:, t]
    return torch.stack(out, dim=1)


# ---------------------------------------------------------------------------------------------- shapes
def test_config_and_init(gen_config):
    g = Generator(gen_config)
    assert (g.vocab_size, g.seq_len, g.device) == (VOCAB, SEQ_LEN, torch.device("cpu"))
    g.reset_parameters(make_rng(0))
    flat = torch.cat([p.detach().flatten() for p in g.parameters()])
    assert flat.std().item() == pytest.approx(0.1, rel=0.1)  # all params N(0, 0.1), biases included
    assert abs(flat.mean().item()) < 0.02
    assert g.lstm.bias_hh_l0.abs().sum() > 0


def test_reset_parameters_is_seeded(gen_config):
    a, b = Generator(gen_config), Generator(gen_config)
    a.reset_parameters(make_rng(3))
    b.reset_parameters(make_rng(3))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_forward_and_log_probs_shapes(generator, tokens):
    logits = generator(tokens)
    assert logits.shape == (B, SEQ_LEN, VOCAB) and logits.dtype == torch.float32
    lp = generator.log_probs(tokens)
    assert lp.shape == (B, SEQ_LEN) and lp.dtype == torch.float32
    assert (lp <= 0).all()
    assert generator.sequence_nll(tokens).shape == (B,)


def test_step_shapes(generator):
    state = generator.initial_state(B)
    width = generator.config.num_layers * HIDDEN  # the layers side by side
    assert [s.shape for s in state] == [(B, width), (B, width)]
    assert all(torch.count_nonzero(s) == 0 for s in state)
    prev = generator.start_tokens(B)
    assert prev.shape == (B,) and prev.dtype == torch.long and (prev == generator.config.start_token).all()
    logits, (h, c) = generator.step(prev, state)
    assert logits.shape == (B, VOCAB) and h.shape == (B, width) and c.shape == (B, width)
    assert h.abs().max() < 1  # |h| = |o * tanh(c)| < 1: what logit_bound relies on


def test_sample_rollout_prefix_shapes(generator, tokens):
    samples = generator.sample(7, make_rng(0))
    assert samples.shape == (7, SEQ_LEN) and samples.dtype == torch.long
    assert int(samples.min()) >= 0 and int(samples.max()) < VOCAB
    assert generator.sample(0).shape == (0, SEQ_LEN)

    h, c = generator.prefix_states(tokens)
    assert h.shape == c.shape == (B, SEQ_LEN, generator.config.num_layers * HIDDEN)
    cont = generator.rollout(tokens[:, 2], (h[:, 2], c[:, 2]), SEQ_LEN - 3, make_rng(0))
    assert cont.shape == (B, SEQ_LEN - 3) and cont.dtype == torch.long
    assert int(cont.min()) >= 0 and int(cont.max()) < VOCAB


# ---------------------------------------------------------------------------------------------- seeding
def test_same_seed_same_samples(generator):
    a = generator.sample(40, make_rng(123))
    b = generator.sample(40, make_rng(123))
    c = generator.sample(40, make_rng(124))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_sample_is_rollout_from_the_start(generator):
    a = generator.sample(12, make_rng(8))
    b = generator.rollout(generator.start_tokens(12), generator.initial_state(12), SEQ_LEN, make_rng(8))
    assert torch.equal(a, b)


def test_sample_does_not_touch_global_rng(generator):
    torch.manual_seed(0)
    before = torch.get_rng_state()
    generator.sample(10, make_rng(1))
    assert torch.equal(torch.get_rng_state(), before)


# ---------------------------------------------------------------------------------------------- agreement of the paths
def test_step_chain_equals_teacher_forcing(generator, tokens):
    torch.testing.assert_close(chained_log_probs(generator, tokens), generator.log_probs(tokens), atol=1e-5, rtol=0)


def test_prefix_states_equal_teacher_forcing(generator, tokens):
    h, _ = generator.prefix_states(tokens)  # (B, T, L*H)
    assert h.shape == (B, SEQ_LEN, generator.config.num_layers * HIDDEN)
    lp = torch.log_softmax(generator.output(generator.top(h)), -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(lp, generator.log_probs(tokens), atol=1e-5, rtol=0)


def test_prefix_states_equal_step_states(generator, tokens):
    h, c = generator.prefix_states(tokens)
    state, prev = generator.initial_state(B), generator.start_tokens(B)
    for k in range(SEQ_LEN):
        _, state = generator.step(prev, state)
        torch.testing.assert_close(state[0], h[:, k], atol=1e-6, rtol=0)
        torch.testing.assert_close(state[1], c[:, k], atol=1e-6, rtol=0)
        prev = tokens[:, k]


def test_batched_equals_unbatched(generator, tokens):
    whole = generator.log_probs(tokens)
    rows = torch.cat([generator.log_probs(tokens[i : i + 1]) for i in range(B)])
    torch.testing.assert_close(rows, whole, atol=1e-5, rtol=0)  # float rounding of logits ~O(10)


def test_nll_is_mean_negative_log_prob(generator, tokens):
    lp = generator.log_probs(tokens).detach()
    torch.testing.assert_close(generator.sequence_nll(tokens, batch_size=2), -lp.mean(dim=1), atol=1e-6, rtol=0)
    assert generator.nll(tokens, batch_size=3) == pytest.approx(float(-lp.mean()), abs=1e-6)


@pytest.mark.parametrize("tau", [1.0, 0.7])
@pytest.mark.parametrize("eos", [None, 5])
def test_sequence_nll_equals_cross_entropy_bit_for_bit(gen_config, generator, tokens, tau, eos):
    # the buffered computation (logits and log-probabilities written into reused buffers) gives the values of
    # cross_entropy(G(chunk)) exactly, partial last chunk included; committed NLL figures depend on it
    if eos is not None:
        text = Generator(dataclasses.replace(gen_config, eos_token=eos, pad_token=0))
        text.load_state_dict(generator.state_dict())
        generator = text
        tokens = generator.pad_after_eos(tokens)
    with torch.no_grad():
        logits = generator(tokens) / tau if tau != 1.0 else generator(tokens)
        nll = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens.flatten(), reduction="none")
        nll = nll.view(tokens.shape)
    if eos is None:
        expected = nll.mean(dim=1)
    else:
        m = valid_mask(tokens, eos).to(nll.dtype)
        expected = (nll * m).sum(dim=1) / m.sum(dim=1)
    for batch_size in (B, 3):  # one chunk; several with a partial last one
        assert torch.equal(generator.sequence_nll(tokens, tau, batch_size=batch_size), expected)
        # several temperatures from one pass (temperature sweeps): each exactly as a call of its own
        at_once = generator.sequence_nlls(tokens, (0.5, tau, 1.0), batch_size=batch_size)
        assert torch.equal(at_once[1], expected)
        assert torch.equal(at_once[0], generator.sequence_nll(tokens, 0.5, batch_size=batch_size))
        assert generator.nlls(tokens, (0.5, tau))[1] == generator.nll(tokens, tau)


def test_sample_step_draws_from_the_output_layer_exactly(generator, tokens):
    # sample_step projects with mm + bias (no addmm bias copy): the same logits as the output layer, so the
    # same draws as sampling step()'s logits
    state = generator.initial_state(B)
    prev = tokens[:, 0]
    logits, _ = generator.step(prev, state)
    expected = generator.sample_next(logits, make_rng(3), bound=generator.logit_bound())
    got, _ = generator.sample_step(prev, state, make_rng(3), bound=generator.logit_bound(), chunk_size=2)
    assert torch.equal(got, expected)


def test_rollout_continues_the_prefix_distribution(generator):
    # Continuing after Y_{1:2} from the cached state: the first continuation token is distributed as
    # G(. | Y_{1:2}), which the teacher-forced logits at position 3 give.
    prefix = torch.tensor([[3, 7] + [0] * (SEQ_LEN - 2)])
    h, c = generator.prefix_states(prefix)
    n = 4000
    cont = generator.rollout(prefix[:, 1].repeat(n), (h[:, 1].repeat(n, 1), c[:, 1].repeat(n, 1)), 1, make_rng(2))
    freq = torch.bincount(cont[:, 0], minlength=VOCAB).double() / n
    probs = torch.softmax(generator(prefix)[0, 2].double(), -1)
    assert (freq - probs).abs().max() < 0.03  # 4 standard errors at p = 0.5 is 0.032


@torch.no_grad()
def test_logit_bound_holds(generator, tokens):
    assert generator(tokens).abs().max() <= generator.logit_bound()


# ---------------------------------------------------------------------------------------------- temperature
@pytest.mark.parametrize("tau", [0.5, 0.8, 1.0, 2.5])
def test_log_probs_at_temperature(generator, tokens, tau):
    expected = torch.log_softmax(generator(tokens) / tau, -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(generator.log_probs(tokens, temperature=tau), expected, atol=1e-6, rtol=0)
    nll = generator.sequence_nll(tokens, temperature=tau)
    torch.testing.assert_close(nll, -expected.mean(dim=1), atol=1e-6, rtol=0)


def test_low_temperature_sharpens_samples(generator):
    # at a very low temperature every sample is the greedy decode
    greedy = []
    state, prev = generator.initial_state(1), generator.start_tokens(1)
    for _ in range(SEQ_LEN):
        logits, state = generator.step(prev, state)
        prev = logits.argmax(-1)
        greedy.append(prev)
    greedy = torch.stack(greedy, 1)
    samples = generator.sample(20, make_rng(0), temperature=1e-3)
    assert (samples == greedy).all()


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "bad",
    [
        torch.full((2, SEQ_LEN), VOCAB),  # id == V
        torch.full((2, SEQ_LEN), -1),  # negative id
        torch.zeros(2, SEQ_LEN, dtype=torch.int32),  # wrong dtype
        torch.zeros(2, SEQ_LEN),  # float
        torch.zeros(SEQ_LEN, dtype=torch.long),  # 1-D
    ],
    ids=["id-too-large", "negative-id", "int32", "float", "1d"],
)
def test_bad_tokens_raise(generator, bad):
    with pytest.raises(ValueError, match="tokens"):
        generator(bad)
    with pytest.raises(ValueError, match="tokens"):
        generator.log_probs(bad)
    with pytest.raises(ValueError, match="tokens"):
        generator.prefix_states(bad)


@pytest.mark.parametrize("tau", [0.0, -1.0, float("nan")])
def test_bad_temperature_raises(generator, tokens, tau):
    with pytest.raises(ValueError, match="temperature"):
        generator.log_probs(tokens, temperature=tau)
    with pytest.raises(ValueError, match="temperature"):
        generator.sequence_nll(tokens, temperature=tau)
    with pytest.raises(ValueError, match="temperature"):
        generator.sample(3, temperature=tau)


def test_negative_sample_count_raises(generator):
    with pytest.raises(ValueError, match="num"):
        generator.sample(-1)


def test_bad_config_raises():
    with pytest.raises(ValueError, match="start_token"):
        GeneratorConfig(vocab_size=VOCAB, start_token=VOCAB, embed_dim=EMBED)
    with pytest.raises(ValueError, match="num_layers"):
        GeneratorConfig(num_layers=0)
    with pytest.raises(ValueError, match="dropout"):
        GeneratorConfig(dropout=1.0)


# ---------------------------------------------------------------------------------------------- variational dropout
def dropout_generator(p: float = 0.5, num_layers: int = 2) -> Generator:
    g = Generator(GeneratorConfig(VOCAB, SEQ_LEN, embed_dim=EMBED, hidden_dim=HIDDEN, num_layers=num_layers, dropout=p))
    g.reset_parameters(make_rng(0))
    return g


def output_layer_inputs(g: Generator, tokens: torch.Tensor) -> torch.Tensor:
    """What the output layer reads in a teacher-forced pass, ``(B, T, H)``."""
    seen = []
    hook = g.output.register_forward_hook(lambda module, args, out: seen.append(args[0].detach()))
    try:
        g(tokens)
    finally:
        hook.remove()
    return seen[0]


def test_dropout_mask_is_one_per_sequence_reused_at_every_step(tokens, monkeypatch):
    import seqgan_rl.models.generator as generator_module

    g = dropout_generator(0.5).train()
    masks = []
    real = generator_module._sequence_mask

    def spy(x, p):
        masks.append(real(x, p))
        return masks[-1]

    monkeypatch.setattr(generator_module, "_sequence_mask", spy)
    torch.manual_seed(0)
    h = output_layer_inputs(g, tokens)  # (B, T, H)
    # each layer's input (embedding 8, then hidden 16) and the last output: one (B, 1, D) mask each
    assert [tuple(m.shape) for m in masks] == [(B, 1, EMBED), (B, 1, HIDDEN), (B, 1, HIDDEN)]
    assert all(set(m.unique().tolist()) <= {0.0, 2.0} for m in masks)  # kept units scaled by 1 / (1 - p)
    dropped = masks[-1][:, 0] == 0  # (B, H): the output units this sequence lost
    assert bool(dropped.any()) and bool((~dropped).any())
    assert bool((h[dropped.unsqueeze(1).expand_as(h)] == 0).all())  # ... at every step
    assert not torch.equal(dropped[0], dropped[1]) or not torch.equal(dropped[1], dropped[2])  # per sequence


def test_dropout_is_off_in_eval_mode_and_in_every_other_path(tokens):
    g = dropout_generator(0.5)
    plain = Generator(dataclasses.replace(g.config, dropout=0.0))
    plain.load_state_dict(g.state_dict())
    g.train()
    torch.manual_seed(0)
    first = g(tokens)
    assert not torch.equal(first, g(tokens))  # training: a fresh mask every call
    assert not torch.allclose(first, plain(tokens))
    g.eval()
    assert torch.equal(g(tokens), plain(tokens))  # evaluation: the deterministic network
    g.train()  # sampling, NLL and the step API never use dropout, whatever the mode
    assert torch.equal(g.sequence_nll(tokens), plain.sequence_nll(tokens))
    assert torch.equal(g.sample(6, make_rng(1)), plain.sample(6, make_rng(1)))
    torch.testing.assert_close(chained_log_probs(g, tokens), plain.log_probs(tokens), atol=1e-5, rtol=0)


def test_dropout_training_gradient_reaches_every_layer(tokens):
    g = dropout_generator(0.3).train()
    torch.nn.functional.cross_entropy(g(tokens).flatten(0, 1), tokens.flatten()).backward()
    for name, param in g.named_parameters():
        assert param.grad is not None and bool(param.grad.abs().sum() > 0), name
