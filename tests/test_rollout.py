"""The whole-sequence MC Q against the paper's loop, exact enumeration, and the rollout machinery."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch
from env_helpers import T, tiny_discriminator, tiny_generator

from seqgan_rl.envs.rollout import EMARolloutPolicy, mc_q_values, rollout_completions, sample_prefix_completions
from seqgan_rl.utils import make_rng


def reference_q_loop(gen, disc, seqs, completions):
    """The paper's loop, written plainly: per rollout n, per position t, D of that one completion."""
    b, t_len = seqs.shape
    n = completions.shape[1]
    q = torch.zeros(b, t_len)
    for t in range(1, t_len):
        for i in range(n):
            for j in range(b):
                with torch.no_grad():
                    logits = disc(completions[t - 1, i, j].unsqueeze(0))
                q[j, t - 1] += torch.softmax(logits, dim=-1)[0, 1] / n
    for j in range(b):
        with torch.no_grad():
            q[j, t_len - 1] = torch.softmax(disc(seqs[j : j + 1]), dim=-1)[0, 1]
    return q


def test_completions_keep_their_prefix_and_shape():
    gen = tiny_generator()
    seqs = gen.sample(5, make_rng(0))
    comp = sample_prefix_completions(gen, seqs, 7, make_rng(1))
    assert comp.shape == (5, 7, 5, 6) and comp.dtype == torch.long  # (T-1, N, B, T)
    for t in range(1, 6):
        assert torch.equal(comp[t - 1, :, :, :t], seqs[:, :t].expand(7, 5, t))
    assert int(comp.min()) >= 0 and int(comp.max()) < gen.vocab_size


def test_q_equals_the_papers_loop_on_the_same_completions():
    gen, disc = tiny_generator(), tiny_discriminator()
    seqs = gen.sample(4, make_rng(0))
    comp = sample_prefix_completions(gen, seqs, 3, make_rng(1))
    q = mc_q_values(seqs, gen, disc, 3, completions=comp)
    assert q.shape == (4, 6)
    torch.testing.assert_close(q, reference_q_loop(gen, disc, seqs, comp), atol=1e-5, rtol=0)


def test_q_is_deterministic_under_a_seed_and_in_unit_interval():
    gen, disc = tiny_generator(), tiny_discriminator()
    seqs = gen.sample(4, make_rng(0))
    q1 = mc_q_values(seqs, gen, disc, 5, make_rng(7))
    q2 = mc_q_values(seqs, gen, disc, 5, make_rng(7))
    q3 = mc_q_values(seqs, gen, disc, 5, make_rng(8))
    assert torch.equal(q1, q2)
    assert not torch.equal(q1, q3)
    assert bool(((q1 > 0) & (q1 < 1)).all())


def exact_q(gen, disc, seq):
    """E[D(Y) | Y_{1:t}] by enumerating every completion (tiny V and T only)."""
    v, t_len = gen.vocab_size, seq.shape[0]
    out = []
    for t in range(1, t_len):
        suffixes = torch.tensor(list(itertools.product(range(v), repeat=t_len - t)), dtype=torch.long)
        full = torch.cat([seq[:t].expand(len(suffixes), t), suffixes], dim=1)
        with torch.no_grad():
            logp = gen.log_probs(full)[:, t:].sum(dim=1)  # log p(suffix | prefix)
        out.append(float((logp.exp() * disc.prob_real(full)).sum()))
    out.append(float(disc.prob_real(seq[None])[0]))
    return torch.tensor(out)


def test_mc_q_is_an_unbiased_estimate_of_the_exact_q():
    gen, disc = tiny_generator(vocab_size=4, seq_len=4), tiny_discriminator(vocab_size=4, seq_len=4)
    seqs = gen.sample(3, make_rng(0))
    n = 4000
    q = mc_q_values(seqs, gen, disc, n, make_rng(1))
    comp = sample_prefix_completions(gen, seqs, n, make_rng(1))
    d = disc.prob_real(comp.reshape(-1, 4)).view(3, n, 3)  # (T-1, N, B)
    stderr = d.std(dim=1).T / n**0.5  # (B, T-1)
    for b in range(3):
        exact = exact_q(gen, disc, seqs[b])
        assert q[b, -1] == pytest.approx(float(exact[-1]), abs=1e-6)  # D(Y) itself
        assert bool(((q[b, :-1] - exact[:-1]).abs() <= 4 * stderr[b] + 1e-6).all()), (q[b], exact)


