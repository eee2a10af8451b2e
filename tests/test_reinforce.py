"""REINFORCE: the loss on a hand-computed example, advantages, and the direction of one update."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from env_helpers import FirstTokenD, tiny_discriminator, tiny_generator

from seqgan_rl.agents import ReinforceAgent, ReinforceConfig, RolloutBatch, compute_advantages, reinforce_loss
from seqgan_rl.envs import ConstantReward, Reward, SeqGANReward, TokenGenerationVectorEnv, mc_q_values
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
