"""The env in other people's code: TorchRL and SB3 without adapters, D updates reaching every path, worker
processes refused, the reward-mode/discount check."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from env_helpers import T, V, tiny_discriminator, tiny_generator
from gymnasium.vector import SyncVectorEnv

import seqgan_rl  # noqa: F401  (registers the environment)
from seqgan_rl.envs import ENV_ID, TokenGenerationEnv, TokenGenerationVectorEnv, check_reward_gamma
from seqgan_rl.utils import HOME_PID

TESTS = Path(__file__).resolve().parent


def models():
    return tiny_generator(), tiny_discriminator()


def env_kwargs(g, d, **kw):
    return {"generator": g, "discriminator": d, "reward_mode": "q", "num_rollouts": 2, **kw}


def bump(d) -> None:
    """A D update in place, as an optimizer step makes it: P(real) rises for every sequence."""
    with torch.no_grad():
        d.output.bias[1] += 1.0


# ------------------------------------------------------------------ D updates reach every path
def _gym_single(g, d):
    env = gym.make(ENV_ID, **env_kwargs(g, d))
    env.reset(seed=0)
    return lambda a: env.step(int(a[0]))[1], env


def _native(g, d):
    env = TokenGenerationVectorEnv(2, **env_kwargs(g, d))
    env.reset(seed=0)
    return lambda a: env.step(a)[1], env


def _sync(g, d):
    env = SyncVectorEnv([lambda: gym.make(ENV_ID, **env_kwargs(g, d))] * 2)
    env.reset(seed=0)
    return lambda a: env.step(a)[1], env


def _sb3_make_vec_env(g, d):
    env_util = pytest.importorskip("stable_baselines3.common.env_util")
    env = env_util.make_vec_env(ENV_ID, n_envs=2, seed=0, env_kwargs=env_kwargs(g, d))
    env.reset()
    return lambda a: env.step(a)[1], env


def _sb3_adapter(g, d):
    sb3_ppo = pytest.importorskip("seqgan_rl.agents.sb3_ppo")
    env = sb3_ppo.SB3VecEnvAdapter(TokenGenerationVectorEnv(2, autoreset_mode="SameStep", **env_kwargs(g, d)))
    env.seed(0)
    env.reset()
    return lambda a: env.step(a)[1], env


def _torchrl_gym_wrapper(g, d):
    pytest.importorskip("torchrl")
    from torchrl.envs import GymWrapper

    env = GymWrapper(gym.make_vec(ENV_ID, num_envs=2, autoreset_mode="Disabled", **env_kwargs(g, d)),
                     categorical_action_encoding=True)  # fmt: skip
    env.set_seed(0)
    td = env.reset()

    def step(a):
        nonlocal td
        td["action"] = torch.as_tensor(a)
        out = env.step(td)
        td = out["next"].select("observation", "done", "terminated", "truncated")
        return out["next", "reward"].squeeze(-1).numpy()

    return step, env


PATHS = [_gym_single, _native, _sync, _sb3_make_vec_env, _sb3_adapter, _torchrl_gym_wrapper]


@pytest.mark.parametrize("path", PATHS, ids=lambda f: f.__name__.lstrip("_"))
def test_a_discriminator_update_changes_the_rewards(path):
    """Same seed, same actions: the rewards after an in-place D update differ from before, in every path
    (nothing holds a stale copy of D or of its cached tables)."""
    actions = np.array([[3, 7]] * (T - 1))  # up to the last step: every reward is an MC Q

    def rewards(g, d):
        step, _ = path(g, d)
        return np.array([step(a) for a in actions])

    g, d = models()
    before = rewards(g, d)
    again = rewards(g, d)
    np.testing.assert_allclose(again, before, atol=1e-6)  # seeded: a difference below is D's
    bump(d)
    after = rewards(g, d)
    assert (after > before + 1e-3).all(), (before, after)


# ------------------------------------------------------------------ TorchRL without adapters
@pytest.mark.parametrize("mode", ["Disabled", "SameStep"])
def test_torchrl_specs_on_the_single_and_the_native_vector_env(mode):
    pytest.importorskip("torchrl")
    from torchrl.envs import GymEnv, GymWrapper
    from torchrl.envs.utils import check_env_specs

    g, d = models()
    single = GymEnv(ENV_ID, categorical_action_encoding=True, **env_kwargs(g, d))
    check_env_specs(single, seed=0)
    venv = GymWrapper(gym.make_vec(ENV_ID, num_envs=3, autoreset_mode=mode, **env_kwargs(g, d)),
                      categorical_action_encoding=True)  # fmt: skip
    check_env_specs(venv, seed=0)
    assert tuple(venv.batch_size) == (3,)
    rollout = venv.rollout(2 * T, break_when_any_done=False)  # over an episode end: TorchRL resets
    assert rollout["next", "done"].sum() == 2 * 3 and rollout["next", "reward"].shape == (3, 2 * T, 1)


@pytest.mark.parametrize("reward_mode", ["q", "terminal"])
@pytest.mark.parametrize("mode", ["Disabled", "SameStep"])
def test_torchrl_rollout_keeps_every_done_flag(reward_mode, mode):
    """Over two episode ends, the rollout holds every sub-env's terminated and done flag at its last step (the
    env once returned a view of its reset buffer, and TorchRL's copy of ``terminated`` was wiped by the reset)."""
    pytest.importorskip("torchrl")
    from torchrl.envs import GymWrapper

    g, d = models()
    kwargs = env_kwargs(g, d, reward_mode=reward_mode)
    venv = GymWrapper(gym.make_vec(ENV_ID, num_envs=2, autoreset_mode=mode, **kwargs), categorical_action_encoding=True)
    venv.set_seed(0)
    rollout = venv.rollout(2 * T + 2, break_when_any_done=False)
    ends = torch.zeros(2, 2 * T + 2, dtype=torch.bool)
    ends[:, [T - 1, 2 * T - 1]] = True
    for key in ("terminated", "done"):
        np.testing.assert_array_equal(rollout["next", key].squeeze(-1).numpy(), ends.numpy(), err_msg=key)
    assert not rollout["next", "truncated"].any()


