"""``sample_categorical`` draws exactly from softmax(logits): chi-square tests with fixed seeds.

Each test compares the counts of many draws with the expected counts under softmax(logits) and requires
the chi-square p-value to exceed 1e-4 (a correct sampler fails such a test once in 10,000 seeds; these
seeds are fixed, so the outcome is deterministic). The survival function of chi-square with k degrees of
freedom is the regularised upper incomplete gamma function Q(k/2, x/2) (``torch.special.gammaincc``).
"""

from __future__ import annotations

import math

import pytest
import torch

from seqgan_rl.models import sample_categorical
from seqgan_rl.models.sampling import CPU_CHUNK_ROWS, CUDA_CHUNK_ROWS, _search, block_size_for, chunk_rows
from seqgan_rl.utils import make_rng

N = 20_000
P_MIN = 1e-4


def chi_square_p(samples: torch.Tensor, logits: torch.Tensor) -> float:
    """p-value of the draws ``samples`` against softmax(logits) over the tokens of nonzero probability.

    Categories whose expected count is below 5 are pooled into one bin (the test's usual condition).
    """
    probs = torch.softmax(logits.double(), -1)
    counts = torch.bincount(samples, minlength=logits.shape[0]).double()
    expected = probs * samples.numel()
    small = expected < 5
    obs = torch.cat([counts[~small], counts[small].sum().view(1)])
    exp = torch.cat([expected[~small], expected[small].sum().view(1)])
    if exp[-1] == 0:
        obs, exp = obs[:-1], exp[:-1]
    stat = ((obs - exp) ** 2 / exp).sum()
    dof = obs.numel() - 1
    return float(torch.special.gammaincc(torch.tensor(dof / 2.0, dtype=torch.float64), stat / 2))


def test_chi_square_helper_rejects_a_wrong_sampler():
    logits = torch.linspace(-2, 2, 7)
    wrong = torch.randint(0, 7, (N,), generator=make_rng(0))  # uniform, not softmax(logits)
    assert chi_square_p(wrong, logits) < 1e-10
    right = torch.multinomial(torch.softmax(logits, -1), N, replacement=True, generator=make_rng(0))
    assert chi_square_p(right, logits) > P_MIN


@pytest.mark.parametrize("vocab", [2, 7, 13, 16, 50, 101])
@pytest.mark.parametrize("bound", [None, "tight"])
def test_draws_follow_softmax(vocab, bound):
    logits = torch.randn(vocab, generator=make_rng(vocab)) * 2.0
    max_abs = None if bound is None else float(logits.abs().max())
    samples = sample_categorical(logits.expand(N, vocab), make_rng(1000 + vocab), max_abs_logit=max_abs)
    assert samples.shape == (N,) and samples.dtype == torch.long
    assert chi_square_p(samples, logits) > P_MIN


