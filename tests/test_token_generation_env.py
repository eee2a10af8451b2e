"""TokenGenerationEnv and MCRolloutReward: compliance, rewards, determinism, bad input."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from env_helpers import FirstTokenD, T, V, tiny_discriminator, tiny_generator
from gymnasium.error import ResetNeeded
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import seqgan_rl  # noqa: F401  (registers the environment)
from seqgan_rl.envs import ENV_ID, MCRolloutReward, TokenGenerationEnv, TokenGenerationVectorEnv

# gymnasium's checker always recommends checking `env.unwrapped` when a wrapper is present; for the
# reward wrapper that is the point of the check, so this one advisory is expected, and nothing else.
WRAPPER_ADVISORY = "is different from the unwrapped version"


def make(reward_mode="q", **kwargs):
    kwargs.setdefault("generator", tiny_generator())
    kwargs.setdefault("discriminator", tiny_discriminator())
    return gym.make(ENV_ID, reward_mode=reward_mode, num_rollouts=kwargs.pop("num_rollouts", 4), **kwargs)


def play(env, actions, seed=0):
    obs, _ = env.reset(seed=seed)
    out = [(obs, None, None)]
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        assert trunc is False
        out.append((obs, r, term))
    return out


@pytest.mark.parametrize("reward_mode", ["terminal", "q", "shaped"])
def test_env_checkers_pass_without_warnings(reward_mode):
    env = make(reward_mode)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check_env(env.unwrapped)
        gym_check_env(env)
        sb3_check_env(env)
        sb3_check_env(env.unwrapped)
    messages = [str(w.message) for w in caught if WRAPPER_ADVISORY not in str(w.message)]
    assert messages == []


def test_make_returns_the_right_layers():
    assert isinstance(make("terminal").unwrapped, TokenGenerationEnv)
    env = make("q")
    assert isinstance(env.unwrapped, TokenGenerationEnv)
    wrapper = env
    while not isinstance(wrapper, MCRolloutReward):
        wrapper = wrapper.env
    assert wrapper.reward_mode == "q" and wrapper.num_rollouts == 4
    venv = gym.make_vec(ENV_ID, num_envs=3, generator=tiny_generator(), discriminator=tiny_discriminator())
    assert isinstance(venv, TokenGenerationVectorEnv) and venv.num_envs == 3


def test_spaces_and_episode():
    env = make("terminal")
    assert env.action_space == gym.spaces.Discrete(V)
    assert env.observation_space.shape == (T,) and env.observation_space.dtype == np.int64
    assert int(env.observation_space.high[0]) == V  # pad = V: every id 0..V-1 is a word
    steps = play(env, [3, 1, 4, 1, 5, 9])
    assert (steps[0][0] == V).all()
    assert steps[2][0].tolist() == [3, 1, V, V, V, V]
    assert [s[2] for s in steps[1:]] == [False] * 5 + [True]
    assert [s[1] for s in steps[1:-1]] == [0.0] * 5
    d_y = float(env.unwrapped.discriminator.prob_real(torch.tensor([[3, 1, 4, 1, 5, 9]]))[0])
    assert steps[-1][1] == pytest.approx(d_y)


@pytest.mark.parametrize("reward_mode", ["q", "shaped", "terminal"])
def test_no_silent_zero_rewards_without_a_discriminator(reward_mode):
    """The env builds without D (spec checks, D set later) but no step returns a reward D did not give."""
    env = gym.make(ENV_ID, reward_mode=reward_mode, generator=tiny_generator())
    env.reset(seed=0)
    with pytest.raises(RuntimeError, match="no discriminator set.*set_discriminator"):
        for _ in range(T):  # q/shaped: the first step; terminal: the last
            env.step(1)
    before = env.unwrapped.length
    env.unwrapped.set_discriminator(tiny_discriminator())
    assert env.step(1)[0].tolist().count(1) == before + 1  # the refused step changed nothing: it goes on
    env.reset(seed=0)
    rewards = [env.step(1)[1] for _ in range(T)]
    assert 0 < rewards[-1] < 1
    venv = TokenGenerationVectorEnv(2, generator=tiny_generator(), reward_mode=reward_mode)
    venv.reset(seed=0)
    with pytest.raises(RuntimeError, match="no discriminator set"):
        venv.step(np.array([1, 1]))


@pytest.mark.parametrize("reward_mode", ["q", "shaped", "terminal"])
def test_same_seed_same_observations_and_rewards(reward_mode):
    actions = [2, 7, 1, 8, 2, 8] * 2
    runs = []
    for _ in range(2):
        env = make(reward_mode)
        obs, _ = env.reset(seed=123)
        rec = [obs.tolist()]
        for i, a in enumerate(actions):
            obs, r, term, _, _ = env.step(a)
            rec.append((obs.tolist(), r))
            if term and i < len(actions) - 1:
                obs, _ = env.reset()
                rec.append(obs.tolist())
        runs.append(rec)
    assert runs[0] == runs[1]
    if reward_mode != "terminal":  # another seed gives other rollouts, hence other Q estimates
        env = make(reward_mode)
        other = [s[1] for s in play(env, actions[:T], seed=124)[1:-1]]
        assert other != [r for _, r in runs[0][1:T]]


def test_q_and_shaped_rewards_follow_their_definitions():
    actions = [4, 2, 0, 9, 3, 3]
    q_steps = play(make("q"), actions, seed=5)
    s_steps = play(make("shaped"), actions, seed=5)
    q = [s[1] for s in q_steps[1:]]
    shaped = [s[1] for s in s_steps[1:]]
    assert all(0 < x < 1 for x in q)
    d_y = float(tiny_discriminator().prob_real(torch.tensor([actions]))[0])
    assert q[-1] == pytest.approx(d_y)  # at the last position Q is D(Y)
    torch.testing.assert_close(torch.tensor(shaped), torch.tensor(q) - torch.tensor([0.0, *q[:-1]]))
    assert sum(shaped) == pytest.approx(d_y)  # telescopes to D(Y) (Q_0 = 0)


def test_q_with_a_deterministic_discriminator_is_exact():
    env = make("q", discriminator=FirstTokenD())
    rewards = [s[1] for s in play(env, [7, 1, 2, 3, 4, 5])[1:]]
    assert rewards == pytest.approx([8 / 11] * T)


@pytest.mark.parametrize("num_layers", [1, 2])
def test_cached_prefix_state_follows_generator_updates(num_layers):
    gen = tiny_generator(num_layers=num_layers)
    env = make("q", generator=gen)
    env.reset(seed=0)
    env.step(3)
    env.step(5)
    with torch.no_grad():
        for p in gen.parameters():
            p.add_(0.3)
    wrapper = env
    while not isinstance(wrapper, MCRolloutReward):
        wrapper = wrapper.env
    h, c = wrapper._prefix_state(2)
    h_ref, _ = gen.prefix_states(torch.tensor([[3, 5, 0]]))
    torch.testing.assert_close(h, h_ref[:, 2])


def test_set_discriminator_later_is_used():
    env = make("terminal", discriminator=None)
    with pytest.raises(RuntimeError, match="no discriminator"):
        play(env, [1] * T)
    env.unwrapped.set_discriminator(FirstTokenD())
    assert play(env, [1] * T)[-1][1] == pytest.approx(2 / 11)


def test_eos_terminates_and_render_shows_words():
    words = [f"w{i}" for i in range(V)]
    env = TokenGenerationEnv(
        generator=tiny_generator(),
        discriminator=tiny_discriminator(),
        eos_token=2,
        pad_token=0,
        vocab=words,
        render_mode="ansi",
    )
    env.reset(seed=0)
    _, _, term, _, _ = env.step(5)
    assert not term
    obs, r, term, _, info = env.step(2)
    assert term and obs.tolist() == [5, 2, 0, 0, 0, 0] and 0 < r < 1 and info["d_terminal"] == r
    assert env.render() == "[2/6] w5 w2"
    wrapped = MCRolloutReward(
        TokenGenerationEnv(generator=tiny_generator(), discriminator=tiny_discriminator(), eos_token=2, pad_token=0),
        num_rollouts=3,
    )
    wrapped.reset(seed=0)
    assert not wrapped.step(5)[2] and wrapped.step(2)[2]


@pytest.mark.parametrize(
    ("action", "error", "match"),
    [
        (V, ValueError, "not a token id"),
        (-1, ValueError, "not a token id"),
        (1.0, TypeError, "integer token id"),
        (True, TypeError, "integer token id"),
        ("3", TypeError, "integer token id"),
        (np.array([1, 2]), ValueError, "single token id"),
        (np.array(1.5), TypeError, "integer token id"),
    ],
)
def test_bad_actions_raise_clear_errors(action, error, match):
    env = TokenGenerationEnv(generator=tiny_generator(), discriminator=tiny_discriminator())
    env.reset(seed=0)
    with pytest.raises(error, match=match):
        env.step(action)
    assert env.length == 0  # nothing was written
    env.step(np.int64(3))
    env.step(np.array(4))
    env.step(torch.tensor([5]))
    assert env.sequence[:3].tolist() == [3, 4, 5]


def test_step_before_reset_and_after_termination():
    env = TokenGenerationEnv(generator=tiny_generator(), discriminator=tiny_discriminator())
    with pytest.raises(ResetNeeded, match="reset"):
        env.step(1)
    play(env, [1] * T)
    with pytest.raises(ResetNeeded, match="reset"):
        env.step(1)
    wrapped = MCRolloutReward(TokenGenerationEnv(generator=tiny_generator(), discriminator=tiny_discriminator()))
    with pytest.raises(ResetNeeded):
        wrapped.step(1)


def test_mismatched_models_and_settings_raise_clear_errors():
    with pytest.raises(ValueError, match="discriminator has vocab_size=12"):
        TokenGenerationEnv(vocab_size=V, seq_len=T, discriminator=tiny_discriminator(vocab_size=12))
    with pytest.raises(ValueError, match="length 5"):
        TokenGenerationEnv(vocab_size=V, seq_len=T, discriminator=tiny_discriminator(seq_len=5))
    with pytest.raises(ValueError, match="generator has vocab_size=12"):
        TokenGenerationEnv(vocab_size=V, seq_len=T, generator=tiny_generator(vocab_size=12))
    env = TokenGenerationEnv(vocab_size=V, seq_len=T)
    with pytest.raises(ValueError, match="vocab_size=12"):
        env.set_discriminator(tiny_discriminator(vocab_size=12))
    with pytest.raises(TypeError, match="prob_real"):
        env.set_discriminator(tiny_generator())
    with pytest.raises(ValueError, match="reward_mode"):
        gym.make(ENV_ID, reward_mode="dense")
    with pytest.raises(ValueError, match="pad_token must be a vocabulary id"):
        TokenGenerationEnv(vocab_size=V, seq_len=T, eos_token=1)
    with pytest.raises(ValueError, match="render_mode"):
        TokenGenerationEnv(vocab_size=V, seq_len=T, render_mode="human")
    with pytest.raises(ValueError, match="num_rollouts"):
        MCRolloutReward(TokenGenerationEnv(vocab_size=V, seq_len=T), num_rollouts=0)
    env = MCRolloutReward(TokenGenerationEnv(vocab_size=V, seq_len=T, discriminator=tiny_discriminator()))
    env.reset(seed=0)
    with pytest.raises(RuntimeError, match="needs a generator"):
        env.step(1)
