"""SB3 PPO: the VecEnv adapter under SB3's checks, MLE weights in the policy, reward mode vs gamma,
the PPO agent (equal to SB3's own learn(), in the training loop with its callbacks), and
``train_agent.py --algo ppo`` end to end."""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest
import torch
from env_helpers import FirstTokenD, T, V, tiny_discriminator, tiny_generator

pytest.importorskip("stable_baselines3")
from stable_baselines3.common.callbacks import BaseCallback  # noqa: E402
from stable_baselines3.common.env_checker import check_env  # noqa: E402
from stable_baselines3.common.utils import check_for_correct_spaces  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv, VecCheckNan, VecMonitor  # noqa: E402

from seqgan_rl.agents import make_agent  # noqa: E402
from seqgan_rl.agents.sb3_ppo import (  # noqa: E402
    A2CAgent,
    A2CConfig,
    PPOAgent,
    PPOConfig,
    SB3VecEnvAdapter,
    make_a2c,
    make_ppo,
)
from seqgan_rl.config import DiscriminatorTrainConfig  # noqa: E402
from seqgan_rl.envs import SeqGANReward, TokenGenerationVectorEnv, make_token_generation_env  # noqa: E402
from seqgan_rl.training.callbacks import Callback, DiscriminatorRetrainCallback  # noqa: E402
from seqgan_rl.training.trainer import Trainer  # noqa: E402


def test_single_env_passes_sb3_check_env():
    env = make_token_generation_env(reward_mode="q", num_rollouts=2, generator=tiny_generator(),
                                    discriminator=tiny_discriminator())  # fmt: skip
    check_env(env, warn=True)


@pytest.mark.parametrize(("reward_mode", "disc"), [("terminal", tiny_discriminator()), ("q", FirstTokenD())])
def test_adapter_matches_dummy_vec_env_step_for_step(reward_mode, disc):
    """SB3's own DummyVecEnv over single envs is the reference: same observations (incl. the same-step
    autoreset), rewards, dones and terminal observations; VecCheckNan and VecMonitor accept the adapter."""
    n, g = 3, tiny_generator()
    kwargs = {"generator": g, "discriminator": disc, "reward_mode": reward_mode, "num_rollouts": 2}
    native = TokenGenerationVectorEnv(n, autoreset_mode="SameStep", **kwargs)
    ours = VecMonitor(VecCheckNan(SB3VecEnvAdapter(native), raise_exception=True))
    ref = DummyVecEnv([lambda: make_token_generation_env(**kwargs) for _ in range(n)])
    check_for_correct_spaces(ours, ref.observation_space, ref.action_space)
    assert ours.num_envs == n and not any(ours.env_is_wrapped(VecMonitor))
    ours.seed(5)
    ref.seed(5)
    np.testing.assert_array_equal(ours.reset(), ref.reset())
    rng = np.random.default_rng(0)
    episodes = 0
    for step in range(2 * T + 1):
        a = rng.integers(0, V, size=n)
        o1, r1, d1, i1 = ours.step(a)
        o2, r2, d2, i2 = ref.step(a)
        np.testing.assert_array_equal(o1, o2)
        np.testing.assert_allclose(r1, r2, atol=1e-6)
        np.testing.assert_array_equal(d1, d2)
        assert d1.all() == ((step + 1) % T == 0)
        for x, y in zip(i1, i2, strict=True):
            if "terminal_observation" in y:
                np.testing.assert_array_equal(x["terminal_observation"], y["terminal_observation"])
                assert x["TimeLimit.truncated"] is False and "episode" in x
                episodes += 1
    assert episodes == 2 * n
    assert ours.get_attr("reward_mode") == [reward_mode] * n


def test_adapter_rejects_other_envs():
    with pytest.raises(TypeError, match="TokenGenerationVectorEnv"):
        SB3VecEnvAdapter(make_token_generation_env(generator=tiny_generator()))
    with pytest.raises(ValueError, match="autoreset_mode='SameStep'"):
        SB3VecEnvAdapter(TokenGenerationVectorEnv(2, generator=tiny_generator()))


