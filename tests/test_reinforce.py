"""REINFORCE: the loss on a hand-computed example, advantages, and the direction of one update."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from env_helpers import FirstTokenD, tiny_discriminator, tiny_generator

from seqgan_rl.agents import ReinforceAgent, ReinforceConfig, RolloutBatch, compute_advantages, reinforce_loss
from seqgan_rl.envs import (
    ConstantReward,
    MaliGANReward,
    Reward,
    SeqGANReward,
    TokenGenerationVectorEnv,
    mc_q_values,
)
from seqgan_rl.utils import make_rng


def test_loss_on_a_hand_computed_example():
    log_probs = torch.log(torch.tensor([[0.5, 0.25], [0.1, 0.8]]))
    q = torch.tensor([[0.2, 0.4], [0.9, 0.1]])
    mask = torch.ones(2, 2, dtype=torch.bool)
    expected = -(math.log(0.5) * 0.2 + math.log(0.25) * 0.4 + math.log(0.1) * 0.9 + math.log(0.8) * 0.1)
    assert float(reinforce_loss(log_probs, q, mask)) == pytest.approx(expected, rel=1e-6)
    assert float(reinforce_loss(log_probs, q, mask, reduction="mean")) == pytest.approx(expected / 4, rel=1e-6)
    mask[1, 1] = False
    assert float(reinforce_loss(log_probs, q, mask)) == pytest.approx(expected + math.log(0.8) * 0.1, rel=1e-6)
    ent = torch.ones(2, 2)
    with_bonus = reinforce_loss(log_probs, q, mask, ent, entropy_coef=0.5)
    assert float(with_bonus) == pytest.approx(expected + math.log(0.8) * 0.1 - 0.5 * 3, rel=1e-6)


def test_advantages_and_baselines():
    q = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    mask = torch.ones(2, 2, dtype=torch.bool)
    assert torch.equal(compute_advantages(q, mask), q)
    assert torch.allclose(compute_advantages(q, mask, "batch_mean"), q - 3.0)
    assert torch.allclose(compute_advantages(q, mask, "position_mean"), torch.tensor([[-1.0, -2.0], [1.0, 2.0]]))
    norm = compute_advantages(q, mask, "batch_mean", normalize=True)
    assert float(norm.std()) == pytest.approx(1.0, rel=1e-5)
    with pytest.raises(ValueError, match="baseline"):
        compute_advantages(q, mask, "critic")


def test_one_update_raises_a_high_q_token_and_lowers_a_low_q_one():
    gen = tiny_generator()
    agent = ReinforceAgent(gen, ConstantReward(), ReinforceConfig(lr=0.05, batch_size=2))
    seqs = torch.tensor([[1, 2, 3, 4, 5, 6], [7, 8, 9, 0, 1, 2]])
    rewards = torch.zeros(2, 6)
    rewards[0, :] = 1.0  # high Q everywhere on sequence 0, zero on sequence 1
    batch = RolloutBatch(seqs, rewards, torch.ones_like(seqs, dtype=torch.bool))
    with torch.no_grad():
        before = gen.log_probs(seqs)
    metrics = agent.update(batch)
    with torch.no_grad():
        after = gen.log_probs(seqs)
    assert float(after[0].sum()) > float(before[0].sum())  # rewarded tokens became more likely
    # with signed advantages the un-rewarded sequence loses probability
    gen2 = tiny_generator()
    agent2 = ReinforceAgent(gen2, ConstantReward(), ReinforceConfig(lr=0.05, batch_size=2, baseline="batch_mean"))
    agent2.update(batch)
    with torch.no_grad():
        after2 = gen2.log_probs(seqs)
    assert float(after2[0].sum()) > float(before[0].sum()) and float(after2[1].sum()) < float(before[1].sum())
    assert set(metrics) == {"train/pg_loss", "train/grad_norm", "train/mean_q", "train/sample_nll"}


def test_collect_uses_the_environment_q():
    """The batch's rewards are SeqGAN's Q of its sequences, drawn from the same stream after them."""
    gen, disc = tiny_generator(), tiny_discriminator()
    agent = ReinforceAgent(gen, SeqGANReward(gen, disc, num_rollouts=3), ReinforceConfig(batch_size=5))
    batch = agent.collect(make_rng(0))
    assert batch.sequences.shape == batch.rewards.shape == (5, 6)
    assert bool(((batch.rewards > 0) & (batch.rewards < 1)).all())
    rng = make_rng(0)
    seqs = gen.sample(5, rng)
    assert torch.equal(seqs, batch.sequences)
    assert torch.equal(mc_q_values(seqs, gen, disc, 3, rng), batch.rewards)

    class Broken(Reward):
        def sequence_q(self, sequences, rng=None):
            return torch.zeros(5)

    with pytest.raises(ValueError, match="the reward must return"):
        ReinforceAgent(gen, Broken(), ReinforceConfig(batch_size=5)).collect(make_rng(0))


def test_temperature_reaches_sampling_loss_and_rollouts():
    """At temperature 0.5 the sequences, the rollouts and the loss's log-probabilities all use G / 0.5."""
    gen, disc = tiny_generator(), tiny_discriminator()
    reward = SeqGANReward(gen, disc, num_rollouts=2, temperature=0.5)
    agent = ReinforceAgent(gen, reward, ReinforceConfig(batch_size=4, temperature=0.5))
    batch = agent.collect(make_rng(0))
    rng = make_rng(0)
    seqs = gen.sample(4, rng, temperature=0.5)
    assert torch.equal(seqs, batch.sequences)
    assert torch.equal(mc_q_values(seqs, gen, disc, 2, rng, temperature=0.5), batch.rewards)
    with torch.no_grad():
        want = float(-gen.log_probs(seqs, temperature=0.5).mean())  # before the update changes G
    assert agent.update(batch)["train/sample_nll"] == pytest.approx(want, rel=1e-5)