def test_rollouts_from_cached_states_match_rollouts_recomputing_the_prefix():
    """Continuing from the cached state of a prefix samples the same conditional distribution as
    recomputing the prefix from the start token (first sampled token, compared by frequencies)."""
    gen = tiny_generator(vocab_size=5, seq_len=5)
    seq = gen.sample(1, make_rng(0))
    t, n = 2, 20000
    comp = sample_prefix_completions(gen, seq, n, make_rng(1))[t - 1, :, 0]  # (N, T)
    with torch.no_grad():
        p_next = torch.softmax(gen(seq)[0, t], dim=-1)  # teacher-forced p(y_{t+1} | y_1..y_t)
    freq = torch.bincount(comp[:, t], minlength=5).double() / n
    assert torch.allclose(freq, p_next.double(), atol=4 * (0.25 / n) ** 0.5)


def test_rollout_completions_mixed_lengths_and_eos():
    gen = tiny_generator()
    tokens = gen.sample(4, make_rng(0))
    lens = torch.tensor([1, 3, 6, 2])
    h, c = gen.prefix_states(tokens)
    state = (h[torch.arange(4), lens - 1], c[torch.arange(4), lens - 1])
    out = rollout_completions(gen, tokens, lens, state, make_rng(1))
    for r in range(4):
        assert torch.equal(out[r, : lens[r]], tokens[r, : lens[r]])
    assert torch.equal(out[2], tokens[2])  # a full prefix needs no rollout
    # with an end token every position after it is padding
    eos, pad = 3, 0
    out = rollout_completions(gen, tokens, lens, state, make_rng(2), eos_token=eos, pad_token=pad)
    for row in out.tolist():
        if eos in row:
            assert all(x == pad for x in row[row.index(eos) + 1 :])
    with pytest.raises(ValueError, match="pad_token"):
        rollout_completions(gen, tokens, lens, state, make_rng(2), eos_token=eos)


@pytest.mark.parametrize("num_layers", [1, 2])
def test_rollouts_from_cached_prefix_states_equal_the_step_by_step_computation(num_layers):
    """Each row continued from its cached prefix state (``prefix_states``, states of all layers side by side)
    draws exactly the tokens of feeding the prefix one step at a time from the start token and then sampling
    from that state with the same random stream; and the whole-sequence completions' first rollout token comes
    from the teacher-forced distribution of its prefix."""
    gen = tiny_generator(num_layers=num_layers)
    tokens = gen.sample(4, make_rng(0))
    lens = torch.tensor([1, 3, 5, 2])
    h, c = gen.prefix_states(tokens)  # (B, T, L*H)
    for r in range(4):
        n = int(lens[r])
        state = (h[r : r + 1, n - 1], c[r : r + 1, n - 1])
        got = rollout_completions(gen, tokens[r : r + 1], lens[r : r + 1], state, make_rng(7))
        step_state, prev = gen.initial_state(1), gen.start_tokens(1)
        for k in range(n):  # read the start token and y_1..y_{n-1}; y_n is fed next
            _, step_state = gen.step(prev, step_state)
            prev = tokens[r : r + 1, k]
        torch.testing.assert_close(step_state[0], state[0], rtol=0, atol=1e-6)
        want = gen.rollout(tokens[r : r + 1, n - 1], step_state, T - n, make_rng(7))
        assert torch.equal(got[0, :n], tokens[r, :n]) and torch.equal(got[0, n:], want[0])
    comp = sample_prefix_completions(gen, tokens[:1], 20000, make_rng(1))  # (T-1, N, 1, T)
    with torch.no_grad():
        probs = torch.softmax(gen(tokens[:1])[0], dim=-1)  # (T, V): teacher-forced
    for t in (1, 3):
        freq = torch.bincount(comp[t - 1, :, 0, t], minlength=gen.vocab_size).double() / 20000
        assert (freq - probs[t].double()).abs().max() < 4 * (0.25 / 20000) ** 0.5