@pytest.mark.parametrize("vocab", [7, 13, 50])
@pytest.mark.parametrize("max_abs", [None, 3.0])
def test_minus_inf_logits_are_never_drawn(vocab, max_abs):
    logits = torch.randn(vocab, generator=make_rng(vocab)).clamp(-3, 3)
    banned = torch.zeros(vocab, dtype=torch.bool)
    banned[[0, 2, vocab - 1]] = True  # first, middle and last: the block edges
    if vocab >= 13:
        banned[vocab // 2 : vocab // 2 + block_size_for(vocab) + 1] = True  # at least one whole block
    logits[banned] = -math.inf
    samples = sample_categorical(logits.expand(N, vocab), make_rng(7), max_abs_logit=max_abs)
    assert not banned[samples].any()
    assert chi_square_p(samples, logits) > P_MIN


def test_rows_with_very_different_scales():
    # Row 0 ~ +-200 (exp overflows without the max subtraction), row 1 ~ -200 everywhere (underflows),
    # row 2 ~ O(1). Each row must follow its own softmax.
    base = torch.tensor([0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -40.0])
    rows = torch.stack([base + 200.0, base - 200.0, base * 0.1])
    rows[0, 6] = -200.0
    logits = rows.repeat(N, 1)  # (3N, 7), interleaved rows
    samples = sample_categorical(logits, make_rng(3), max_abs_logit=None, chunk_size=999)
    for r in range(3):
        assert chi_square_p(samples[r::3], rows[r]) > P_MIN, r
    assert not (samples[0::3] == 6).any()


def test_bound_above_safe_range_still_exact():
    # A bound > 80 must fall back to subtracting the row max (exp(200) overflows float32).
    logits = torch.tensor([200.0, 199.0, 198.5, -150.0, 195.0])
    samples = sample_categorical(logits.expand(N, 5), make_rng(4), max_abs_logit=200.0)
    assert chi_square_p(samples, logits) > P_MIN


def test_each_row_is_independent_and_uses_its_own_logits():
    # one-hot-like rows: row i can only draw token i % V
    v = 13
    logits = torch.full((3 * v, v), -math.inf)
    idx = torch.arange(3 * v) % v
    logits[torch.arange(3 * v), idx] = 0.0
    assert torch.equal(sample_categorical(logits, make_rng(0), chunk_size=5), idx)
    assert torch.equal(sample_categorical(logits, make_rng(0), max_abs_logit=1.0), idx)


def test_seeded_and_chunking_invariant_in_distribution():
    logits = torch.randn(64, 13, generator=make_rng(0))
    a = sample_categorical(logits, make_rng(5))
    b = sample_categorical(logits, make_rng(5))
    assert torch.equal(a, b)
    assert not torch.equal(a, sample_categorical(logits, make_rng(6)))


def test_uniform_at_the_cdf_edges(monkeypatch):
    # u = 0 must pick the first token with mass; u = total (rounding) must pick the last token with mass,
    # never a zero-probability one past it.
    v = 13
    logits = torch.zeros(v)
    logits[:2] = -math.inf
    logits[-5:] = -math.inf  # the whole last block (block size 4 for V = 13) and more
    real_rand = torch.rand
    for value, expected in [(0.0, 2), (1.0, v - 6)]:

        def fake_rand(*size, value=value, **kwargs):
            return torch.full_like(real_rand(*size, **kwargs), value)

        monkeypatch.setattr(torch, "rand", fake_rand)
        got = sample_categorical(logits.expand(4, v), make_rng(0))
        monkeypatch.setattr(torch, "rand", real_rand)
        assert (got == expected).all(), (value, got)


def test_bad_shape_raises():
    with pytest.raises(ValueError, match=r"\(N, V\)"):
        sample_categorical(torch.zeros(5))


@pytest.mark.parametrize("vocab", [1, 2, 7, 13, 16, 5000, 5003])
def test_block_size(vocab):
    k = block_size_for(vocab)
    assert 1 <= k <= vocab or vocab == 1
    nb = -(-vocab // k)
    assert nb * k >= vocab and (nb - 1) * k < vocab
    root = math.isqrt(vocab)
    if vocab == 5000:  # a divisor near sqrt(V): no padding
        assert vocab % k == 0 and root // 2 <= k <= 2 * root


def test_branchless_search_equals_the_checked_one():
    # the GPU path (no host sync per chunk) computes the rounding fallback always: the same indices, the edge
    # u >= total included; a zero-mass tail is never returned
    cdf = torch.tensor([[0.0, 1.0, 3.0, 3.0], [2.0, 2.0, 5.0, 6.0], [1.0, 2.0, 3.0, 4.0]])
    u = torch.tensor([[0.0, 2.999, 3.0, 7.0], [0.0, 1.999, 5.0, 6.0], [0.5, 3.5, 4.0, 9.0]])
    checked = _search(cdf, u)
    assert torch.equal(_search(cdf, u, check=False), checked)
    assert checked.tolist() == [[1, 2, 2, 2], [0, 0, 3, 3], [0, 3, 3, 3]]


def test_default_chunk_rows_follow_the_device():
    assert chunk_rows(torch.device("cpu")) == CPU_CHUNK_ROWS == 512  # the committed draws' chunking
    assert chunk_rows(torch.device("cuda", 0)) == CUDA_CHUNK_ROWS > CPU_CHUNK_ROWS


def test_overwriting_the_logits_draws_the_same_tokens():
    logits = torch.randn(700, 50, generator=make_rng(0))
    for bound in (None, 10.0):  # with and without the row-max shift
        expected = sample_categorical(logits, make_rng(1), max_abs_logit=bound)
        scratch = logits.clone()
        assert torch.equal(sample_categorical(scratch, make_rng(1), max_abs_logit=bound, overwrite=True), expected)