def test_collect_from_vector_env_gives_exact_q_with_a_deterministic_d():
    gen = tiny_generator()
    agent = ReinforceAgent(gen, ConstantReward(), ReinforceConfig(batch_size=4))
    env = TokenGenerationVectorEnv(4, generator=gen, discriminator=FirstTokenD(), reward_mode="q", num_rollouts=2)
    batch = agent.collect_from_env(env, make_rng(0))
    expected = (batch.sequences[:, :1].double() + 1) / 11
    np.testing.assert_allclose(batch.rewards.numpy(), expected.expand(4, 6).numpy(), rtol=1e-6)
    env_t = TokenGenerationVectorEnv(4, generator=gen, discriminator=FirstTokenD(), reward_mode="terminal")
    with pytest.raises(ValueError, match="reward_mode='q'"):
        agent.collect_from_env(env_t)


def test_config_validation():
    with pytest.raises(ValueError, match="baseline"):
        ReinforceConfig(baseline="critic")
    with pytest.raises(ValueError, match="reduction"):
        ReinforceConfig(reduction="max")
    with pytest.raises(ValueError, match="must be > 0"):
        ReinforceConfig(lr=0)


def test_rollout_value_and_leave_one_out_baselines_by_hand():
    q = torch.tensor([[0.2, 0.5, 0.9], [0.4, 0.3, 0.1], [0.6, 0.7, 0.8]])
    mask = torch.ones(3, 3, dtype=torch.bool)
    # A_t = Q_t - Q_{t-1}; before the first token, V ~ the batch's mean Q_1 = 0.4
    want = torch.tensor([[0.2 - 0.4, 0.3, 0.4], [0.0, -0.1, -0.2], [0.2, 0.1, 0.1]])
    torch.testing.assert_close(compute_advantages(q, mask, "rollout_value"), want)
    # RLOO: minus the mean of the same position over the two other sequences
    want = torch.tensor(
        [[0.2 - 0.5, 0.5 - 0.5, 0.9 - 0.45], [0.4 - 0.4, 0.3 - 0.6, 0.1 - 0.85], [0.6 - 0.3, 0.7 - 0.4, 0.8 - 0.5]]
    )
    torch.testing.assert_close(compute_advantages(q, mask, "rloo"), want)
    assert float(compute_advantages(q, mask, "rloo").sum()) != pytest.approx(0.0)  # unlike the plain mean
    mask[1, 2] = False  # a sequence ended before the last position: left out of the others' baseline there
    loo = compute_advantages(q, mask, "rloo")
    assert loo[0, 2] == pytest.approx(0.9 - 0.8) and loo[1, 2] == 0.0
    assert compute_advantages(q, mask, "rollout_value")[1, 2] == 0.0