def text_generator(seed: int = 0):
    gen = tiny_generator(seed, seq_len=8)
    text = type(gen)(dataclasses.replace(gen.config, eos_token=3, pad_token=0))
    text.load_state_dict(gen.state_dict())
    return text.eval()


def test_text_rollouts_stop_computing_finished_rows(monkeypatch):
    # a row is sampled up to its end token and no further: the rows passed to sample_step are exactly the
    # positions written (up to and including each end token), finished prefixes cost nothing
    gen, eos, pad = text_generator(), 3, 0
    tokens = torch.tensor([[5, 3, 0, 0, 0, 0, 0, 0], [5, 6, 7, 8, 9, 5, 6, 7], [6, 6, 3, 0, 0, 0, 0, 0]] * 20)
    lens = torch.tensor([3, 2, 2] * 20)  # row 0's prefix holds its end token
    h, c = gen.prefix_states(tokens)
    state = (h[torch.arange(60), lens - 1], c[torch.arange(60), lens - 1])
    stepped, step = [], type(gen).sample_step

    def counted(self, prev, *args, **kwargs):
        stepped.append(len(prev))
        return step(self, prev, *args, **kwargs)

    monkeypatch.setattr(type(gen), "sample_step", counted)
    out = rollout_completions(gen, tokens, lens, state, make_rng(2), eos_token=eos, pad_token=pad)
    written = 0
    for row, given, n in zip(out.tolist(), tokens.tolist(), lens.tolist(), strict=True):
        assert row[:n] == given[:n]
        tail = row[n:]
        if eos in row[:n]:
            assert all(x == pad for x in tail)  # finished before the rollout: untouched, padded
            continue
        end = tail.index(eos) + 1 if eos in tail else len(tail)
        assert all(x == pad for x in tail[end:]) and eos not in tail[: end - 1]
        written += end
    assert sum(stepped) == written > 0


def test_text_sampling_stops_at_the_end_token_and_keeps_the_distribution():
    # one row at a time the draws line up: sampling to the end token and stopping gives exactly the first
    # tokens of sampling every position (then padding after the end token)
    gen = text_generator(1)
    for seed in range(30):
        stopped = gen.sample(1, make_rng(seed))
        rng, prev, state, full = make_rng(seed), gen.start_tokens(1), gen.initial_state(1), []
        for _ in range(gen.seq_len):
            prev, state = gen.sample_step(prev, state, rng, bound=gen.logit_bound())
            full.append(prev)
        assert torch.equal(stopped, gen.pad_after_eos(torch.stack(full, dim=1)))
    many = gen.sample(200, make_rng(0))
    assert torch.equal(many, gen.pad_after_eos(many)) and (many == 3).any()


def test_mc_q_rejects_mismatched_models():
    gen, disc = tiny_generator(), tiny_discriminator(seq_len=5)
    with pytest.raises(ValueError, match="must agree"):
        mc_q_values(gen.sample(2, make_rng(0)), gen, disc, 2, make_rng(1))
    with pytest.raises(ValueError, match="num_rollouts"):
        sample_prefix_completions(gen, gen.sample(2, make_rng(0)), 0)


def test_ema_rollout_policy_update():
    gen = tiny_generator(0)
    ema = EMARolloutPolicy(gen, update_rate=0.8)
    before = [p.clone() for p in ema.policy.parameters()]
    target = tiny_generator(5)
    ema.update(target)
    for b, p, t in zip(before, ema.policy.parameters(), target.parameters(), strict=True):
        torch.testing.assert_close(p, 0.8 * b + 0.2 * t)
    with pytest.raises(ValueError, match="update_rate"):
        EMARolloutPolicy(gen, update_rate=1.0)