def test_torchrl_rejects_next_step_autoreset_as_it_always_did():
    pytest.importorskip("torchrl")
    from torchrl.envs import GymWrapper

    g, d = models()
    with pytest.raises(RuntimeError, match="SAME_STEP or DISABLED"):
        GymWrapper(gym.make_vec(ENV_ID, num_envs=2, **env_kwargs(g, d)))


# ------------------------------------------------------------------ SB3 without adapters
def test_sb3_make_vec_env_as_written():
    """``make_vec_env(ID)`` builds (SB3 asks for rgb_array frames); without D, stepping says what is missing."""
    env_util = pytest.importorskip("stable_baselines3.common.env_util")
    venv = env_util.make_vec_env(ENV_ID)
    assert venv.num_envs == 1 and venv.observation_space.shape == (20,) and venv.action_space.n == 5000
    venv.reset()
    with pytest.raises(RuntimeError, match="no discriminator set"):
        venv.step(np.array([1]))
    g, d = models()
    venv = env_util.make_vec_env(ENV_ID, n_envs=2, env_kwargs=env_kwargs(g, d))
    venv.reset()
    frame = venv.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3


def test_rgb_array_render_is_an_image_of_the_prefix():
    g, d = models()
    env = TokenGenerationEnv(generator=g, discriminator=d, render_mode="rgb_array")
    env.reset(seed=0)
    blank = env.render()
    assert blank.shape == (8, 8 * T, 3) and blank.dtype == np.uint8 and not blank.any()
    env.step(3)
    env.step(7)
    img = env.render()
    assert img[:, :16].any(axis=2).all() and not img[:, 16:].any()  # two coloured cells, then black
    assert not np.array_equal(img[:, :8], img[:, 8:16])  # different tokens, different colours
    venv = TokenGenerationVectorEnv(2, generator=g, discriminator=d, render_mode="rgb_array")
    venv.reset(seed=0)
    venv.step(np.array([3, 3]))
    frames = venv.render()
    assert len(frames) == 2 and np.array_equal(frames[0][:, :8], img[:, :8])


# ------------------------------------------------------------------ worker processes are refused
WORKER_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
import gymnasium as gym
import numpy as np
import seqgan_rl
from env_helpers import tiny_discriminator, tiny_generator

def main(kind):
    G, D = tiny_generator(), tiny_discriminator()
    make = lambda: gym.make("seqgan_rl/TokenGeneration-v0", generator=G, discriminator=D, num_rollouts=2)
    try:
        if kind == "async":
            env = gym.vector.AsyncVectorEnv([make] * 2)
        elif kind == "subproc":
            from stable_baselines3.common.vec_env import SubprocVecEnv
            env = SubprocVecEnv([make] * 2)
        else:
            from torchrl.envs import GymEnv
            env = GymEnv("seqgan_rl/TokenGeneration-v0", num_envs=2, generator=G, discriminator=D)
        env.reset()
        env.step(np.array([1, 2]))
    except Exception:
        sys.exit(3)
    print("no refusal")

