"""The natively batched vector env: Gymnasium 1.x autoreset, equality with SyncVectorEnv, errors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from env_helpers import FirstTokenD, T, V, tiny_discriminator, tiny_generator
from gymnasium.error import ResetNeeded
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from seqgan_rl.envs import TokenGenerationVectorEnv, make_token_generation_env

MODES = list(AutoresetMode)


def run_both(reward_mode, discriminator, num_envs=3, steps=3 * T + 2, seed=11, eos=None, mode=AutoresetMode.NEXT_STEP):
    """Step the native vector env and SyncVectorEnv over single envs side by side in autoreset ``mode``:
    observations, rewards, terminations, truncations and the infos must agree (DISABLED: the driver resets
    finished sub-envs with a mask, as TorchRL does)."""
    gen = tiny_generator()
    kwargs = {"generator": gen, "discriminator": discriminator, "eos_token": eos}
    if eos is not None:
        kwargs["pad_token"] = 0
    native = TokenGenerationVectorEnv(num_envs, reward_mode=reward_mode, num_rollouts=4, autoreset_mode=mode, **kwargs)
    sync = SyncVectorEnv(
        [lambda: make_token_generation_env(reward_mode=reward_mode, num_rollouts=4, **kwargs)] * num_envs,
        autoreset_mode=mode,
    )
    assert native.autoreset_mode == sync.autoreset_mode == native.metadata["autoreset_mode"] == mode
    rng = np.random.default_rng(seed)
    o1, _ = native.reset(seed=seed)
    o2, _ = sync.reset(seed=seed)
    np.testing.assert_array_equal(o1, o2)
    ended = 0
    for _ in range(steps):
        a = rng.integers(0, V, size=num_envs)
        s1, s2 = native.step(a), sync.step(a)
        for x, y in zip(s1[:4], s2[:4], strict=True):  # obs, reward, terminated, truncated
            np.testing.assert_allclose(x, y, rtol=0, atol=1e-6)
        i1, i2 = s1[4], s2[4]
        if mode == AutoresetMode.SAME_STEP and s2[2].any():
            ended += 1
            np.testing.assert_array_equal(i1["_final_obs"], i2["_final_obs"])
            for i in np.flatnonzero(i2["_final_obs"]):
                np.testing.assert_array_equal(i1["final_obs"][i], i2["final_obs"][i])
            f1, f2 = i1["final_info"], i2["final_info"]
            for key in [k for k in ("length", "q") if k in f2]:  # a bare env (terminal mode) has no q
                np.testing.assert_array_equal(f1["_" + key], f2["_" + key])
                np.testing.assert_allclose(f1[key][f1["_" + key]], f2[key][f2["_" + key]], atol=1e-6)
        for key in [k for k in ("length", "q") if reward_mode != "terminal" or k != "q"]:
            mask = i2.get("_" + key, np.zeros(num_envs, dtype=bool))
            np.testing.assert_array_equal(i1["_" + key], mask)
            if mask.any():
                np.testing.assert_allclose(i1[key][mask], i2[key][mask], atol=1e-6)
        if mode == AutoresetMode.DISABLED and s2[2].any():
            ended += 1
            mask = s2[2].copy()
            o1, _ = native.reset(options={"reset_mask": mask})
            o2, _ = sync.reset(options={"reset_mask": mask})
            np.testing.assert_array_equal(o1, o2)
    assert mode == AutoresetMode.NEXT_STEP or ended > 0
    return native


def test_declares_next_step_autoreset_by_default():
    assert TokenGenerationVectorEnv.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert TokenGenerationVectorEnv(2, vocab_size=V, seq_len=T).autoreset_mode == AutoresetMode.NEXT_STEP
    with pytest.raises(ValueError, match="autoreset_mode='later'"):
        TokenGenerationVectorEnv(2, vocab_size=V, seq_len=T, autoreset_mode="later")


@pytest.mark.parametrize("mode", MODES)
def test_matches_sync_vector_env_terminal_reward(mode):
    run_both("terminal", tiny_discriminator(), mode=mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("reward_mode", ["q", "shaped"])
def test_matches_sync_vector_env_with_deterministic_q(reward_mode, mode):
    run_both(reward_mode, FirstTokenD(), mode=mode)


@pytest.mark.parametrize("mode", MODES)
def test_matches_sync_vector_env_with_eos(mode):
    run_both("terminal", tiny_discriminator(), eos=2, steps=4 * T, mode=mode)


def test_disabled_mode_refuses_to_step_a_finished_sub_env():
    env = TokenGenerationVectorEnv(
        2, generator=tiny_generator(), discriminator=FirstTokenD(), autoreset_mode="Disabled"
    )
    env.reset(seed=0)
    for _ in range(T):
        env.step(np.array([1, 2]))
    with pytest.raises(ResetNeeded, match=r"sub-envs \[0, 1\] have ended.*reset_mask"):
        env.step(np.array([1, 2]))
    obs, _ = env.reset(options={"reset_mask": np.array([True, False])})
    assert (obs[0] == V).all() and (obs[1] != V).all()
    with pytest.raises(ResetNeeded, match=r"sub-envs \[1\]"):
        env.step(np.array([1, 2]))


def test_episode_and_autoreset_step():
    env = TokenGenerationVectorEnv(2, generator=tiny_generator(), discriminator=tiny_discriminator(), num_rollouts=3)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2, T) and (obs == V).all()
    for t in range(T):
        obs, r, term, trunc, info = env.step(np.array([1, 2]))
        assert ((r > 0) & (r < 1)).all() and not trunc.any()
        assert term.all() == (t == T - 1)
        assert info["q"] == pytest.approx(r) and info["_q"].all()
    obs, r, term, _, info = env.step(np.array([3, 3]))  # the autoreset step ignores the actions
    assert (obs == V).all() and (r == 0).all() and not term.any() and not info["_q"].any()


def test_same_seed_same_rewards_and_rollouts_are_random():
    def rewards(seed):
        env = TokenGenerationVectorEnv(4, generator=tiny_generator(), discriminator=tiny_discriminator())
        env.reset(seed=seed)
        return np.stack([env.step(np.arange(4))[1] for _ in range(T)])

    np.testing.assert_array_equal(rewards(3), rewards(3))
    assert not np.array_equal(rewards(3)[:-1], rewards(4)[:-1])


def test_q_matches_single_env_in_distribution():
    """Batched MC estimates agree with the single env's wrapper up to Monte-Carlo noise."""
    gen, disc = tiny_generator(), tiny_discriminator()
    actions = [4, 1, 7, 0, 2, 5]
    venv = TokenGenerationVectorEnv(1, generator=gen, discriminator=disc, num_rollouts=4000)
    venv.reset(seed=0)
    single = make_token_generation_env(reward_mode="q", num_rollouts=4000, generator=gen, discriminator=disc)
    single.reset(seed=1)
    for a in actions:
        r1 = venv.step(np.array([a]))[1][0]
        r2 = single.step(a)[1]
        assert r1 == pytest.approx(r2, abs=0.02)