@pytest.mark.parametrize("baseline", ["rollout_value", "rloo"])
def test_new_baselines_push_the_better_sequence_up_and_the_worse_down(baseline):
    gen = tiny_generator()
    seqs = torch.tensor([[1, 2, 3, 4, 5, 6], [7, 8, 9, 0, 1, 2]])
    rewards = torch.tensor([[0.5, 0.6, 0.7, 0.8, 0.9, 0.95], [0.5, 0.4, 0.3, 0.2, 0.1, 0.05]])
    batch = RolloutBatch(seqs, rewards, torch.ones_like(seqs, dtype=torch.bool))
    with torch.no_grad():
        before = gen.log_probs(seqs)
    ReinforceAgent(gen, ConstantReward(), ReinforceConfig(lr=0.05, batch_size=2, baseline=baseline)).update(batch)
    with torch.no_grad():
        after = gen.log_probs(seqs)
    assert float(after[0].sum()) > float(before[0].sum()) and float(after[1].sum()) < float(before[1].sum())


def test_kl_regularised_returns_by_hand_and_the_pull_towards_the_mle_policy():
    from seqgan_rl.agents.reinforce import KLReinforceAgent
    from seqgan_rl.config import KLReinforceConfig

    gen = tiny_generator()
    agent = KLReinforceAgent(gen, ConstantReward(), KLReinforceConfig(batch_size=2, kl_coef=0.5))
    seqs = torch.tensor([[1, 2, 3, 4, 5, 6], [7, 8, 9, 0, 1, 2]])
    q = torch.full((2, 6), 0.5)
    batch = RolloutBatch(seqs, q, torch.ones_like(seqs, dtype=torch.bool))
    log_probs = gen.log_probs(seqs).detach()
    returns, extra = agent.returns(batch, log_probs)
    torch.testing.assert_close(returns, q, rtol=0, atol=1e-6)  # pi == pi_MLE at the start: no penalty
    assert extra["train/kl"] == pytest.approx(0.0, abs=1e-6)
    shifted = log_probs + torch.tensor([[0.1, 0.2, 0.0, 0.0, 0.0, 0.3], [0.0] * 6])  # pi above pi_MLE on row 0
    returns, extra = agent.returns(batch, shifted)
    to_go = torch.tensor([[0.6, 0.5, 0.3, 0.3, 0.3, 0.3], [0.0] * 6])  # sum_{s >= t} of the log-ratios
    torch.testing.assert_close(returns, q - 0.5 * to_go, rtol=0, atol=1e-5)
    assert extra["train/kl"] == pytest.approx(0.6 / 12, abs=1e-6)
    # a reward that only ever favours sequence 0 moves the plain agent further from pi_MLE than the KL agent
    rewards = torch.zeros(2, 6)
    rewards[0] = 1.0
    batch = RolloutBatch(seqs, rewards, torch.ones_like(seqs, dtype=torch.bool))
    plain_g, kl_g = tiny_generator(), tiny_generator()
    plain = ReinforceAgent(plain_g, ConstantReward(), ReinforceConfig(lr=0.05, batch_size=2))
    kl = KLReinforceAgent(kl_g, ConstantReward(), KLReinforceConfig(lr=0.05, batch_size=2, kl_coef=2.0))
    for _ in range(5):
        plain.update(batch)
        metrics = kl.update(batch)
    with torch.no_grad():
        ref = tiny_generator().log_probs(seqs)
        drift = [float((g.log_probs(seqs) - ref).abs().sum()) for g in (plain_g, kl_g)]
    assert drift[1] < drift[0] and "train/kl" in metrics  # (on fixed sequences the log-ratio has either sign)
    state = kl.state_dict()  # the reference travels with checkpoints
    again = KLReinforceAgent(tiny_generator(seed=5), ConstantReward(), KLReinforceConfig(batch_size=2))
    again.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(again.reference.state_dict().values(), ref_state(), strict=True))