def tiny_ppo(reward_mode="q", disc=None, num_envs=4, num_layers=1, **ppo):
    g = tiny_generator(num_layers=num_layers)
    venv = TokenGenerationVectorEnv(num_envs, generator=g, discriminator=disc or tiny_discriminator(),
                                    reward_mode=reward_mode, num_rollouts=2, autoreset_mode="SameStep")  # fmt: skip
    cfg = PPOConfig(num_envs=num_envs, reward_mode=reward_mode, batch_size=8, n_epochs=2, **ppo)
    return g, venv, make_ppo(venv, g, cfg, seed=0)


@pytest.mark.parametrize("num_layers", [1, 2])
def test_loaded_policy_has_the_generators_action_probabilities(num_layers):
    g, _, model = tiny_ppo(num_layers=num_layers)
    policy = model.policy
    assert policy.ortho_init  # SB3's init ran on construction; the weights were loaded afterwards
    assert torch.equal(policy.action_net.weight, g.output.weight)
    seqs = g.sample(7, torch.Generator().manual_seed(0))  # (7, T)
    with torch.no_grad():
        want = torch.softmax(g(seqs), dim=-1)  # (7, T, V): teacher-forced next-token probabilities
        for t in range(T):
            obs = seqs.clone()
            obs[:, t:] = V  # the env's observation: the prefix y_1..y_t-1, padded with V
            got = policy.get_distribution(obs.float()).distribution.probs
            torch.testing.assert_close(got, want[:, t], rtol=0, atol=1e-6)


def test_temperature_divides_the_logits():
    g, _, model = tiny_ppo(temperature=0.5)
    obs = torch.full((2, T), V, dtype=torch.float32)
    with torch.no_grad():
        got = model.policy.get_distribution(obs).distribution.probs
        want = torch.softmax(g.step(g.start_tokens(2), g.initial_state(2))[0] / 0.5, dim=-1)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_generator_view_is_the_live_policy():
    g, venv, model = tiny_ppo()
    view = venv.generator  # the env's rollout policy is the policy's actor
    assert view is not g and view.output is model.policy.action_net
    before = view.output.weight.detach().clone()
    model.learn(4 * T * 2)
    assert not torch.equal(before, view.output.weight)
    assert torch.equal(g.output.weight, before)  # the MLE generator itself is untouched


class BufferSpy(BaseCallback):
    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        buf = self.model.rollout_buffer
        self.returns, self.rewards = buf.returns.copy(), buf.rewards.copy()  # (n_steps, n_envs)
        self.obs, self.actions = buf.observations.copy(), buf.actions.copy()  # (n_steps, n_envs, T), (.., 1)


def test_rollout_buffer_holds_the_prefix_each_action_was_taken_from():
    """Step t's stored observation is y_1..y_{t-1} (padded), not the state after the action: the
    vector env must hand out copies of its in-place state."""
    _, _, model = tiny_ppo()
    spy = BufferSpy()
    model.learn(4 * T, callback=spy)
    for t in range(T):
        obs = spy.obs[t]  # (n_envs, T)
        assert (obs[:, t:] == V).all() and (obs[:, :t] < V).all()
        if t + 1 < T:
            np.testing.assert_array_equal(spy.obs[t + 1][:, t], spy.actions[t][:, 0])


@pytest.mark.parametrize("reward_mode", ["q", "shaped", "terminal"])
def test_reward_mode_and_gamma_give_the_seqgan_returns(reward_mode):
    """With FirstTokenD every Q_t equals D(Y), so the returns are known exactly: 'q' with gamma 0 keeps
    each step's Q as its return; 'shaped'/'terminal' with gamma 1 re-sum to D(Y) (minus Q_{t-1})."""
    d = FirstTokenD()
    _, _, model = tiny_ppo(reward_mode, disc=d)
    assert model.gamma == {"q": 0.0, "shaped": 1.0, "terminal": 1.0}[reward_mode]
    spy = BufferSpy()
    model.learn(4 * T, callback=spy)
    assert spy.returns.shape == (T, 4)
    dy = spy.rewards[-1] if reward_mode != "shaped" else spy.rewards[0]  # D(Y) per sequence
    if reward_mode in ("q", "terminal"):  # q: each Q_t is D(Y) here; terminal: the sum is D(Y)
        np.testing.assert_allclose(spy.returns, np.broadcast_to(dy, (T, 4)), atol=1e-6)
    else:  # G_t = D(Y) - Q_{t-1}: D(Y) at t = 1, then 0
        want = np.zeros((T, 4), dtype=np.float32)
        want[0] = dy
        np.testing.assert_allclose(spy.returns, want, atol=1e-6)