def test_cache_follows_generator_updates():
    gen = tiny_generator()
    env = TokenGenerationVectorEnv(2, generator=gen, discriminator=tiny_discriminator(), num_rollouts=2)
    env.reset(seed=0)
    env.step(np.array([3, 4]))
    env.step(np.array([5, 6]))
    with torch.no_grad():
        for p in gen.parameters():
            p.mul_(1.5)
    h, _ = env._prefix_states()
    h_ref, _ = gen.prefix_states(torch.tensor([[3, 5, 0], [4, 6, 0]]))
    torch.testing.assert_close(h, h_ref[:, 2])


@pytest.mark.parametrize("num_layers", [1, 2])
def test_rollouts_continue_from_the_state_of_the_prefix(monkeypatch, num_layers):
    """Every rollout starts from the LSTM state having read the start token and y_1..y_{t-1} (y_t is fed
    next): at the first step, after the generator changed mid-episode, and after an autoreset. (A cache
    rebuilt after the step's token was appended once read y_t twice.)"""
    import seqgan_rl.envs.rollout as rollout

    gen = tiny_generator(num_layers=num_layers)
    seen = []
    real = rollout.rollout_completions

    def spy(policy, tokens, prefix_len, state, *args, **kwargs):
        seen.append((tokens.clone(), prefix_len.clone(), state[0].clone()))
        return real(policy, tokens, prefix_len, state, *args, **kwargs)

    monkeypatch.setattr(rollout, "rollout_completions", spy)
    env = TokenGenerationVectorEnv(2, generator=gen, discriminator=tiny_discriminator(), num_rollouts=2)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for step in range(2 * T + 1):
        if step in (2, T + 3):
            with torch.no_grad():
                gen.output.weight.mul_(1.1)
                gen.lstm.weight_hh_l0.mul_(0.9)
        env.step(rng.integers(0, V, size=2))
        if seen:
            tokens, prefix_len, h = seen.pop()
            h_all, _ = gen.prefix_states(tokens.clamp(max=V - 1))  # (R, T, H); index k: read start, y_1..y_k
            want = h_all[torch.arange(len(prefix_len)), prefix_len - 1]
            torch.testing.assert_close(h, want, rtol=0, atol=1e-6, msg=f"step {step}")


def test_partial_reset_with_mask():
    env = TokenGenerationVectorEnv(2, generator=tiny_generator(), discriminator=tiny_discriminator(), num_rollouts=2)
    env.reset(seed=0)
    env.step(np.array([3, 4]))
    obs, _ = env.reset(options={"reset_mask": np.array([True, False])})
    assert (obs[0] == V).all() and obs[1].tolist() == [4] + [V] * (T - 1)