def ref_state():
    return tiny_generator().state_dict().values()


def test_grpo_advantages_and_loss_by_hand():
    from seqgan_rl.agents.reinforce import group_advantages, grpo_loss

    q = torch.tensor([[1.0, 0.0], [3.0, 0.0], [2.0, 5.0], [2.0, 1.0]])  # two groups of 2, T = 2
    mask = torch.tensor([[True, True], [True, False], [True, True], [True, True]])
    adv = group_advantages(q, mask, group_size=2)
    s = math.sqrt(2.0)  # the unbiased std of {1, 3}; group 2 position 0 has std 0; a lone valid entry, 0
    expected = torch.tensor(
        [[-1 / s, 0.0], [1 / s, 0.0], [0.0, 4 / (2 * math.sqrt(8.0))], [0.0, -4 / (2 * math.sqrt(8.0))]]
    )
    torch.testing.assert_close(adv, expected, rtol=0, atol=1e-6)
    logp = torch.log(torch.tensor([[0.5, 0.5], [0.3, 0.2]]))
    old = torch.log(torch.tensor([[0.25, 0.5], [0.3, 0.2]]))  # ratio 2 at (0, 0): clipped to 1.2 for A > 0
    ref = torch.log(torch.tensor([[0.5, 0.25], [0.3, 0.2]]))
    a = torch.tensor([[1.0, -1.0], [0.5, 0.0]])
    m = torch.ones(2, 2, dtype=torch.bool)
    loss, kl, clipped = grpo_loss(logp, old, ref, a, m, clip_eps=0.2, kl_coef=0.1)
    kl_01 = 0.5 - math.log(0.5) - 1  # exp(q) - q - 1 with q = log(0.25 / 0.5)
    surrogate = 1.2 * 1.0 + 1.0 * -1.0 + 1.0 * 0.5 + 0.0
    assert float(loss) == pytest.approx(-(surrogate - 0.1 * kl_01) / 4, abs=1e-6)
    assert float(kl) == pytest.approx(kl_01, abs=1e-6) and float(clipped) == 1.0


def test_grpo_raises_the_tokens_its_group_rewards_and_keeps_the_reference_in_checkpoints():
    from seqgan_rl.agents.reinforce import GRPOAgent
    from seqgan_rl.config import GRPOConfig

    class TokenOneReward(Reward):  # Q_t = 1 where the token is 1: the better sequences of a group hold more 1s
        def sequence_q(self, sequences, rng=None):
            return (sequences == 1).float()

    gen = tiny_generator(vocab_size=2)
    agent = GRPOAgent(gen, TokenOneReward(), GRPOConfig(batch_size=32, group_size=8, lr=0.02, epochs=2))
    ones = torch.ones(1, gen.seq_len, dtype=torch.long)
    with torch.no_grad():
        before = float(gen.log_probs(ones).sum())
    rng = make_rng(0)
    for _ in range(10):
        metrics = agent.update(agent.collect(rng))
    with torch.no_grad():
        after = float(gen.log_probs(ones).sum())
    assert after > before  # the all-ones sequence became more likely
    assert set(metrics) == {*ReinforceAgent.metric_fields, "train/kl", "train/clip_frac"} and metrics["train/kl"] > 0
    again = GRPOAgent(tiny_generator(vocab_size=2, seed=5), TokenOneReward(), GRPOConfig(batch_size=32))
    again.load_state_dict(agent.state_dict())
    start = tiny_generator(vocab_size=2).state_dict()
    assert all(torch.equal(a, start[k]) for k, a in again.reference.state_dict().items())
    with pytest.raises(ValueError, match="divide batch_size"):
        GRPOConfig(batch_size=10, group_size=4)