def test_config_refuses_a_gamma_that_does_not_fit_the_reward_mode():
    assert PPOConfig().discount == 0.0 and PPOConfig(reward_mode="shaped").discount == 1.0
    with pytest.raises(ValueError, match="needs gamma=0"):
        PPOConfig(reward_mode="q", gamma=0.99)
    with pytest.raises(ValueError, match="needs gamma=1"):
        PPOConfig(reward_mode="shaped", gamma=0.0)
    _, venv, _ = tiny_ppo()
    with pytest.raises(ValueError, match="does not match the PPO config"):
        make_ppo(venv, tiny_generator(), PPOConfig(num_envs=4, reward_mode="shaped"))


class Recording(Callback):
    def __init__(self):
        super().__init__()
        self.events = []

    def _on_training_start(self):
        self.events.append("start")

    def _on_step(self):
        self.events.append(("step", self.trainer.iteration, "train/pg_loss" in self.trainer.pending_metrics))
        return True

    def _on_iteration_logged(self):
        self.events.append("logged")


def test_agent_collect_and_update_are_sb3s_own_learn():
    """PPOAgent's collect/update in a loop is PPO.learn() step for step: the same weights after 3 updates."""
    n, cfg = 4, PPOConfig(num_envs=4, batch_size=8, n_epochs=2)
    g, d = tiny_generator(), tiny_discriminator()
    agent = PPOAgent(g, SeqGANReward(g, d, num_rollouts=2), cfg, seed=3, total_updates=3)
    for _ in range(3):
        metrics = agent.update(agent.collect())
    assert {"train/pg_loss", "train/value_loss", "train/approx_kl", "train/mean_q"} <= set(metrics)
    venv = TokenGenerationVectorEnv(n, generator=g, discriminator=d, num_rollouts=2, autoreset_mode="SameStep")
    model = make_ppo(venv, g, cfg, seed=3)
    model.learn(3 * n * T)
    for (k, a), b in zip(agent.model.policy.state_dict().items(), model.policy.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_a2c_agent_is_sb3s_own_a2c_learn_from_the_generator():
    """A2CAgent: its policy starts as the generator (RMSprop by default), and collect/update in a loop is
    A2C.learn() step for step (one gradient step per rollout): the same weights after 3 updates."""
    n, cfg = 4, A2CConfig(num_envs=4)
    g, d = tiny_generator(), tiny_discriminator()
    agent = A2CAgent(g, SeqGANReward(g, d, num_rollouts=2), cfg, seed=3, total_updates=3)
    assert torch.equal(agent.model.policy.action_net.weight, g.output.weight)
    assert isinstance(agent.model.policy.optimizer, torch.optim.RMSprop)
    start = {k: v.clone() for k, v in agent.model.policy.state_dict().items()}
    for _ in range(3):
        metrics = agent.update(agent.collect())
    assert {"train/pg_loss", "train/value_loss", "train/entropy_loss", "train/explained_variance"} <= set(metrics)
    assert agent.model._n_updates == 3  # one gradient step per rollout
    venv = TokenGenerationVectorEnv(n, generator=g, discriminator=d, num_rollouts=2, autoreset_mode="SameStep")
    model = make_a2c(venv, g, cfg, seed=3)
    model.learn(3 * n * T)
    after = agent.model.policy.state_dict()
    for (k, a), b in zip(after.items(), model.policy.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert not torch.equal(after["action_net.weight"], start["action_net.weight"])


def test_a2c_config_checks_and_names_itself():
    assert A2CConfig().discount == 0.0 and A2CConfig(reward_mode="terminal").discount == 1.0
    with pytest.raises(ValueError, match="A2CConfig: reward_mode='q' needs gamma=0"):
        A2CConfig(gamma=0.99)
    with pytest.raises(ValueError, match="A2CConfig: num_envs"):
        A2CConfig(lr=0.0)
    g, d = tiny_generator(), tiny_discriminator()
    with pytest.raises(ValueError, match="A2C trains on the discriminator's reward"):
        from seqgan_rl.envs import ConstantReward

        A2CAgent(g, ConstantReward(), A2CConfig(num_envs=4))
    agent = make_agent("a2c", A2CConfig(num_envs=4, use_rms_prop=False), g, SeqGANReward(g, d, num_rollouts=2))
    assert isinstance(agent, A2CAgent) and isinstance(agent.model.policy.optimizer, torch.optim.Adam)


def test_agent_in_the_training_loop_fires_callbacks_once_per_update_and_retrains_d(tmp_path):
    g, d = tiny_generator(), tiny_discriminator()
    reward = SeqGANReward(g, d, num_rollouts=2)
    agent = make_agent("ppo", PPOConfig(num_envs=4, batch_size=8, n_epochs=2), g, reward, total_updates=3)
    assert reward.generator is agent.generator and agent.venv.discriminator is d  # one policy, one D
    real = tiny_generator(seed=3).sample(32, torch.Generator().manual_seed(0))
    heldout = tiny_generator(seed=3).sample(32, torch.Generator().manual_seed(1))
    retrain = DiscriminatorRetrainCallback(
        d, real, heldout, DiscriminatorTrainConfig(rounds=1, epochs=1, num_negatives=16)
    )
    rec = Recording()
    before = [p.detach().clone() for p in d.parameters()]
    trainer = Trainer(agent, reward, [rec, retrain], iterations=3, out_dir=tmp_path)
    trainer.train()
    assert rec.events == ["start"] + [e for i in (1, 2, 3) for e in (("step", i, True), "logged")]
    assert trainer.iteration == 3 and retrain.n_calls == 3
    assert any(not torch.equal(a, b) for a, b in zip(before, d.parameters(), strict=True))
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/value_loss", "train/clip_fraction", "d/loss", "d/p_fake"} <= set(header)
    with pytest.raises(ValueError, match="discriminator's reward"):
        from seqgan_rl.envs import ConstantReward

        PPOAgent(g, ConstantReward(), PPOConfig(num_envs=4))


def test_missing_extra_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "stable_baselines3", None)
    monkeypatch.delitem(sys.modules, "seqgan_rl.agents.sb3_ppo")
    with pytest.raises(ImportError, match=r'pip install "seqgan-rl\[sb3\]"'):
        importlib.import_module("seqgan_rl.agents.sb3_ppo")


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_train_agent_sb3_algo_runs_end_to_end(tmp_path, capsys, algo):
    import json

    from tiny_runs import load_script

    from seqgan_rl.models import OracleLSTM

    oracle = OracleLSTM.random(vocab_size=20, seq_len=6, embed_dim=8, hidden_dim=8, seed=3)
    npz = tmp_path / "oracle.npz"
    oracle.save_npz(npz)
    script = load_script("train_agent")
    args = [
        "--algo", algo, "--preset", "cpu", "--oracle-file", str(npz), "--out", str(tmp_path / "r"),
        "--iterations", "2", "--eval-every", "1", "--mle-epochs", "1", "--d-pretrain-rounds", "1",
        "--eval-samples", "64", "--num-rollouts", "2", "--threads", "1",
    ]  # fmt: skip
    assert script.main(args) == 0
    assert "final (update 2)" in capsys.readouterr().out
    out = tmp_path / "r"
    saved = json.loads((out / "config.json").read_text())
    assert saved["algo"] == algo and saved["agent"]["reward_mode"] == "q"
    rows = (out / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert "train/value_loss" in header and len(rows) == 4  # header + updates 0, 1, 2
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1", "2"]
    assert (out / "generator_final.pt").exists() and (out / "curves.png").exists()
    assert script.main(args + ["--resume"]) == 0  # finished: resuming is a no-op that rewrites the summary
    assert script.main(["--algo", "ppo", "--preset", "cpu", "--reward", "constant"]) == 2
    assert "--algo ppo" in capsys.readouterr().err