def test_bad_input_raises_clear_errors():
    env = TokenGenerationVectorEnv(2, generator=tiny_generator(), discriminator=tiny_discriminator())
    with pytest.raises(ResetNeeded):
        env.step(np.array([1, 1]))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.array([1, 1, 1]))
    with pytest.raises(ValueError, match="sub-env 1"):
        env.step(np.array([1, V]))
    with pytest.raises(TypeError, match="integer"):
        env.step(np.array([1.0, 2.0]))
    obs, *_ = env.step(np.array([1, 2]))  # nothing was lost by the bad calls
    assert obs[:, 0].tolist() == [1, 2] and (obs[:, 1:] == V).all()
    with pytest.raises(ValueError, match="reward_mode"):
        TokenGenerationVectorEnv(2, reward_mode="dense")
    with pytest.raises(ValueError, match="num_envs"):
        TokenGenerationVectorEnv(0)
    with pytest.raises(ValueError, match="vocab_size"):
        TokenGenerationVectorEnv(2, vocab_size=V, seq_len=T, discriminator=tiny_discriminator(vocab_size=7))
    with pytest.raises(ValueError, match="reset_mask"):
        env.reset(options={"reset_mask": np.array([True])})


def test_works_with_gymnasium_make_vec():
    venv = gym.make_vec(
        "seqgan_rl/TokenGeneration-v0", num_envs=2, generator=tiny_generator(), discriminator=FirstTokenD(),
        reward_mode="q", num_rollouts=2,
    )  # fmt: skip
    venv.reset(seed=0)
    _, r, *_ = venv.step(np.array([9, 0]))
    assert r.tolist() == pytest.approx([10 / 11, 1 / 11])


def _snapshot(x):
    """A deep copy of what a step or reset returned (arrays, dicts of arrays, object arrays of arrays)."""
    if isinstance(x, dict):
        return {k: _snapshot(v) for k, v in x.items()}
    if isinstance(x, tuple | list):
        return type(x)(_snapshot(v) for v in x)
    if isinstance(x, np.ndarray) and x.dtype == object:
        return np.array([_snapshot(v) for v in x] + [None], dtype=object)[:-1]  # keeps per-row arrays apart
    return x.copy() if isinstance(x, np.ndarray) else x


def _assert_unchanged(kept, snap, where):
    if isinstance(kept, dict):
        assert kept.keys() == snap.keys(), where
        for k in kept:
            _assert_unchanged(kept[k], snap[k], f"{where}[{k!r}]")
    elif isinstance(kept, tuple | list) or (isinstance(kept, np.ndarray) and kept.dtype == object):
        for i, (a, b) in enumerate(zip(kept, snap, strict=True)):
            _assert_unchanged(a, b, f"{where}[{i}]")
    elif isinstance(kept, np.ndarray):
        np.testing.assert_array_equal(kept, snap, err_msg=f"{where} changed after it was returned")
    else:
        assert kept == snap, where


@pytest.mark.parametrize("reward_mode", ["q", "terminal"])
@pytest.mark.parametrize("mode", MODES)
def test_returned_arrays_are_never_changed_by_later_steps(reward_mode, mode):
    """Everything step() and reset() return belongs to the caller: a later step or a masked reset must not
    rewrite it (TorchRL's GymWrapper keeps the arrays; a done flag aliased to the env's reset buffer vanished)."""
    g, d = tiny_generator(), tiny_discriminator()
    venv = TokenGenerationVectorEnv(2, generator=g, discriminator=d, reward_mode=reward_mode, num_rollouts=2,
                                    autoreset_mode=mode)  # fmt: skip
    kept = [venv.reset(seed=0)]
    snaps = [_snapshot(kept[0])]
    ends = 0
    for _ in range(2 * T + 3):  # past two episode ends
        out = venv.step(np.array([3, 4]))
        kept.append(out)
        snaps.append(_snapshot(out))
        if out[2].any():
            ends += 1
            if mode == AutoresetMode.DISABLED:
                reset = venv.reset(options={"reset_mask": out[2]})
                kept.append(reset)
                snaps.append(_snapshot(reset))
    assert ends >= 2
    assert any(bool(out[2].all()) for out in kept if len(out) == 5)  # a step that returned done flags
    for i, (k, s) in enumerate(zip(kept, snaps, strict=True)):
        _assert_unchanged(k, s, f"return value {i}")


@pytest.mark.parametrize("reward_mode", ["q", "terminal"])
def test_single_env_returns_are_never_changed_by_later_steps(reward_mode):
    env = make_token_generation_env(
        generator=tiny_generator(), discriminator=tiny_discriminator(), reward_mode=reward_mode, num_rollouts=2
    )
    kept = [env.reset(seed=0)]
    snaps = [_snapshot(kept[0])]
    for _ in range(2):
        for _ in range(T):
            out = env.step(3)
            kept.append(out)
            snaps.append(_snapshot(out))
        assert out[2]
        kept.append(env.reset())
        snaps.append(_snapshot(kept[-1]))
    for i, (k, s) in enumerate(zip(kept, snaps, strict=True)):
        _assert_unchanged(k, s, f"return value {i}")