def test_coldgan_samples_cold_weights_by_hand_and_raises_the_rewarded_token():
    from seqgan_rl.agents.reinforce import ColdGANAgent
    from seqgan_rl.config import ColdGANConfig

    gen = tiny_generator()
    agent = ColdGANAgent(gen, ConstantReward(0.5), ColdGANConfig(batch_size=4, cold_temperature=0.5, weight_clip=1.5))
    batch = agent.collect(make_rng(3))
    torch.testing.assert_close(batch.sequences, gen.sample(4, make_rng(3), temperature=0.5), rtol=0, atol=0)
    assert agent.temperature == 1.0  # the loop's rollouts, D's negatives and evaluation use the policy itself
    with torch.no_grad():
        logp, cold = gen.log_probs(batch.sequences), gen.log_probs(batch.sequences, temperature=0.5)
    returns, extra = agent.returns(batch, logp)
    weights = torch.minimum((logp - cold).exp(), torch.tensor(1.5))  # truncated pi / pi_cold
    torch.testing.assert_close(returns, 0.5 * weights, rtol=0, atol=1e-6)
    assert extra["train/weight_mean"] == pytest.approx(float(weights.mean()), abs=1e-6)
    assert extra["train/weight_clipped"] == pytest.approx(float(((logp - cold).exp() > 1.5).float().mean()))
    assert (weights <= 1.5).all() and (weights < 1).any()  # cold samples are over-represented: weights below 1

    class SignedTokenOne(Reward):  # +1 for token 1, -1 for token 0
        def sequence_q(self, sequences, rng=None):
            return (sequences == 1).float() * 2 - 1

    g2 = tiny_generator(vocab_size=2)
    ones = torch.ones(1, g2.seq_len, dtype=torch.long)
    with torch.no_grad():
        before = float(g2.log_probs(ones).sum())
    agent = ColdGANAgent(g2, SignedTokenOne(), ColdGANConfig(batch_size=16, lr=0.02, cold_temperature=0.7))
    rng = make_rng(0)
    for _ in range(10):
        metrics = agent.update(agent.collect(rng))
    with torch.no_grad():
        assert float(g2.log_probs(ones).sum()) > before
    assert {"train/weight_mean", "train/weight_clipped"} <= set(metrics)
    with pytest.raises(ValueError, match="weight_clip"):
        ColdGANConfig(weight_clip=0)
    with pytest.raises(ValueError, match="vector env"):
        agent.collect_from_env(None)


# ---------------------------------------------------------------------------------------------- MaliGAN
class TableD:
    """A 'discriminator' with given D(y) per first token."""

    def __init__(self, probs):
        self.probs, self.device = torch.tensor(probs), torch.device("cpu")

    def prob_real(self, tokens):
        return self.probs[tokens[:, 0]]


def test_maligan_rewards_by_hand_both_variants():
    seqs = torch.tensor([[0, 1, 1], [1, 0, 0], [2, 2, 2], [0, 2, 1]])  # D = 0.5, 0.8, 0.2, 0.5
    d = TableD([0.5, 0.8, 0.2])
    odds = torch.tensor([1.0, 4.0, 0.25, 1.0])  # D / (1 - D)
    for variant, w in (("odds", odds), ("d", torch.tensor([0.5, 0.8, 0.2, 0.5]))):
        reward = MaliGANReward(d, variant)
        weights = reward.weights(seqs)
        torch.testing.assert_close(weights, (w / w.sum()).double())
        assert float(weights.sum()) == pytest.approx(1.0, abs=1e-12)  # the weights sum to 1
        q = reward.sequence_q(seqs)
        assert q.shape == seqs.shape and torch.equal(q, q[:, :1].expand_as(q))  # one reward per sequence
        torch.testing.assert_close(q[:, 0], (w / w.sum() - 0.25).float())  # r_i = w_i / sum w - 1/B
        assert float(q[:, 0].sum()) == pytest.approx(0.0, abs=1e-6)  # the rewards sum to 0
    # D at float32's 1: a finite weight that dominates the batch
    assert float(MaliGANReward(TableD([1.0, 0.5, 0.5])).weights(seqs[:3])[0]) > 0.999
    with pytest.raises(ValueError, match="MaliGAN variant"):
        MaliGANReward(d, "logit")