if __name__ == "__main__":
    main(sys.argv[1])
"""


@pytest.mark.parametrize("kind", ["async", "subproc", "torchrl"])
def test_process_based_vectorisation_is_refused(kind, tmp_path):
    """A worker process holding copies of G and D would score with a D that never changes: the worker's env
    refuses, naming the alternatives, and the parent's vector env fails."""
    pytest.importorskip("stable_baselines3" if kind == "subproc" else "gymnasium")
    if kind == "torchrl":
        pytest.importorskip("torchrl")
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(WORKER_SCRIPT.format(tests=str(TESTS))))
    proc = subprocess.run([sys.executable, str(script), kind], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "is a copy in process" in proc.stderr and "gym.make_vec(ID, num_envs=N" in proc.stderr


def test_copies_are_judged_by_their_home_process():
    g, d = models()
    assert getattr(g, HOME_PID) == os.getpid()
    env = TokenGenerationEnv(generator=g, discriminator=d)
    same = pickle.loads(pickle.dumps(env))  # a copy in this process: its home is here
    assert same.discriminator is not d
    setattr(d, HOME_PID, os.getppid())  # as if built by the (running) process that started this one
    with pytest.raises(RuntimeError, match="discriminator is a copy"):
        TokenGenerationEnv(generator=g, discriminator=d)
    with pytest.raises(RuntimeError, match="discriminator is a copy"):
        pickle.loads(pickle.dumps(env))  # an env pickled into another process
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    setattr(d, HOME_PID, int(dead.stdout))  # built by a process that has ended: e.g. loaded from disk
    TokenGenerationEnv(generator=g, discriminator=d)


# ------------------------------------------------------------------ reward mode and discount
def test_check_reward_gamma_for_any_learner():
    g, d = models()
    check_reward_gamma("q", 0.0)
    check_reward_gamma("shaped", 1.0)
    with pytest.raises(ValueError, match=r"reward_mode 'q' needs gamma=0 .*got gamma=0.99"):
        check_reward_gamma("q", 0.99)
    with pytest.raises(ValueError, match="needs gamma=1"):
        check_reward_gamma(gym.make(ENV_ID, **env_kwargs(g, d, reward_mode="shaped")), 0.99)
    check_reward_gamma(TokenGenerationEnv(generator=g, discriminator=d), 1.0)  # bare env: terminal D(Y)
    check_reward_gamma(TokenGenerationVectorEnv(2, **env_kwargs(g, d)), 0.0)
    env_util = pytest.importorskip("stable_baselines3.common.env_util")
    with pytest.raises(ValueError, match="needs gamma=0"):
        check_reward_gamma(env_util.make_vec_env(ENV_ID, n_envs=2, env_kwargs=env_kwargs(g, d)), 0.99)
    with pytest.raises(ValueError, match="reward_mode='x'"):
        check_reward_gamma("x", 0.0)


def test_env_takes_the_vocabulary_a_text_checkpoint_stores(tmp_path):
    from seqgan_rl.data.text import Vocabulary
    from seqgan_rl.training.run_folder import PlainFolder, load_generator, save_generator

    vocab = Vocabulary([f"w{i}" for i in range(V - 4)])
    g = tiny_generator()
    save_generator(g, PlainFolder(tmp_path), "g.pt", vocab)
    loaded, words = load_generator(tmp_path / "g.pt")
    for v in (words, torch.load(tmp_path / "g.pt")["vocab"]):  # the loader's Vocabulary, or the raw id->word list
        env = TokenGenerationEnv(generator=loaded, discriminator=tiny_discriminator(), vocab=v, render_mode="ansi")
        env.reset(seed=0)
        env.step(5)
        assert env.render() == f"[1/{T}] w1"


def test_a_discriminator_needs_only_what_the_docstring_says():
    """``vocab_size``, ``seq_len`` and ``prob_real``: no ``device`` attribute, no parameters, in every env."""

    class MinimalD:
        vocab_size, seq_len = V, T

        def prob_real(self, tokens):
            return (tokens[:, 0].double() + 1.0) / (V + 1.0)

    g = tiny_generator()
    for env in (
        TokenGenerationVectorEnv(2, **env_kwargs(g, MinimalD())),
        gym.make(ENV_ID, **env_kwargs(g, MinimalD())),
    ):
        env.reset(seed=0)
        reward = env.step(np.array([4, 4]) if hasattr(env, "num_envs") else 4)[1]
        assert np.allclose(reward, 5 / (V + 1))