def test_maligan_raises_the_sequences_d_prefers():
    # D prefers sequences starting with token 0 (D 0.9 against 0.1): REINFORCE on MaliGAN's reward makes the
    # first token 0 more likely
    gen = tiny_generator()
    d = TableD([0.9] + [0.1] * 9)
    agent = ReinforceAgent(gen, MaliGANReward(d), ReinforceConfig(lr=0.05, batch_size=64))
    first = gen.start_tokens(1)
    with torch.no_grad():
        before = torch.softmax(gen.step(first, gen.initial_state(1))[0], -1)[0, 0]
    rng = make_rng(0)
    for _ in range(5):
        agent.update(agent.collect(rng))
    with torch.no_grad():
        after = torch.softmax(gen.step(first, gen.initial_state(1))[0], -1)[0, 0]
    assert float(after) > float(before) + 0.05


# ---------------------------------------------------------------------------------------------- RankGAN
def _ranker(gamma=2.0, k=3, u=2):
    from seqgan_rl.models import Ranker

    d = tiny_discriminator()
    real = torch.randint(0, d.vocab_size, (10, d.seq_len), generator=make_rng(4))
    return Ranker.from_discriminator(d, real, make_rng(5), num_references=u, comparison_size=k, gamma=gamma).eval()


def test_ranker_rank_scores_and_reward_by_hand():
    r = _ranker()
    alpha = torch.tensor([[0.5, -0.5]])  # one sequence, two references
    alpha_set = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # the comparison set's similarities
    e1, e2 = math.exp(1.0), math.exp(-1.0)  # exp(gamma alpha), gamma 2
    z1, z2 = 1 + math.exp(2) + 1, 1 + 1 + math.exp(2)
    expected = (e1 / (e1 + z1) + e2 / (e2 + z2)) / 2  # the mean over references of the softmax share
    assert float(r.rank_scores(alpha, alpha_set)) == pytest.approx(expected, rel=1e-6)
    # the reward of a hand-made batch: (K + 1) R(s | U, C+) from the ranker's own features
    seqs = torch.randint(0, r.vocab_size, (4, r.seq_len), generator=make_rng(6))
    with torch.no_grad():
        f, fu, fc = r.features(seqs), r.features(r.references), r.features(r.comparison)
        by_hand = 4 * r.rank_scores(f @ fu.T, fc @ fu.T)
    torch.testing.assert_close(r.prob_real(seqs), by_hand, rtol=1e-5, atol=1e-6)
    assert (r.prob_real(r.comparison[:1]) > 0).all()
    # the rollouts' fast path gives the same scores
    completions = seqs.expand(r.seq_len - 1, 2, 4, r.seq_len).clone()
    comp, full = r.prob_real_rollouts(seqs, completions)
    torch.testing.assert_close(full, by_hand, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(comp[3, 1], by_hand, rtol=1e-5, atol=1e-6)


def test_ranker_loss_by_hand_and_training_ranks_human_first():
    r = _ranker(gamma=1.0)
    human = torch.ones(3, r.seq_len, dtype=torch.long)
    fake = torch.zeros(2, r.seq_len, dtype=torch.long)
    tokens, labels = torch.cat([human, fake]), torch.tensor([1, 1, 1, 0, 0])
    loss, acc = r.train_loss(tokens, labels)
    with torch.no_grad():
        a = r.features(tokens) @ r.features(r.references).T
        e = a.exp()
        r_h = (e[:3] / (e[:3] + e[3:].sum(0))).mean(1)  # human ranked against the generated ones
        r_g = (e[3:] / (e[3:] + e[:3].sum(0))).mean(1)
        expected = -r_h.log().mean() - (1 - r_g).log().mean()
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-5) and 0 <= float(acc) <= 1
    # the reference set is human data like `human`: training puts human sequences above generated ones
    r.references.copy_(torch.ones_like(r.references))
    r.references[:, 0] = 2
    opt = torch.optim.Adam(r.parameters(), lr=0.01)
    r.train()
    for _ in range(30):
        loss, acc = r.train_loss(tokens, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    r.eval()
    assert float(acc) == 1.0 and float(r.prob_real(human).min()) > float(r.prob_real(fake).max())
    with pytest.raises(ValueError, match="gamma"):
        type(r)(r.config, r.references, r.comparison, gamma=0)
